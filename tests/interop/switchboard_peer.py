"""An independent gRPC peer for Switchboard, built on Python grpcio.

It knows nothing of Switchboard's proto files: every message type comes from
the server's own reflection service, so these tests also prove that
reflection describes the contract completely.
"""

import os
import re
import signal
import subprocess
import threading
import time

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVING_LINE = re.compile(r"switchboard is serving grpc_addr=(\S+) metrics_addr=(\S+)")


class Server:
    """`switchboard serve` as a child process on ephemeral loopback ports."""

    def __init__(self, binary, database_url):
        self.binary = binary
        self.database_url = database_url
        self.process = None
        self.grpc_addr = None
        self.metrics_addr = None

    def start(self, timeout=60):
        env = dict(os.environ, RUST_LOG="info")
        self.process = subprocess.Popen(
            [
                self.binary,
                "serve",
                "--grpc-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
                "--database-url",
                self.database_url,
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                raise RuntimeError(f"server exited early with {self.process.wait()}")
            match = SERVING_LINE.search(line)
            if match:
                self.grpc_addr, self.metrics_addr = match.group(1), match.group(2)
                # Keep draining the log so a chatty server never blocks on a full pipe.
                threading.Thread(target=self._drain, args=(self.process.stderr,), daemon=True).start()
                return self
        raise RuntimeError("server did not report its address in time")

    @staticmethod
    def _drain(pipe):
        for _ in pipe:
            pass

    def stop(self):
        """SIGTERM, as an operator's service manager would send; waits for a clean exit."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        if code != 0:
            raise RuntimeError(f"server exited with {code} after SIGTERM")

    def channel(self):
        return grpc.insecure_channel(self.grpc_addr)


class Reflected:
    """Unary calls to any service, with message classes taken from reflection."""

    def __init__(self, channel):
        self.channel = channel
        self.database = ProtoReflectionDescriptorDatabase(channel)
        self.pool = descriptor_pool.DescriptorPool(self.database)

    def services(self):
        return set(self.database.get_services())

    def message(self, full_name, **fields):
        cls = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))
        return cls(**fields)

    def call(self, service, method, request_fields, metadata=None):
        descriptor = self.pool.FindServiceByName(service).methods_by_name[method]
        request_cls = message_factory.GetMessageClass(descriptor.input_type)
        response_cls = message_factory.GetMessageClass(descriptor.output_type)
        stub = self.channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        return stub(request_cls(**request_fields), metadata=metadata, timeout=30)


def health_status(channel, service=""):
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
