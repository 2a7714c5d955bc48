"""Interop: Python grpcio as both the interop bridge and an agent.

A supervisor configures a skill, a queue, an entry point and an agent; the
UC presence feed reports the agent AVAILABLE; the bridge opens its session
and submits a chat; the agent, signed in and ready on its own session, is
offered the item and accepts it; the bridge is told to deliver it to the
agent's UC address, reports it connected and then ended; the agent goes
through wrap-up back to READY. Resubmitting is idempotent, bad reports and
requests are refused with the right codes, and the ended item is no longer
open.

Usage: test_call_flow.py SWITCHBOARD_BINARY DATABASE_URL
"""

import queue
import sys
import threading
import time
import uuid

import grpc
from google.protobuf import message_factory

from switchboard_peer import Reflected, Server

SUPERVISOR = "switchboard.v1.SupervisorService"
BRIDGE = "switchboard.v1.BridgeService"
AGENT = "switchboard.v1.AgentService"
PRESENCE = "switchboard.v1.PresenceService"

ENTRY_POINT = "sip:support@contoso.example"
ALICE_ADDRESS = "sip:alice@contoso.example"
PAGE_URL = "https://contoso.example/help"

# The longest wait for any one expected event or stream end.
WAIT = 15


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok - {what}")


class StreamEnded(Exception):
    """The server closed a session stream while an event was still expected."""


class Session:
    """One bidirectional session stream driven from a queue.

    Requests are written through a queue feeding grpcio's request iterator;
    a reader thread puts every response, then the stream's end, on another
    queue, so each wait is bounded. Events that arrive while waiting for
    another stay pending for later waits, in arrival order.
    """

    _END = object()

    def __init__(self, api, service, metadata=None):
        descriptor = api.pool.FindServiceByName(service).methods_by_name["Session"]
        self.request_cls = message_factory.GetMessageClass(descriptor.input_type)
        response_cls = message_factory.GetMessageClass(descriptor.output_type)
        self.service = service
        self._outgoing = queue.Queue()
        self._incoming = queue.Queue()
        self._pending = []  # (seq, event) received but not yet matched
        self._seq = 0
        self._next_request_id = 0
        self._closed_sending = False
        self.ended = None  # the grpc.RpcError or None once the stream ends; see end()
        self._ended_seen = False
        stub = api.channel.stream_stream(
            f"/{service}/Session",
            request_serializer=self.request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        self.call = stub(self._requests(), metadata=metadata)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _requests(self):
        while True:
            message = self._outgoing.get()
            if message is None:
                return
            yield message

    def _read(self):
        try:
            for event in self.call:
                self._incoming.put(event)
            self._incoming.put((self._END, None))
        except grpc.RpcError as error:
            self._incoming.put((self._END, error))
        except Exception as error:  # noqa: BLE001 - reported to the waiting test
            self._incoming.put((self._END, error))

    def send(self, **fields):
        """Sends one message with a fresh request id and returns that id."""
        self._next_request_id += 1
        request_id = self._next_request_id
        self._outgoing.put(self.request_cls(request_id=request_id, **fields))
        return request_id

    def _receive(self, deadline):
        """The next event from the stream as (seq, event); StreamEnded at its end."""
        if self._ended_seen:
            raise StreamEnded(self._describe_end())
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise queue.Empty
        item = self._incoming.get(timeout=remaining)
        if isinstance(item, tuple) and item and item[0] is self._END:
            self._ended_seen = True
            self.ended = item[1]
            raise StreamEnded(self._describe_end())
        self._seq += 1
        return self._seq, item

    def _describe_end(self):
        if self.ended is None:
            return f"{self.service}/Session ended with OK"
        if isinstance(self.ended, grpc.RpcError):
            return f"{self.service}/Session ended with {self.ended.code()}: {self.ended.details()}"
        return f"{self.service}/Session reader failed: {self.ended!r}"

    def expect(self, predicate, what, after=0, timeout=WAIT):
        """The first event (received after sequence number `after`) matching
        `predicate`; returns (seq, event). Others stay pending."""
        for index, (seq, event) in enumerate(self._pending):
            if seq > after and predicate(event):
                del self._pending[index]
                return seq, event
        deadline = time.monotonic() + timeout
        while True:
            try:
                seq, event = self._receive(deadline)
            except queue.Empty:
                pending = [f"{seq}: {event.WhichOneof('kind')} {_short(event)}" for seq, event in self._pending]
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what} on {self.service}/Session; "
                    f"pending events: {pending}"
                ) from None
            except StreamEnded as ended:
                raise AssertionError(f"{ended} while waiting for {what}") from None
            if seq > after and predicate(event):
                return seq, event
            self._pending.append((seq, event))

    def ack(self, request_id, timeout=WAIT):
        """The ack answering `request_id`."""
        _, event = self.expect(
            lambda e: e.WhichOneof("kind") == "ack" and e.ack.request_id == request_id,
            f"the ack of request {request_id}",
            timeout=timeout,
        )
        return event.ack

    def request(self, **fields):
        """Sends a message and returns the ack answering it."""
        return self.ack(self.send(**fields))

    def close_sending(self):
        """Half-closes the stream: the server sees the end of our messages."""
        if not self._closed_sending:
            self._closed_sending = True
            self._outgoing.put(None)

    def end(self, timeout=WAIT):
        """Waits for the server to end the stream, skipping any events.
        Returns None for OK, or the grpc.RpcError it ended with."""
        deadline = time.monotonic() + timeout
        while not self._ended_seen:
            try:
                seq, event = self._receive(deadline)
            except queue.Empty:
                raise AssertionError(f"{self.service}/Session did not end within {timeout} s") from None
            except StreamEnded:
                break
            self._pending.append((seq, event))
        return self.ended

    def cancel(self):
        """Tears the stream down without waiting (for cleanup after a failure)."""
        self.close_sending()
        self.call.cancel()


def _short(event):
    return " ".join(str(event).split())[:200]


def is_kind(kind, predicate=lambda _: True):
    return lambda event: event.WhichOneof("kind") == kind and predicate(getattr(event, kind))


def main(binary, database_url):
    server = Server(binary, database_url).start()
    sessions = []
    try:
        channel = server.channel()
        api = Reflected(channel)
        channels = api.pool.FindEnumTypeByName("switchboard.v1.Channel").values_by_name
        states = api.pool.FindEnumTypeByName("switchboard.v1.RoutingState")
        presences = api.pool.FindEnumTypeByName("switchboard.v1.Presence").values_by_name
        READY = states.values_by_name["ROUTING_STATE_READY"].number
        BUSY = states.values_by_name["ROUTING_STATE_BUSY"].number
        WRAP_UP = states.values_by_name["ROUTING_STATE_WRAP_UP"].number

        def state_is(state):
            return is_kind("state_changed", lambda changed: changed.state == state)

        # 1. The supervisor configures the centre.
        who = [("x-switchboard-actor", "python-interop")]
        api.call(SUPERVISOR, "CreateSkill", {"skill": {"name": "billing"}}, who)
        support = {
            "id": "support",
            "steps": [{"requirements": [{"skill": "billing", "min_level": 1}]}],
            "wrap_up_secs": 1,
            "offer_timeout_secs": 30,
        }
        created = api.call(SUPERVISOR, "CreateQueue", {"queue": support}, who)
        check(
            created.wrap_up_secs == 1 and created.offer_timeout_secs == 30,
            "queue support is created with a 1 s wrap-up and a 30 s offer timeout",
        )
        api.call(SUPERVISOR, "CreateEntryPoint", {"entry_point": {"address": ENTRY_POINT, "queue": "support"}}, who)
        alice = {
            "id": "alice",
            "uc_address": ALICE_ADDRESS,
            "skills": [{"skill": "billing", "level": 3}],
            "queues": ["support"],
        }
        api.call(SUPERVISOR, "CreateAgent", {"agent": alice}, who)
        print("ok - skill billing, queue support, its entry point and agent alice are created")

        # 2. The bridge opens its session.
        bridge = Session(api, BRIDGE)
        sessions.append(bridge)
        hello = bridge.request(hello={"bridge_id": "python-bridge"})
        check(hello.code == 0, f"the bridge's hello is acknowledged with code 0 (got {hello.code} {hello.message!r})")

        # 3. The agent signs in, ready.
        agent = Session(api, AGENT)
        sessions.append(agent)
        signed_in = agent.request(sign_in={"agent_id": "alice", "ready": True})
        check(signed_in.code == 0, f"alice's sign_in is acknowledged with code 0 (got {signed_in.code} {signed_in.message!r})")
        agent.expect(state_is(READY), "state_changed READY after sign_in")
        print("ok - alice's session reports state READY")

        # Formal agents are routable only while their UC presence is AVAILABLE
        # (common.proto, Presence): the presence feed says so.
        presence = api.call(
            PRESENCE,
            "UpdatePresence",
            {"updates": [{"agent_id": "alice", "presence": presences["PRESENCE_AVAILABLE"].number}]},
        )
        check(
            presence.applied == 1 and list(presence.unknown_agents) == [],
            "the presence feed reports alice AVAILABLE",
        )

        # 4. The bridge submits a chat.
        interaction = {
            "interaction_id": "py-call-1",
            "channel": channels["CHANNEL_CHAT"].number,
            "from_address": "sip:jane@consumer.example",
            "display_name": "Jane",
            "entry_point": ENTRY_POINT,
            "attributes": {"page_url": PAGE_URL},
        }
        submitted = api.call(BRIDGE, "SubmitInteraction", interaction)
        item = submitted.work_item_id
        check(bool(item), f"SubmitInteraction answers a work_item_id ({item})")
        check(str(uuid.UUID(item)) == item.lower(), "the work_item_id is a UUID")
        check(submitted.queue == "support", f"the item waits in queue support (got {submitted.queue!r})")
        check(submitted.created, "the first submission reports created")

        # 5. Alice is offered the item and accepts it.
        offer_seq, event = agent.expect(
            is_kind("offer", lambda offer: offer.work_item_id == item), "the offer of the submitted item"
        )
        offer = event.offer
        check(offer.interaction_id == "py-call-1", "the offer carries the interaction id")
        check(offer.channel == channels["CHANNEL_CHAT"].number, "the offer is for a chat")
        check(
            offer.from_address == "sip:jane@consumer.example" and offer.display_name == "Jane",
            "the offer carries the consumer's from_address and display_name",
        )
        check(offer.attributes.get("page_url") == PAGE_URL, "the offer carries the page_url attribute")
        check(offer.queue == "support", f"the offer names queue support (got {offer.queue!r})")
        expires_in = offer.expires_at.ToNanoseconds() / 1e9 - time.time()
        check(
            25 < expires_in <= 31,
            f"the offer expires after the queue's 30 s offer timeout (in {expires_in:.1f} s)",
        )
        accepted = agent.request(accept={"work_item_id": item})
        check(accepted.code == 0, f"accept is acknowledged with code 0 (got {accepted.code} {accepted.message!r})")
        busy_seq, _ = agent.expect(state_is(BUSY), "state_changed BUSY after accept", after=offer_seq)
        print("ok - alice's state is BUSY after accepting")

        # 6. The bridge delivers, connects and ends.
        _, event = bridge.expect(
            is_kind("deliver", lambda deliver: deliver.work_item_id == item), "deliver of the accepted item"
        )
        deliver = event.deliver
        check(
            deliver.agent_address == ALICE_ADDRESS,
            f"the bridge is told to deliver to {ALICE_ADDRESS} (got {deliver.agent_address!r})",
        )
        check(
            deliver.agent_id == "alice" and deliver.interaction_id == "py-call-1",
            "deliver names agent alice and interaction py-call-1",
        )
        connected = bridge.request(connected={"work_item_id": item})
        check(connected.code == 0, f"connected is acknowledged with code 0 (got {connected.code} {connected.message!r})")
        listed = api.call(BRIDGE, "ListOpenInteractions", {})
        open_items = {entry.work_item_id: entry for entry in listed.interactions}
        check(
            item in open_items
            and open_items[item].state == "connected"
            and open_items[item].agent_id == "alice"
            and open_items[item].interaction_id == "py-call-1",
            "ListOpenInteractions lists the item as connected to alice",
        )
        ended = bridge.request(ended={"work_item_id": item})
        check(ended.code == 0, f"ended is acknowledged with code 0 (got {ended.code} {ended.message!r})")

        # 7. Alice wraps up for 1 s, then is READY again.
        _, event = agent.expect(
            is_kind("item_ended", lambda ended: ended.work_item_id == item), "item_ended", after=busy_seq
        )
        wrap_up = event.item_ended.wrap_up
        check(
            wrap_up.seconds == 1 and wrap_up.nanos == 0,
            f"item_ended carries the queue's 1 s wrap-up (got {wrap_up.seconds}s {wrap_up.nanos}ns)",
        )
        wrap_seq, event = agent.expect(state_is(WRAP_UP), "state_changed WRAP_UP", after=busy_seq)
        wrap_since = event.state_changed.since.ToNanoseconds()
        print("ok - alice's state is WRAP_UP after the item ended")
        _, event = agent.expect(state_is(READY), "state_changed READY after wrap-up", after=wrap_seq)
        ready_since = event.state_changed.since.ToNanoseconds()
        check(
            ready_since - wrap_since >= 900_000_000,
            f"alice is READY again after about 1 s of wrap-up ({(ready_since - wrap_since) / 1e9:.3f} s)",
        )

        # 8. Resubmitting is idempotent.
        again = api.call(BRIDGE, "SubmitInteraction", interaction)
        check(
            again.work_item_id == item and not again.created,
            f"resubmitting py-call-1 answers the same work item with created false "
            f"(got {again.work_item_id}, created {again.created})",
        )

        # 9. Errors.
        unknown = bridge.request(connected={"work_item_id": str(uuid.uuid4())})
        check(
            unknown.code == grpc.StatusCode.NOT_FOUND.value[0],
            f"connected for an unknown work item is acked NOT_FOUND (got {unknown.code} {unknown.message!r})",
        )
        try:
            api.call(BRIDGE, "SubmitInteraction", dict(interaction, interaction_id="py-call-2", from_address="jane"))
            raise AssertionError("from_address 'jane' was accepted")
        except grpc.RpcError as error:
            check(
                error.code() == grpc.StatusCode.INVALID_ARGUMENT,
                f"from_address 'jane' is INVALID_ARGUMENT (got {error.code()})",
            )
            check("from_address" in error.details(), f"the error names from_address ({error.details()!r})")
        nobody = Session(api, AGENT)
        sessions.append(nobody)
        nobody.send(sign_in={"agent_id": "nobody", "ready": True})
        failure = nobody.end()
        check(
            isinstance(failure, grpc.RpcError) and failure.code() == grpc.StatusCode.NOT_FOUND,
            f"signing in as nobody ends the session with NOT_FOUND ({nobody._describe_end()})",
        )
        nobody.close_sending()

        # 10. The completed item is no longer open.
        listed = api.call(BRIDGE, "ListOpenInteractions", {})
        check(
            all(entry.work_item_id != item for entry in listed.interactions),
            "ListOpenInteractions no longer lists the completed item",
        )

        # Close both sessions cleanly.
        signed_out = agent.request(sign_out={})
        check(signed_out.code == 0, f"sign_out is acknowledged with code 0 (got {signed_out.code} {signed_out.message!r})")
        agent.close_sending()
        result = agent.end()
        check(result is None, f"the agent's session ends with OK ({agent._describe_end()})")
        bridge.close_sending()
        result = bridge.end()
        check(result is None, f"the bridge's session ends with OK ({bridge._describe_end()})")
        sessions.clear()
        channel.close()
    finally:
        for session in sessions:
            session.cancel()
        server.stop()
    print("ok - the server stops cleanly")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
