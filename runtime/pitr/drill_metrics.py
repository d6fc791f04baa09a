"""Metrics of the restore drills, for alerts and the dashboard: a collector reading a
`DrillState`.

The last good drill's numbers are kept in a small JSON file (`last-drill.json` beside the
drills' scratch directories) so a restarted sidecar still reports when the last good drill
ran: a restart must neither hide an old drill nor run an extra one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from runtime.pitr.drill import DrillResult

log = logging.getLogger("runtime.pitr.drill")


@dataclass(frozen=True)
class GoodDrill:
    """What the last successful drill measured."""

    finished_at: float  # Unix time
    rto_seconds: float
    rpo_seconds: float
    restored_bytes: int
    throughput_bytes_per_second: float


class DrillState:
    """The last drill and the last good one, shared by the scheduler and the collector."""

    def __init__(self, file: Path | None = None) -> None:
        self._lock = threading.Lock()
        self.file = file
        self._last: DrillResult | None = None
        self._good: GoodDrill | None = self._load()
        self._failures = 0

    def _load(self) -> GoodDrill | None:
        if self.file is None or not self.file.exists():
            return None
        try:
            return GoodDrill(**json.loads(self.file.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring %s: %s", self.file, exc)
            return None

    def _save(self, good: GoodDrill) -> None:
        if self.file is None:
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(json.dumps(good.__dict__))
            os.replace(tmp, self.file)
        except OSError as exc:
            log.warning("the last good drill is not kept across restarts: %s", exc)

    def record(self, result: DrillResult) -> None:
        good = None
        if result.success:
            good = GoodDrill(
                result.started_at + result.duration_seconds,
                result.rto_seconds or 0.0,
                result.rpo_seconds or 0.0,
                result.restored_bytes or 0,
                result.throughput_bytes_per_second or 0.0,
            )
        with self._lock:
            self._last = result
            if good is not None:
                self._good = good
            elif not result.cancelled:
                self._failures += 1
        if good is not None:
            self._save(good)

    def snapshot(self) -> tuple[DrillResult | None, GoodDrill | None, int]:
        with self._lock:
            return self._last, self._good, self._failures


class DrillCollector(Collector):
    """`runtime_pitr_drill_*` series at scrape time (absent until known, except the counter)."""

    def __init__(self, state: DrillState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        last, good, failures = self.state.snapshot()
        if last is not None and not last.cancelled:
            yield GaugeMetricFamily(
                "runtime_pitr_drill_last_timestamp_seconds",
                "Unix time the last restore drill finished, whatever its outcome",
                value=last.started_at + last.duration_seconds,
            )
            yield GaugeMetricFamily(
                "runtime_pitr_drill_last_success",
                "1 if the last restore drill passed, 0 if it failed",
                value=1 if last.success else 0,
            )
        if good is not None:
            for name, help_text, value in (
                ("last_success_timestamp_seconds", "Unix time the last good drill finished",
                 good.finished_at),
                ("rto_seconds", "Measured RTO of the last good drill: restore start to a "
                 "promoted, checked copy", good.rto_seconds),
                ("rpo_seconds", "Measured RPO of the last good drill: its target minus the "
                 "newest heartbeat in the copy", good.rpo_seconds),
                ("restored_bytes", "Size of the last good drill's restored copy",
                 good.restored_bytes),
                ("restore_throughput_bytes_per_second", "Restore throughput of the last good "
                 "drill", good.throughput_bytes_per_second),
            ):  # fmt: skip
                yield GaugeMetricFamily(f"runtime_pitr_drill_{name}", help_text, value=value)
        yield CounterMetricFamily(
            "runtime_pitr_drill_failures",
            "Failed restore drills since the runtime started",
            value=failures,
        )
