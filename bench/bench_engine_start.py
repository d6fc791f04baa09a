"""Start-up of the dev stack's recorded containers on a real engine (UT-INFRA-01.1).

    .venv/bin/python -m bench.bench_engine_start [--rounds 3] [--redeploy] [--against REV]

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
import json
import os
import re
import statistics
import subprocess
import tempfile
from pathlib import Path
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


def one_round(
    engine: Engine, applier: Applier, *, redeploy: bool = False
) -> tuple[dict[str, float], float]:
    """One deployment from nothing (volumes removed: PostgreSQL's initdb), or with `redeploy`
    a deployment of new containers onto the volumes the previous one left."""
    applier.down(volumes=not redeploy, grace=5 if not redeploy else None)
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


def workload_deps_at(rev: str) -> dict[str, list[str]]:
    """Each workload's dependencies (by service name) in the dev records at git revision
    `rev`: that revision's tree, run under the mocks in a process of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        (tree / ".venv").symlink_to(ROOT / ".venv")
        script = (
            "import json; from tests.stack_harness import run_stack; "
            f"r = run_stack('dev', {ENGINE_OVERRIDES!r}); "
            "print(json.dumps({s: sorted(r.container_dependencies(s)) for s in r.workloads()}))"
        )
        out = subprocess.run(
            [str(ROOT / ".venv/bin/python"), "-c", script],
            cwd=tree,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    deps: dict[str, list[str]] = json.loads(out.splitlines()[-1])
    return deps


def with_order_of(run: StackRun, deps: dict[str, list[str]]) -> StackRun:
    """A copy of the records whose workloads wait for what `deps` says (another revision's
    start order), every input unchanged: the two differ in the start order alone."""
    changed = copy.deepcopy(run)
    workloads = changed.workloads()
    urns = {s: r.urn for s, r in workloads.items()}
    for service, record in workloads.items():
        others = [d for d in record.dependencies if d not in urns.values()]
        record.dependencies = others + [urns[d] for d in deps.get(service, []) if d in urns]
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
    parser.add_argument(
        "--against",
        default="",
        metavar="REV",
        help="also apply the same records with the start order (the containers' dependencies) "
        "of git revision REV, alternating with the current one in each round",
    )
    parser.add_argument(
        "--redeploy",
        action="store_true",
        help="after each deployment from nothing, also measure a redeployment: every "
        "container removed and created again onto the volumes kept (PostgreSQL initialised)",
    )
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
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
        if args.against:
            variants[f"start order of {args.against}"] = with_order_of(
                run, workload_deps_at(args.against)
            )
        appliers = {v: Applier(engine.client(), r, omit=NOT_RUN) for v, r in variants.items()}
        for n in range(args.rounds):
            for variant, applier in appliers.items():
                kinds = [("first deployment", False)]
                if args.redeploy:
                    kinds.append(("redeployment", True))
                for kind, redeploy in kinds:
                    key = f"{variant}, {kind}"
                    results.setdefault(key, []).append(
                        one_round(engine, applier, redeploy=redeploy)
                    )
                    if n == args.rounds - 1:
                        print(f"## {key}: where the last round's time went\n")
                        explain(applier)
        applier.down(grace=5)
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    finally:
        engine.stop()
    for key, rounds in results.items():
        table(key, appliers[key.rpartition(", ")[0]], rounds)
    if args.against:
        ratios(results)


def ratios(results: dict[str, list[tuple[dict[str, float], float]]]) -> None:
    """The whole deployment's median, each variant against the first (same run, same load)."""
    print("| variant | whole deployment, median (s) | ratio to the first of its kind |")
    print("|---|---|---|")
    base: dict[str, float] = {}
    for key, rounds in results.items():
        kind = key.rpartition(", ")[2]
        median = statistics.median(r[1] for r in rounds)
        base.setdefault(kind, median)
        print(f"| {key} | {median:.2f} | {median / base[kind]:.2f} |")
    print()


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
    print("each round's whole deployment (s):", ", ".join(f"{t:.2f}" for t in totals), "\n")


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
