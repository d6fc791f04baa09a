"""System metrics as the specification's `MetricsData`: CPU, memory and response time.

Memory inside a container is the container's: `psutil.virtual_memory()` reads the host's
/proc/meminfo, so we read the cgroup (v2 `memory.current`/`memory.max`, v1
`memory.usage_in_bytes`/`memory.limit_in_bytes`) and, like `docker stats` and cAdvisor,
subtract reclaimable page cache (`inactive_file`). An unlimited cgroup is measured against
the host's total memory; without cgroup memory files we fall back to the host figure.

CPU: psutil's first `cpu_percent()` is a meaningless 0.0 (there is no previous sample), so
`CpuSampler` keeps its own previous reading and, the first time, samples over a short window.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

# A v1 cgroup without a limit reports PAGE_COUNTER_MAX rounded to pages (~2**63).
_UNLIMITED_V1 = 2**62


@dataclass(frozen=True)
class MemoryReading:
    """Bytes in use and the limit they count against, and where the numbers came from."""

    used_bytes: int
    limit_bytes: int
    source: str  # "cgroup-v2", "cgroup-v1" or "host"

    @property
    def percent(self) -> float:
        return min(100.0, max(0.0, 100.0 * self.used_bytes / self.limit_bytes))


@dataclass(frozen=True)
class DiskReading:
    """A filesystem's size and use; `free_bytes` is what unprivileged writers can still use."""

    path: str
    total_bytes: int
    used_bytes: int
    free_bytes: int

    @property
    def percent(self) -> float:
        """Like df's Use%: used over what a normal user could fill (used + available)."""
        usable = self.used_bytes + self.free_bytes
        return 100.0 * self.used_bytes / usable if usable else 0.0


def read_disks(paths: Iterable[str]) -> list[DiskReading]:
    """Disk use of the filesystems holding `paths` (raises OSError for a missing path)."""
    readings = []
    for path in paths:
        usage = shutil.disk_usage(path)
        readings.append(DiskReading(path, usage.total, usage.used, usage.free))
    return readings


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat_value(path: Path, *keys: str) -> int:
    """The first of `keys` found in a cgroup `memory.stat` file, or 0."""
    try:
        lines = path.read_text().splitlines()
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return 0
    values = dict(line.split(maxsplit=1) for line in lines if " " in line)
    for key in keys:
        if key in values:
            return int(values[key])
    return 0


class CgroupMemoryReader:
    """Reads the memory of the cgroup this process is in, under `root` (injectable for tests).

    The process's own cgroup comes from `proc_self_cgroup`; inside a container with a cgroup
    namespace (or a bind-mounted hierarchy) that path may not exist under `root`, and the
    mount point itself is the container's cgroup, so both are tried, most specific first.
    """

    def __init__(
        self,
        root: Path | str = "/sys/fs/cgroup",
        proc_self_cgroup: Path | str = "/proc/self/cgroup",
        host_total_bytes: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.proc_self_cgroup = Path(proc_self_cgroup)
        self._host_total = host_total_bytes

    def _own_paths(self) -> dict[str, str]:
        """Controller ("" for v2, "memory" for v1) -> this process's cgroup path."""
        paths: dict[str, str] = {}
        try:
            lines = self.proc_self_cgroup.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return paths
        for line in lines:
            parts = line.split(":", 2)
            if len(parts) != 3:
                continue
            for controller in parts[1].split(","):
                paths[controller] = parts[2].lstrip("/")
        return paths

    def _host_total_bytes(self) -> int:
        return self._host_total or int(psutil.virtual_memory().total)

    def _candidates(self, base: Path, relative: str | None) -> list[Path]:
        found = [base / relative] if relative else []
        return [*found, base]

    def read(self) -> MemoryReading:
        own = self._own_paths()
        for directory in self._candidates(self.root, own.get("")):
            usage = _read_int(directory / "memory.current")
            if usage is not None:
                limit = _read_int(directory / "memory.max")
                cache = _stat_value(directory / "memory.stat", "inactive_file")
                return self._reading(usage - cache, limit, "cgroup-v2")
        for directory in self._candidates(self.root / "memory", own.get("memory")):
            usage = _read_int(directory / "memory.usage_in_bytes")
            if usage is not None:
                limit = _read_int(directory / "memory.limit_in_bytes")
                cache = _stat_value(
                    directory / "memory.stat", "total_inactive_file", "inactive_file"
                )
                if limit is not None and limit >= _UNLIMITED_V1:
                    limit = None
                return self._reading(usage - cache, limit, "cgroup-v1")
        memory = psutil.virtual_memory()
        return MemoryReading(int(memory.total - memory.available), int(memory.total), "host")

    def _reading(self, used: int, limit: int | None, source: str) -> MemoryReading:
        host_total = self._host_total_bytes()
        if limit is None or limit <= 0 or limit > host_total:
            limit = host_total
        return MemoryReading(max(0, used), limit, source)


def _busy_and_total(times: object) -> tuple[float, float]:
    """psutil's own arithmetic: guest time is already counted in user time on Linux."""
    fields = times._asdict()  # type: ignore[attr-defined]
    total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return total - idle, total


class CpuSampler:
    """System-wide CPU use in percent since the previous call (its own state, per sampler).

    The first call, or a call less than `min_window` after the previous one, samples over
    `min_window` seconds instead of returning psutil's meaningless first 0.0.
    """

    def __init__(self, min_window: float = 0.2) -> None:
        if min_window <= 0:
            raise ValueError(f"min_window: got {min_window!r}; allowed: a number > 0")
        self.min_window = min_window
        self._lock = threading.Lock()
        self._previous: tuple[float, float, float] | None = None  # (monotonic, busy, total)

    def _now(self) -> tuple[float, float, float]:
        busy, total = _busy_and_total(psutil.cpu_times())
        return time.monotonic(), busy, total

    def percent(self) -> float:
        with self._lock:
            previous = self._previous
            if previous is None or time.monotonic() - previous[0] < self.min_window:
                previous = self._now()
                time.sleep(self.min_window)
            current = self._now()
            self._previous = current
        total = current[2] - previous[2]
        if total <= 0:
            return 0.0
        return min(100.0, max(0.0, 100.0 * (current[1] - previous[1]) / total))
