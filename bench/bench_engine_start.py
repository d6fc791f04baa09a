"""Start-up of the dev stack's recorded containers on a real engine (UT-INFRA-01.1).

    .venv/bin/python -m bench.bench_engine_start [--rounds 3]

Starts a dockerd of its own (tests/engine/daemon.py; scripts/bootstrap-engine prepares it),
builds the stand-ins and the project's images, then applies the dev records (the tier's
settings: tests/engine/standin_images.py) `--rounds` times from nothing, and prints, from the
engine's own event log, each service's create -> healthy time and the whole deployment's
(first create -> last healthy), against the specification's < 1 s per service start and
< 10 s per deployment. Prints Markdown for docs/engine-tests.md.
"""

from __future__ import annotations

import argparse
import statistics

from tests.engine.applier import Applier
from tests.engine.daemon import Engine, start_engine
from tests.engine.images import build, import_base, pinned_base_tags, recorded_builds, serve_mirror
from tests.engine.observe import lifecycles
from tests.engine.standin_images import ENGINE_OVERRIDES, NOT_RUN, build_standins
from tests.stack_harness import ROOT, run_stack

SERVICE_TARGET = 1.0  # seconds, per service start (the specification)
DEPLOYMENT_TARGET = 10.0  # seconds, per deployment


def one_round(engine: Engine, applier: Applier) -> tuple[dict[str, float], float]:
    applier.down(grace=5)
    applier.up()
    life = lifecycles(engine.client(), applier.applied_at)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    engine = start_engine()
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
        applier = Applier(engine.client(), run, omit=NOT_RUN)
        rounds = [one_round(engine, applier) for _ in range(args.rounds)]
        applier.down(grace=5)
    finally:
        engine.stop()
    print(f"| service | create -> healthy, median of {args.rounds} (s) | max (s) | < 1 s |")
    print("|---|---|---|---|")
    for service in applier.plan.order():
        times = [r[0][service] for r in rounds]
        ok = "yes" if max(times) < SERVICE_TARGET else "no"
        print(f"| {service} | {statistics.median(times):.2f} | {max(times):.2f} | {ok} |")
    totals = [r[1] for r in rounds]
    ok = "yes" if max(totals) < DEPLOYMENT_TARGET else "no"
    print(
        f"| **whole deployment** (first create -> last healthy) | "
        f"{statistics.median(totals):.2f} | {max(totals):.2f} | < 10 s: {ok} |"
    )


if __name__ == "__main__":
    main()
