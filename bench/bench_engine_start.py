"""Start-up of the dev stack's recorded containers on a real engine (UT-INFRA-01.1).

    .venv/bin/python -m bench.bench_engine_start [--rounds 3]

Starts a dockerd of its own (tests/engine/daemon.py; scripts/bootstrap-engine prepares it),
builds the stand-ins and the project's images, then applies the dev records (the tier's
settings: tests/engine/standin_images.py) `--rounds` times from nothing, and prints, from the
engine's own event log, each service's create -> healthy time and the whole deployment's
(first create -> last healthy), against the specification's < 1 s per service start and
< 10 s per deployment. Prints Markdown for docs/engine-stack.md.

Then, from the last round, where each service's time goes: create -> start (the API calls:
create, network connect, uploads, start), start -> first probe (the health check's
`start_interval`), how many probes it took and how long one runs (the engine's own health
log), and the chain of dependencies that ends last (what bounds the deployment), with
PostgreSQL's first start broken down from its log.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import re
import statistics
from typing import Any

from tests.engine.applier import Applier
from tests.engine.daemon import Engine, start_engine
from tests.engine.images import build, import_base, pinned_base_tags, recorded_builds, serve_mirror
from tests.engine.observe import Lifecycle, lifecycles
from tests.engine.standin_images import ENGINE_OVERRIDES, NOT_RUN, build_standins
from tests.stack_harness import ROOT, StackRun, run_stack

LAST: dict[str, Lifecycle] = {}  # the last round's lifecycles, by container name
SERVICE_TARGET = 1.0  # seconds, per service start (the specification)
DEPLOYMENT_TARGET = 10.0  # seconds, per deployment


def engine_time(stamp: str) -> float:
    """An engine timestamp (RFC 3339, nanoseconds) in seconds since the epoch."""
    whole, _, rest = stamp.rstrip("Z").partition(".")
    fraction = re.match(r"\d*", rest)
    digits = fraction.group(0) if fraction else ""
    when = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
    return when.timestamp() + (float(f"0.{digits}") if digits else 0.0)


def breakdown(applier: Applier, service: str, one: Lifecycle) -> dict[str, Any]:
    """Where a service's create -> healthy went, from the engine's events and health log."""
    assert one.created is not None
    row: dict[str, Any] = {"create->start": one.started[0] - one.created}
    state = applier.api.inspect_container(applier.container(service))["State"]
    probes = [
        (engine_time(p["Start"]), engine_time(p["End"]), p["ExitCode"])
        for p in state.get("Health", {}).get("Log") or []
    ]
    if probes and one.healthy:
        until = [p for p in probes if p[1] <= one.healthy[0] + 0.01]
        row["start->1st probe"] = probes[0][0] - one.started[0]
        row["probes"] = f"{len(until)} ({sum(1 for p in until if p[2] != 0)} failed)"
        row["probe run"] = statistics.median(p[1] - p[0] for p in probes)
    return row


def critical_path(applier: Applier, ends: dict[str, float]) -> list[str]:
    """The dependency chain that ends last: from the last service back to a root."""
    chain = [max(ends, key=lambda s: ends[s])]
    while applier.plan.deps[chain[-1]]:
        chain.append(max(applier.plan.deps[chain[-1]], key=lambda s: ends[s]))
    return chain[::-1]


POSTGRES_STEPS = (
    "creating configuration files",
    "database system is ready to accept connections",
    "docker-entrypoint: running",
    "stanza-create",
    "received fast shutdown request",
    "init process complete",
)


def postgres_first_start(applier: Applier, started: float) -> list[tuple[float, str]]:
    """The moments of PostgreSQL's first start (initdb, the temporary server, the init
    scripts, the restart) from its log, in seconds after the container's start."""
    logs = applier.api.logs(applier.container("postgres"), timestamps=True).decode(errors="replace")
    moments = []
    for line in logs.splitlines():
        stamp, _, text = line.partition(" ")
        if any(step in text for step in POSTGRES_STEPS):
            moments.append((engine_time(stamp) - started, text.strip()[:100]))
    return moments


def one_round(engine: Engine, applier: Applier) -> tuple[dict[str, float], float]:
    applier.down(grace=5)
    applier.up()
    life = lifecycles(engine.client(), applier.applied_at)
    LAST.clear()
    LAST.update(life)
    per_service = {}
    created, done = [], []
    for service in applier.plan.order():
        one = life[applier.container(service)]
        assert one.created is not None
        created.append(one.created)
        end = one.healthy[0] if applier.waits(service) else one.started[0]
        done.append(end)
        per_service[service] = end - one.created
    return per_service, max(done) - min(created)


def with_start_interval(run: StackRun, interval: str) -> StackRun:
    """A copy of the records with every health check's `startInterval` set to `interval`."""
    changed = copy.deepcopy(run)
    for record in changed.containers().values():
        if "healthcheck" in record.inputs:
            record.inputs["healthcheck"]["startInterval"] = interval
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--start-intervals",
        default="",
        help="comma-separated health check start intervals to compare with the records' own "
        "(e.g. 500ms,250ms); the variants alternate within each round, so they share the "
        "machine's load",
    )
    args = parser.parse_args()
    engine = start_engine()
    results: dict[str, list[tuple[dict[str, float], float]]] = {}
    try:
        import_base(engine, pinned_base_tags())
        run = run_stack("dev", ENGINE_OVERRIDES)
        with serve_mirror(engine):
            build_standins(engine.client())
            for spec in recorded_builds(run).values():
                context = ROOT / spec["build"]["context"]
                build(
                    engine,
                    context,
                    spec["build"]["dockerfile"],
                    spec["imageName"],
                    spec["build"].get("args"),
                )
        variants = {"as recorded": run} | {
            v: with_start_interval(run, v) for v in args.start_intervals.split(",") if v
        }
        appliers = {v: Applier(engine.client(), r, omit=NOT_RUN) for v, r in variants.items()}
        for n in range(args.rounds):
            for variant, applier in appliers.items():
                results.setdefault(variant, []).append(one_round(engine, applier))
                if n == args.rounds - 1:
                    print(f"## {variant}: where the last round's time went\n")
                    explain(applier)
        applier.down(grace=5)
    finally:
        engine.stop()
    for variant, rounds in results.items():
        table(variant, appliers[variant], rounds)


def table(variant: str, applier: Applier, rounds: list[tuple[dict[str, float], float]]) -> None:
    print(f"## {variant}\n")
    print(f"| service | create -> healthy, median of {len(rounds)} (s) | max (s) | < 1 s |")
    print("|---|---|---|---|")
    for service in applier.plan.order():
        times = [r[0][service] for r in rounds]
        ok = "yes" if max(times) < SERVICE_TARGET else "no"
        print(f"| {service} | {statistics.median(times):.2f} | {max(times):.2f} | {ok} |")
    totals = [r[1] for r in rounds]
    ok = "yes" if max(totals) < DEPLOYMENT_TARGET else "no"
    print(
        f"| **whole deployment** (first create -> last healthy) | "
        f"{statistics.median(totals):.2f} | {max(totals):.2f} | < 10 s: {ok} |\n"
    )


def explain(applier: Applier) -> None:
    """Where the last round's time went (printed before the tables)."""
    first = min(LAST[applier.container(s)].created or 0.0 for s in applier.plan.containers)
    ends = {}
    print("| service | created at (s) | create->start | start->1st probe | probes | probe run |")
    print("|---|---|---|---|---|---|")
    for service in applier.plan.order():
        one = LAST[applier.container(service)]
        assert one.created is not None
        ends[service] = (one.healthy or one.started)[0] - first
        row = breakdown(applier, service, one)
        cells = [
            f"{row[k]:.2f}" if isinstance(row.get(k), float) else str(row.get(k, "-"))
            for k in ("create->start", "start->1st probe", "probes", "probe run")
        ]
        print(f"| {service} | {one.created - first:.2f} | " + " | ".join(cells) + " |")
    chain = critical_path(applier, ends)
    print("\ncritical path:", " -> ".join(f"{s} (done at {ends[s]:.2f} s)" for s in chain))
    started = LAST[applier.container("postgres")].started[0]
    print("\nPostgreSQL's first start, seconds after its container's start:")
    for at, text in postgres_first_start(applier, started):
        print(f"  {at:6.2f}  {text}")
    print()


if __name__ == "__main__":
    main()
