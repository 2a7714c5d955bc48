"""Interop: Python grpcio against a running Switchboard.

Health answers SERVING, reflection lists the four services, a skill, a queue
and an agent can be created, invalid input gets INVALID_ARGUMENT naming the
field, and after a restart everything reads back.

Usage: test_supervisor.py SWITCHBOARD_BINARY DATABASE_URL
"""

import sys

import grpc

from switchboard_peer import Reflected, Server, health_status

SUPERVISOR = "switchboard.v1.SupervisorService"
SERVICES = {
    "switchboard.v1.BridgeService",
    "switchboard.v1.AgentService",
    "switchboard.v1.PresenceService",
    SUPERVISOR,
}


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok - {what}")


def main(binary, database_url):
    server = Server(binary, database_url).start()
    try:
        channel = server.channel()
        check(health_status(channel) == "SERVING", "health Check answers SERVING")
        check(
            health_status(channel, SUPERVISOR) == "SERVING",
            "health Check answers SERVING for SupervisorService",
        )
        api = Reflected(channel)
        check(SERVICES <= api.services(), "reflection lists the four services")

        who = [("x-switchboard-actor", "python-interop")]
        api.call(SUPERVISOR, "CreateSkill", {"skill": {"name": "billing", "description": "invoices"}}, who)
        queue = {
            "id": "billing",
            "description": "Billing",
            "steps": [
                {"requirements": [{"skill": "billing", "min_level": 3}], "duration_secs": 30},
                {"requirements": []},
            ],
        }
        created = api.call(SUPERVISOR, "CreateQueue", {"queue": queue}, who)
        check(created.offer_timeout_secs == 15, "a queue is created with default offer timeout")
        agent = {
            "id": "alice",
            "display_name": "Alice",
            "uc_address": "sip:alice@contoso.example",
            "skills": [{"skill": "billing", "level": 4}],
            "queues": ["billing"],
        }
        api.call(SUPERVISOR, "CreateAgent", {"agent": agent}, who)
        print("ok - creating a skill, a queue and an agent succeeds")

        bad_agent = dict(agent, id="bob", skills=[{"skill": "billing", "level": 6}])
        try:
            api.call(SUPERVISOR, "CreateAgent", {"agent": bad_agent}, who)
            raise AssertionError("proficiency 6 was accepted")
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode.INVALID_ARGUMENT, "proficiency 6 is INVALID_ARGUMENT")
            check("skills[0].level" in error.details(), "the error names the field")
        channel.close()
    finally:
        server.stop()

    server.start()
    try:
        channel = server.channel()
        api = Reflected(channel)
        skill = api.call(SUPERVISOR, "GetSkill", {"name": "billing"})
        check(skill.description == "invoices", "the skill reads back after a restart")
        queue = api.call(SUPERVISOR, "GetQueue", {"id": "billing"})
        check(
            len(queue.steps) == 2 and queue.steps[0].requirements[0].min_level == 3,
            "the queue and its routing steps read back after a restart",
        )
        agent = api.call(SUPERVISOR, "GetAgent", {"id": "alice"})
        check(
            agent.uc_address == "sip:alice@contoso.example" and agent.skills[0].level == 4,
            "the agent reads back after a restart",
        )
        channel.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
