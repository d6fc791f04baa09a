"""`python -m runtime pitr drill`: one restore drill now, its result on stdout, recorded
where the sidecar's metrics read it (`drill_metrics.STATE_FILE` in the scratch path).

Exit codes (runtime/exits.py): 0 the drill passed; 1 it failed (the reason on stderr);
2 refused before anything was written (no backup, not enough disk); 130 interrupted by
SIGTERM/SIGINT, after the copy was stopped and its directory deleted.
"""

from __future__ import annotations

import json
import signal
from dataclasses import asdict
from datetime import datetime
from types import FrameType
from typing import Any

from runtime.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, error
from runtime.pitr.drill import Drill, DrillResult
from runtime.pitr.drill_metrics import STATE_FILE, DrillState
from runtime.settings import PitrSettings


def summary(result: DrillResult) -> dict[str, Any]:
    """The result as JSON-ready values (times as ISO 8601)."""
    payload = asdict(result)
    payload["throughput_bytes_per_second"] = result.throughput_bytes_per_second
    payload["counts"] = {t: {"primary": p, "copy": c} for t, (p, c) in result.counts.items()}
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in payload.items()}


def run_drill(settings: PitrSettings, as_json: bool = False) -> int:
    """Run one drill; SIGTERM or SIGINT cancels it (cleanup included) instead of killing us."""
    drill = Drill(settings)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        drill.cancel()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        result = drill.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    # the sidecar's metrics read this file: an on-demand drill shows there as a scheduled one
    DrillState(settings.drill_scratch / STATE_FILE).record(result)
    if as_json:
        print(json.dumps(summary(result)))
    if result.error is not None:
        error(result.error)
        if result.cancelled:
            return EXIT_INTERRUPTED
        return EXIT_USAGE if result.refused else EXIT_FAILED
    if not as_json:
        mib = (result.restored_bytes or 0) / (1 << 20)
        rate = (result.throughput_bytes_per_second or 0) / (1 << 20)
        print(
            f"drill passed: restored {result.backup_label} to {result.target:%Y-%m-%d %H:%M:%S%z}"
            f" ({mib:.1f} MiB at {rate:.1f} MiB/s); RTO {result.rto_seconds:.1f} s, "
            f"RPO {result.rpo_seconds:.1f} s"
        )
    return EXIT_OK
