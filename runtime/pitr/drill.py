"""A restore drill: prove the physical backups and the WAL archive by restoring them, measured.

One drill (docs/runtime-pitr-drill.md):
1. removes what an earlier, killed drill left in the scratch directory;
2. refuses, before writing anything, when the newest backup would not fit there;
3. marks the target on the primary: one REPEATABLE READ snapshot gives the time and the row
   counts of `drill_tables`; a heartbeat committed after it gives recovery a commit to stop
   at; then waits (at most `drill_margin_seconds`) until the archive holds that commit's WAL
   segment, so the target is "now minus the archive's lag";
4. restores that point into a fresh `drill-*` directory under `drill_scratch` (never
   `pg_data`) with `archive-mode=off`, starts it on a private socket-only port and waits for
   promotion, all under `nice`/`ionice` and small memory settings;
5. checks recovery reached the target (`restore.recovery_outcome`, as `pitr restore --start`),
   reads the heartbeat (RPO = target minus the newest beat in the copy) and compares the
   counts; RTO is the time from the start of the restore to the checked copy;
6. always stops the copy and deletes its directory: on success, on failure, on timeout and
   when `cancel()` is called (SIGTERM to the CLI or the sidecar).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

from runtime.errors import redact
from runtime.pitr.backups import repo_info
from runtime.pitr.heartbeat import beat, connect, last_beat
from runtime.pitr.info import RepoInfo
from runtime.pitr.pgbackrest import (
    Completed,
    Pgbackrest,
    PitrError,
    chown_to,
    error_text,
    prepare_config,
)
from runtime.pitr.restore import (
    pg_ctl,
    recovery_outcome,
    restore_options,
    running_postmaster,
    segment_size,
    start_and_wait,
)
from runtime.settings import PitrSettings

PREFIX = "drill-"
LOCK_FILE = ".drill.lock"  # in the scratch path; held while a drill runs
# Lowest CPU and IO priority: the drill shares the host with the primary. `ionice -c 3` (idle)
# takes effect with the BFQ/CFQ schedulers; elsewhere the `nice` level still applies.
LOW_PRIORITY = ("nice", "-n", "19", "ionice", "-c", "3")
# The copy only answers the checks: few connections, memory from `pitr.drill.memory_mb`
# (`memory_options`). `hot_standby=off`: with it on, recovery refuses settings below the
# primary's (PostgreSQL "recovery aborted because of insufficient parameter settings"); nobody
# reads before promotion.
SERVER_OPTIONS = (
    "-c listen_addresses='' -c archive_mode=off -c max_connections=10 -c max_wal_senders=0 "
    "-c max_replication_slots=0 -c hot_standby=off"
)


def memory_options(memory_mb: int) -> str:
    """The copy's memory settings within `memory_mb` (64: 32MB shared buffers, 16MB
    maintenance, 4MB per sort): half for shared buffers, the rest for its few backends."""
    return (
        f"-c shared_buffers={memory_mb // 2}MB -c maintenance_work_mem={memory_mb // 4}MB "
        f"-c work_mem={max(1, memory_mb // 16)}MB"
    )


WAL_HEADROOM = 256 << 20  # WAL replayed into pg_wal on top of the backup's size


def open_lock_file(path: Path) -> IO[bytes]:
    """A lock file opened read-only (created if missing): flock needs no write access, so a
    lock file another user created (root, with `docker exec -u 0`) still works for uid 999."""
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_CREAT, 0o644), "rb")


class DrillRefused(PitrError):
    """The drill did not start: nothing was written (e.g. not enough disk)."""


class DrillCancelled(PitrError):
    """`cancel()` was called: the drill stopped and cleaned up."""


@dataclass(frozen=True)
class DrillResult:
    """The outcome of one drill. Measurements are None when the drill failed before them."""

    success: bool
    started_at: float  # Unix time
    duration_seconds: float
    target: datetime | None = None
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    archive_wait_seconds: float | None = None
    restored_bytes: int | None = None
    restore_seconds: float | None = None
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # table: (primary, copy)
    backup_label: str | None = None
    error: str | None = None
    refused: bool = False
    cancelled: bool = False
    busy: bool = False  # refused because another drill runs on this scratch path

    @property
    def status(self) -> str:
        """ "success" or "failed", as `BackupScheduler` reads a job's result."""
        return "success" if self.success else "failed"

    @property
    def reason(self) -> str | None:
        return self.error

    @property
    def throughput_bytes_per_second(self) -> float | None:
        if self.restored_bytes is None or not self.restore_seconds:
            return None
        return self.restored_bytes / self.restore_seconds


@dataclass(frozen=True)
class Mark:
    """The target, taken on the primary: its time, WAL segment and the counts at it."""

    at: datetime
    walfile: str
    counts: dict[str, int]


def tables(settings: PitrSettings) -> list[str]:
    return [t for t in (settings.drill_tables or "").split(",") if t]


def _count(conn: psycopg.Connection[tuple[Any, ...]], table: str) -> int:
    ident = sql.Identifier(*table.split("."))
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
    return int(str(row[0])) if row else 0


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


def kill_processes_of(directory: Path) -> list[int]:
    """SIGKILL every process whose command line names `directory` (the copy's postmaster and
    backends started with `-D`, pgBackRest with `--pg1-path`), and the postmaster of
    `directory/postmaster.pid`. The directory is a unique drill path, so nothing else matches."""
    needle = str(directory)
    found = {
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit()
        and int(entry) != os.getpid()
        and any(needle in arg for arg in _cmdline(int(entry)))
    }
    postmaster = running_postmaster(directory)
    if postmaster is not None:
        found.add(postmaster)
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        os.path.exists(f"/proc/{p}/cmdline") and _cmdline(p) for p in found
    ):
        time.sleep(0.05)
    return sorted(found)


class Drill:
    """One drill at a time for `settings`; `run()` never raises (the result says what went
    wrong), `cancel()` may be called from a signal handler or another thread."""

    def __init__(self, settings: PitrSettings) -> None:
        self.settings = settings
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self.scratch: Path | None = None  # the directory of the drill in progress

    # -- cancellation and cleanup ----------------------------------------------------------
    def cancel(self) -> None:
        """Stop the drill in progress: its processes are killed at once, `run()` then fails,
        stops what is left and deletes the directory."""
        self._cancelled.set()
        scratch = self.scratch
        if scratch is not None:
            kill_processes_of(scratch)

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise DrillCancelled("the drill was cancelled (the runtime is stopping)")

    def _stop_copy(self, directory: Path) -> None:
        if running_postmaster(directory) is not None:
            user = self.settings.os_user if os.geteuid() == 0 else None
            prefix = ["runuser", "-u", user, "--"] if user else []
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [*prefix, pg_ctl(self.settings), "-D", str(directory), "-m", "immediate",
                     "-w", "-t", "30", "stop"],
                    capture_output=True, timeout=40, check=False,
                )  # fmt: skip
        kill_processes_of(directory)

    def sweep(self) -> list[Path]:
        """Stop and delete every `drill-*` directory left in the scratch path (a drill killed
        with SIGKILL cannot clean up after itself; the next one does)."""
        root = self.settings.drill_scratch
        removed = []
        for leftover in sorted(root.glob(PREFIX + "*")) if root.is_dir() else []:
            if leftover.is_dir():
                self._stop_copy(leftover)
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)  # a drill's server log
            removed.append(leftover)
        return removed

    # -- steps -----------------------------------------------------------------------------
    def check_space(self, info: RepoInfo) -> int:
        """The bytes the copy needs; `DrillRefused` (with both sizes) when they are not free."""
        newest = info.last_backup()
        if newest is None:
            raise DrillRefused("no backup in the repository yet: nothing to drill")
        needed = newest.size_bytes + WAL_HEADROOM
        root = self.settings.drill_scratch
        probe = root if root.exists() else root.parent
        stat = os.statvfs(probe)
        free = stat.f_bavail * stat.f_frsize
        if needed > free:
            raise DrillRefused(
                f"not enough disk for the drill's copy in {root}: backup {newest.label} needs "
                f"{needed} bytes ({newest.size_bytes} of data + {WAL_HEADROOM} for WAL), "
                f"{free} bytes are free; allowed: pitr.drill.scratch_path (PITR_DRILL_SCRATCH) "
                "on a volume with room for the database"
            )
        return needed

    def mark(self) -> Mark:
        """The target on the primary: time and counts from one snapshot, and the WAL file of a
        commit after it (what recovery needs to stop at the target)."""
        with connect(self.settings, dbname=self.settings.drill_database) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            counts = {t: _count(conn, t) for t in tables(self.settings)}
            row = conn.execute(
                "SELECT clock_timestamp(), pg_walfile_name(pg_current_wal_lsn())"
            ).fetchone()
            conn.execute("COMMIT")
        if row is None or not isinstance(row[0], datetime):
            raise PitrError("the primary did not report its clock and WAL position")
        # Recovery to a time stops at the first commit after it; with none archived yet it
        # ends "before configured recovery target was reached". So one heartbeat is committed
        # after the mark, and the archive is awaited up to its segment (seen on the engine with
        # archive_timeout and the heartbeat both 5 s: no commit between the mark and the switch).
        with connect(self.settings) as conn:
            beat(conn)
            after = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
        return Mark(row[0], str(after[0]) if after else str(row[1]), counts)

    def wait_archived(self, mark: Mark, deadline: float) -> float:
        """Wait until the archive holds the target's WAL segment; the seconds waited."""
        started = time.monotonic()
        limit = min(deadline, started + self.settings.drill_margin_seconds)
        with connect(self.settings) as conn:
            while True:
                self._check_cancelled()
                row = conn.execute(
                    "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"
                ).fetchone()
                if row is not None and str(row[0])[:24] >= mark.walfile:
                    return time.monotonic() - started
                if time.monotonic() > limit:
                    raise PitrError(
                        f"the WAL segment {mark.walfile} of the target {mark.at.isoformat()} "
                        f"was not archived within {self.settings.drill_margin_seconds} s "
                        f"(pitr.drill.margin_seconds); last archived: {row[0] if row else None}"
                    )
                time.sleep(0.2)

    def restore(self, target: datetime, directory: Path, deadline: float) -> None:
        """`pgbackrest restore` of `target` into `directory`, in its own session at low
        priority, killed (the whole session) on cancel or timeout."""
        tool = Pgbackrest(self.settings)
        options = restore_options(self.settings, directory, target, delta=False, force=False)
        argv = [*LOW_PRIORITY, *tool.argv("restore", *options)]
        # files, not pipes: nobody reads a pipe while we poll, and a full one would block it
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            process = subprocess.Popen(
                argv, stdout=out, stderr=err, text=True, cwd="/", start_new_session=True
            )
            try:
                while process.poll() is None:
                    if self._cancelled.is_set() or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
            finally:
                if process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        self._check_cancelled()
        if process.returncode is None or time.monotonic() > deadline:
            raise PitrError(
                f"the drill exceeded {self.settings.drill_timeout_seconds} s "
                "(pitr.drill.timeout_seconds) during the restore"
            )
        if process.returncode != 0:
            secrets = self.settings.secrets
            done = Completed(process.returncode, redact(stdout, secrets), redact(stderr, secrets))
            raise PitrError(f"pgbackrest restore failed: {error_text(done)}")

    # -- the drill -------------------------------------------------------------------------
    def run(self) -> DrillResult:
        if not self._lock.acquire(blocking=False):
            return self._busy()
        try:
            with self._scratch_lock() as held:
                if not held:
                    return self._busy()
                self._cancelled.clear()
                return self._run()
        except OSError as exc:
            return DrillResult(False, time.time(), 0.0, error=f"drill not started: {exc}")
        finally:
            self._lock.release()

    def _busy(self) -> DrillResult:
        return DrillResult(
            False, time.time(), 0.0, refused=True, busy=True,
            error=f"a drill is already running on {self.settings.drill_scratch}",
        )  # fmt: skip

    @contextlib.contextmanager
    def _scratch_lock(self) -> Iterator[bool]:
        """An exclusive lock on the scratch path, across processes: the sidecar's scheduled
        drill and an operator's `pitr drill` must not run (or sweep each other) at once."""
        root = self.settings.drill_scratch
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open_lock_file(root / LOCK_FILE) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _run(self) -> DrillResult:
        started, clock = time.time(), time.monotonic()
        deadline = clock + self.settings.drill_timeout_seconds
        settings = self.settings
        values: dict[str, Any] = {}

        def failed(message: str, *, refused: bool = False, cancelled: bool = False) -> DrillResult:
            duration = time.monotonic() - clock
            return DrillResult(
                False, started, duration, error=message, refused=refused, cancelled=cancelled,
                **values,
            )  # fmt: skip

        try:
            prepare_config(settings)
            self.sweep()
            info = repo_info(settings)
            newest = info.last_backup()
            values["backup_label"] = newest.label if newest else None
            self.check_space(info)
        except DrillRefused as exc:
            return failed(str(exc), refused=True)
        except (PitrError, OSError) as exc:
            return failed(f"drill not started: {exc}")
        directory = settings.drill_scratch / f"{PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        try:
            mark = self.mark()
            if newest is not None:
                # pgBackRest picks the backup set by whole seconds: a target within the second
                # its newest backup stopped finds none ("[075] unable to find backup set with
                # stop time less than ..."), so the target comes at least a second later.
                while mark.at < newest.stopped_at + timedelta(seconds=1):
                    self._check_cancelled()
                    time.sleep(0.2)
                    mark = self.mark()
            values["target"] = mark.at
            values["archive_wait_seconds"] = self.wait_archived(mark, deadline)
            settings.drill_scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
            chown_to(settings, settings.drill_scratch)
            directory.mkdir(mode=0o700)
            chown_to(settings, directory)
            self.scratch = directory
            self._check_cancelled()
            restore_clock = time.monotonic()
            self.restore(mark.at, directory, deadline)
            values["restore_seconds"] = time.monotonic() - restore_clock
            values["restored_bytes"] = dir_bytes(directory)
            self._check_cancelled()
            log_file = directory.parent / f"{directory.name}.log"
            self._start(directory, log_file, deadline)
            self._check_cancelled()
            outcome_seg = segment_size(settings, settings.drill_port)
            outcome = recovery_outcome(
                log_file.read_text(errors="replace"), mark.at, info, outcome_seg
            )
            if not outcome.exact:
                raise PitrError(f"recovery did not reach the target: {outcome.detail}")
            with connect(settings, settings.drill_port) as conn:
                beat = last_beat(conn)
            with connect(settings, settings.drill_port, settings.drill_database) as conn:
                counts = {t: (n, _count(conn, t)) for t, n in mark.counts.items()}
            values["counts"] = counts
            if beat is None:
                raise PitrError(
                    "the restored copy holds no heartbeat (runtime_pitr_heartbeat): is the "
                    "sidecar's heartbeat running?"
                )
            values["rpo_seconds"] = max(0.0, (mark.at - beat).total_seconds())
            wrong = {t: c for t, c in counts.items() if c[0] != c[1]}
            if wrong:
                raise PitrError(
                    "row counts differ from the primary's at the target: "
                    + ", ".join(f"{t}: primary {p}, copy {c}" for t, (p, c) in wrong.items())
                )
            values["rto_seconds"] = time.monotonic() - restore_clock
            return DrillResult(True, started, time.monotonic() - clock, **values)
        except DrillCancelled as exc:
            return failed(str(exc), cancelled=True)
        except (PitrError, OSError, psycopg.Error) as exc:
            if self._cancelled.is_set():
                return failed("the drill was cancelled (the runtime is stopping)", cancelled=True)
            return failed(str(exc))
        finally:
            self._stop_copy(directory)
            shutil.rmtree(directory, ignore_errors=True)
            (directory.parent / f"{directory.name}.log").unlink(missing_ok=True)
            self.scratch = None

    def _start(self, directory: Path, log_file: Path, deadline: float) -> None:
        remaining = max(1.0, deadline - time.monotonic())
        socket = self.settings.pg_socket
        try:
            start_and_wait(
                self.settings, directory, log_file, port=self.settings.drill_port,
                timeout=remaining, wrapper=LOW_PRIORITY,
                server_options=(
                    f"{SERVER_OPTIONS} {memory_options(self.settings.drill_memory_mb)} "
                    f"-c unix_socket_directories='{socket}'"
                ),
            )  # fmt: skip
        except PitrError as exc:
            if time.monotonic() > deadline:
                raise PitrError(
                    f"the drill exceeded {self.settings.drill_timeout_seconds} s "
                    "(pitr.drill.timeout_seconds) while the copy recovered"
                ) from exc
            raise
