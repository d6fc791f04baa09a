"""The prod-shaped replica record against the dev primary, and the sidecar's physical backup
through the socket volume, on a real engine (a bring-up of its own: the test stops streaming).

The prod run's replica joins the dev stack's backend network (the records name the same
network) and finds the primary by its alias; the mocks give both runs the same replication
password, so the prod record's password file matches the dev primary's role.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.engine.applier import Applier
from tests.engine.daemon import Engine
from tests.engine.observe import exec_in, state, wait_for
from tests.stack_harness import stack_run

# The first test of a session also waits for the images' builds (tests/engine/conftest.py).
pytestmark = pytest.mark.timeout(1800)


REPLICA = "postgres-replica-1"
PSQL = ("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", "app")


def sql(stack: Applier, container: str, query: str) -> str:
    code, out = exec_in(
        stack.client,
        container,
        [*PSQL, "-c", query],
        user="postgres",
    )
    assert code == 0, out
    return out.strip()


@pytest.fixture(scope="module")
def replica(engine: Engine, dev_stack: Applier) -> Iterator[Applier]:
    """The prod run's replica record, applied next to the dev stack (its own volume)."""
    prod = Applier(engine.client(), stack_run("prod"), omit=[])
    prod.create_volumes()
    prod.create(REPLICA)  # waits for the record's health check: streaming-check
    yield prod
    prod.remove(REPLICA, grace=5)
    volume = prod.volume_names()["platform-docker-postgres-replica-1-data"]
    engine.client().volumes.get(volume).remove()


def test_the_replica_bootstraps_and_streams_through_its_slot(
    dev_stack: Applier, replica: Applier
) -> None:
    primary = dev_stack.container("postgres")
    standby = replica.container(REPLICA)
    assert (
        sql(
            dev_stack,
            primary,
            "SELECT active FROM pg_replication_slots WHERE slot_name = 'postgres_replica_1'",
        )
        == "t"
    )
    assert (
        sql(
            dev_stack,
            primary,
            "SELECT state FROM pg_stat_replication WHERE application_name = 'postgres_replica_1'",
        )
        == "streaming"
    )
    assert sql(replica, standby, "SELECT pg_is_in_recovery()") == "t"
    sql(
        dev_stack,
        primary,
        "CREATE TABLE IF NOT EXISTS replicated (v text); "
        "INSERT INTO replicated VALUES ('from the primary')",
    )
    wait_for(
        "the row on the replica",
        lambda: (
            exec_in(
                replica.client,
                standby,
                [
                    "psql",
                    "-X",
                    "-A",
                    "-t",
                    "-U",
                    "app",
                    "-d",
                    "app",
                    "-c",
                    "SELECT v FROM replicated",
                ],
                user="postgres",
            )[1].strip()
            == "from the primary"
        ),
        timeout=30,
    )


def test_the_replica_turns_unhealthy_when_streaming_stops(
    dev_stack: Applier, replica: Applier
) -> None:
    primary = dev_stack.container("postgres")
    standby = replica.container(REPLICA)
    sql(dev_stack, primary, "ALTER ROLE replicator NOLOGIN")
    try:
        sql(dev_stack, primary, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
        wait_for(
            "the replica's health check to report unhealthy",
            lambda: state(replica.client, standby)["Health"]["Status"] == "unhealthy",
            timeout=90,
            interval=1,
        )
        assert state(replica.client, standby)["Running"], "unhealthy, not stopped"
    finally:
        sql(dev_stack, primary, "ALTER ROLE replicator LOGIN")
    wait_for(
        "the replica healthy again once it can stream",
        lambda: state(replica.client, standby)["Health"]["Status"] == "healthy",
        timeout=90,
        interval=1,
    )


def test_the_sidecar_takes_a_pgbackrest_backup_through_the_socket_volume(
    dev_stack: Applier,
) -> None:
    runtime = dev_stack.container("runtime")
    info_argv = ["python", "-m", "runtime", "pitr", "info", "--json"]
    before = {
        b["label"] for b in json.loads(exec_in(dev_stack.client, runtime, info_argv)[1])["backups"]
    }
    code, uid = exec_in(dev_stack.client, runtime, ["id", "-u"])
    assert (code, uid.strip()) == (0, "999")
    started = time.time()
    code, out = exec_in(
        dev_stack.client, runtime, ["python", "-m", "runtime", "pitr", "backup", "--type", "full"]
    )
    assert code == 0, out
    code, out = exec_in(
        dev_stack.client, runtime, ["python", "-m", "runtime", "pitr", "info", "--json"]
    )
    assert code == 0, out
    info = json.loads(out)
    print("pitr info:", json.dumps(info)[:400], f"(backup took {time.time() - started:.1f}s)")
    new = [b for b in info["backups"] if b["label"] not in before]
    assert [(b["type"], b["error"]) for b in new] == [("full", False)], info["backups"]
