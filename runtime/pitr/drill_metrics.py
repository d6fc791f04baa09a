"""Metrics of the restore drills, for alerts and the dashboard: a collector reading a
`DrillState`.

Every drill, scheduled by the sidecar or run by an operator (`docker exec ... python -m runtime
pitr drill`), records its result in one small JSON file (`last-drill.json` beside the drills'
scratch directories, on the sidecar's scratch volume), replaced atomically under a lock. The
collector reads that file at each scrape, so the series show the most recent drill whichever
process ran it, and a restarted sidecar still reports when the last good drill ran: a restart
must neither hide an old drill nor make `RestoreDrillMissing` fire after a good one.

The file also keeps when this volume's drills were first switched on
(`runtime_pitr_drill_enabled_since_timestamp_seconds`), so `RestoreDrillMissing` fires when no
drill has ever passed, instead of staying quiet for want of a series.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from runtime.pitr.drill import LOCK_FILE, DrillResult, open_lock_file

log = logging.getLogger("runtime.pitr.drill")
STATE_FILE = "last-drill.json"  # in `pitr.drill.scratch_path`, beside the `drill-*` directories
# What stays in the scratch path between drills (the rest, `drill-*`, is deleted by each drill)
KEPT_FILES = frozenset({LOCK_FILE, STATE_FILE, STATE_FILE + ".lock"})


@dataclass(frozen=True)
class GoodDrill:
    """What the last successful drill measured."""

    finished_at: float  # Unix time
    rto_seconds: float
    rpo_seconds: float
    restored_bytes: int
    throughput_bytes_per_second: float


@dataclass(frozen=True)
class LastDrill:
    """The last drill that ran to an outcome (cancelled ones are not recorded)."""

    finished_at: float  # Unix time
    success: bool
    error: str | None = None


@dataclass(frozen=True)
class Recorded:
    """Everything the file keeps."""

    enabled_since: float | None = None
    last: LastDrill | None = None
    good: GoodDrill | None = None
    failures: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recorded:
        if "rto_seconds" in data:  # the file before on-demand drills were recorded: one GoodDrill
            return cls(good=GoodDrill(**data))
        last, good = data.get("last"), data.get("good")
        return cls(
            enabled_since=data.get("enabled_since"),
            last=LastDrill(**last) if last else None,
            good=GoodDrill(**good) if good else None,
            failures=int(data.get("failures", 0)),
        )


class DrillState:
    """The recorded drills, shared by every drill on this scratch volume (the sidecar's
    scheduler, an operator's CLI run) and the sidecar's collector. `file=None`: in memory only."""

    def __init__(self, file: Path | None = None) -> None:
        self._lock = threading.Lock()
        self.file = file
        self._memory = self._read() or Recorded()

    def _read(self) -> Recorded | None:
        if self.file is None or not self.file.exists():
            return None
        try:
            return Recorded.from_json(json.loads(self.file.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring %s: %s", self.file, exc)
            return None

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialise read-modify-write across processes (the sidecar and `docker exec`)."""
        assert self.file is not None
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with open_lock_file(self.file.with_name(self.file.name + ".lock")) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, recorded: Recorded) -> None:
        assert self.file is not None
        fd, tmp = tempfile.mkstemp(prefix=f".{self.file.name}.", dir=self.file.parent)
        try:
            os.fchmod(fd, 0o644)  # whoever writes it (root: `docker exec -u 0`), uid 999 reads it
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(recorded), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.file)  # readers see the old file or the new one, never half
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _update(self, change: Any) -> None:
        """Apply `change(Recorded) -> Recorded` to the file (and memory), under the lock."""
        with self._lock:
            if self.file is not None:
                try:
                    with self._file_lock():
                        self._memory = change(self._read() or Recorded())
                        self._write(self._memory)
                    return
                except OSError as exc:
                    log.warning("the drill's result is not kept in %s: %s", self.file, exc)
            self._memory = change(self._memory)

    def enable(self, now: float | None = None) -> None:
        """Drills are on here: keep the first time they were (a restart keeps the old one)."""
        at = time.time() if now is None else now

        def change(r: Recorded) -> Recorded:
            return r if r.enabled_since is not None else Recorded(at, r.last, r.good, r.failures)

        self._update(change)

    def record(self, result: DrillResult) -> None:
        """Record a drill's outcome; a cancelled drill, or one refused because another was
        running, changes nothing."""
        if result.cancelled or result.busy:
            return
        finished = result.started_at + result.duration_seconds
        last = LastDrill(finished, result.success, result.error)
        good = None
        if result.success:
            good = GoodDrill(
                finished,
                result.rto_seconds or 0.0,
                result.rpo_seconds or 0.0,
                result.restored_bytes or 0,
                result.throughput_bytes_per_second or 0.0,
            )

        def change(r: Recorded) -> Recorded:
            failures = r.failures + (0 if result.success else 1)
            return Recorded(r.enabled_since, last, good or r.good, failures)

        self._update(change)

    def snapshot(self) -> Recorded:
        """What the file holds now (another process may have written it), else memory."""
        found = self._read()
        with self._lock:
            if found is not None:
                self._memory = found
            return self._memory


class DrillCollector(Collector):
    """`runtime_pitr_drill_*` series at scrape time (absent until known, except the counter)."""

    def __init__(self, state: DrillState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        recorded = self.state.snapshot()
        if recorded.enabled_since is not None:
            yield GaugeMetricFamily(
                "runtime_pitr_drill_enabled_since_timestamp_seconds",
                "Unix time restore drills were first switched on for this scratch volume",
                value=recorded.enabled_since,
            )
        last, good = recorded.last, recorded.good
        if last is not None:
            yield GaugeMetricFamily(
                "runtime_pitr_drill_last_timestamp_seconds",
                "Unix time the last restore drill finished, whatever its outcome",
                value=last.finished_at,
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
            "Failed restore drills recorded on this scratch volume (scheduled and on demand)",
            value=recorded.failures,
        )
