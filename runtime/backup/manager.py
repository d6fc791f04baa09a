"""`BackupManager`: create, list, verify, restore and prune backups.

The rules an operator relies on:
- a backup is listed as complete only once its manifest exists, and the manifest is written
  after the data object is complete, so a failed or partial run is never a success;
- nothing is restored before its stored bytes match the manifest's SHA-256 and decrypt;
- restore walks back from the requested backup to the newest one that verifies and says
  which one it used and why it skipped the others.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import secrets
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from opentelemetry import trace
from opentelemetry.trace import StatusCode

from runtime.backup import crypto
from runtime.backup.archive_header import HEAD_BYTES, read_versions
from runtime.backup.dump import (
    PgTools,
    ToolProcess,
    count_rows,
    dump_argv,
    exported_snapshot,
    restore_argv,
    server_version,
    start_dump,
    toc_tables,
    with_dbname,
)
from runtime.backup.errors import (
    BackupBusyError,
    BackupError,
    CorruptBackupError,
    NoRestorableBackupError,
    ObjectNotFoundError,
    RestoreError,
)
from runtime.backup.manifest import (
    MANIFEST_SUFFIX,
    VERIFY_SUFFIX,
    Manifest,
    VerifyRecord,
    id_timestamp,
    new_backup_id,
    split_name,
)
from runtime.backup.reader import CHUNK, DIRECTORY_TAR, ArchiveReader, Progress, Sealer, noop
from runtime.backup.redaction import mask_dsn, redact, split_dsn
from runtime.backup.results import BackupInfo, BackupOutcome, RestoreReport, VerifyReport
from runtime.backup.retention import BackupState, RetentionItem, RetentionPlan, plan_retention
from runtime.backup.storage import Storage, storage_from_settings
from runtime.errors import ConfigError
from runtime.settings import BackupSettings, Settings
from runtime.telemetry.spans import start_span

log = logging.getLogger("runtime.backup")
_TRACER = trace.get_tracer("runtime.backup")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class BackupManager:
    """Backups of one database into one storage backend."""

    def __init__(
        self,
        settings: BackupSettings,
        storage: Storage | None = None,
        *,
        database_url: str = "",
        clock: Callable[[], datetime] = _utcnow,
        tools: PgTools | None = None,
    ) -> None:
        self.settings = settings
        self.database_url = database_url
        self.storage = storage if storage is not None else storage_from_settings(settings)
        self._clock = clock
        self._tools = tools
        self._thread_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> BackupManager:
        """The manager for the runtime's settings (the database is optional: listing,
        checking and pruning backups need none)."""
        database = settings.database
        return cls(settings.backup, database_url=database.dsn.reveal() if database else "")

    def __repr__(self) -> str:
        return f"BackupManager({self.storage!r}, database={mask_dsn(self.database_url)!r})"

    def _reader(self) -> ArchiveReader:
        return ArchiveReader(self.storage, self.tools, self.settings)

    @property
    def tools(self) -> PgTools:
        if self._tools is None:
            self._tools = PgTools.find(self.settings.pg_bindir)
        return self._tools

    def _secrets(self) -> tuple[str | None, ...]:
        password = None
        if self.database_url:
            with contextlib.suppress(Exception):
                password = split_dsn(self.database_url)[1]
        key = self.settings.key_bytes
        return (password, key.hex() if key else None)

    def _reason(self, exc: BaseException) -> str:
        text = str(exc).strip().replace("\n", " ") or type(exc).__name__
        if not isinstance(exc, BackupError):
            text = f"{type(exc).__name__}: {text}"
        return redact(text, *self._secrets())

    # -- locking ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def run_lock(self) -> Iterator[None]:
        """Held for a whole backup run, across threads and processes (same destination)."""
        if not self._thread_lock.acquire(blocking=False):
            raise BackupBusyError("another backup run is in progress in this process")
        try:
            digest = hashlib.sha256(self.storage.location("").encode()).hexdigest()[:16]
            path = Path(tempfile.gettempdir()) / f"runtime-backup-{digest}.lock"
            with open(path, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise BackupBusyError(
                        f"another backup run holds {path} for {self.storage.location('')}"
                    ) from None
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    # -- create ----------------------------------------------------------------------------
    def create_backup(
        self, progress: Progress | None = None, *, dump: ToolProcess | None = None
    ) -> BackupOutcome:
        """Dump, checksum, (encrypt,) store and describe one backup; never raises for a
        failed run: the outcome says `failed` and why, and nothing is left behind.

        `dump`: a `start_dump()` of this database already running (the CLI starts it before
        importing the rest); only without row counts and `jobs`, which need a shared snapshot.
        """
        started_at = self._clock()
        began = time.monotonic()
        backup_id = new_backup_id(started_at)
        data_name = backup_id + (".dump.enc" if self.settings.encrypted else ".dump")
        with start_span(_TRACER, "backup.create", attributes={"backup.id": backup_id}) as span:
            outcome = self._create(backup_id, data_name, started_at, began, progress, dump)
            span.set_attribute("backup.status", outcome.status)
            span.set_attribute("backup.size_bytes", outcome.size_bytes)
            if outcome.status != "success":
                span.set_status(StatusCode.ERROR, outcome.reason or "failed")
            return outcome

    def _create(
        self,
        backup_id: str,
        data_name: str,
        started_at: datetime,
        began: float,
        progress: Progress | None,
        dump: ToolProcess | None,
    ) -> BackupOutcome:
        try:
            with self.run_lock():
                manifest = self._dump(
                    backup_id, data_name, started_at, began, progress or noop, dump
                )
        except Exception as exc:
            if dump is not None:
                dump.kill()
            reason = self._reason(exc)
            trace.get_current_span().record_exception(exc)
            duration = time.monotonic() - began
            log.error("backup %s failed after %.1fs: %s", backup_id, duration, reason)
            return BackupOutcome(
                backup_id, started_at, 0, "failed", self.storage.location(data_name), reason
            )
        log.info(
            "backup %s: %d bytes in %.1fs",
            backup_id,
            manifest.size_bytes,
            manifest.duration_seconds,
        )
        return BackupOutcome(
            backup_id,
            started_at,
            manifest.size_bytes,
            "success",
            self.storage.location(data_name),
            manifest=manifest,
        )

    def _dump(
        self,
        backup_id: str,
        data_name: str,
        started_at: datetime,
        began: float,
        progress: Progress,
        dump: ToolProcess | None,
    ) -> Manifest:
        settings = self.settings
        if not self.database_url:
            raise ConfigError("DATABASE_URL (database.dsn)", None, "a PostgreSQL URL or DSN")
        tools = self.tools
        _, _, dbname = split_dsn(self.database_url)
        key = settings.key_bytes
        parallel = settings.jobs > 1
        shared_snapshot = settings.count_rows or parallel
        if dump is not None and shared_snapshot:
            raise BackupError("a pre-started pg_dump cannot share a snapshot (row counts, jobs)")
        if not shared_snapshot and dump is None:
            dump = start_dump(tools, self.database_url, settings.compress_level)
        with contextlib.ExitStack() as stack:
            if dump is not None:  # whatever fails below, no pg_dump is left behind
                stack.callback(dump.kill)
            # Row counts (and --jobs) need pg_dump to import this connection's snapshot;
            # otherwise pg_dump's own snapshot is as consistent and it starts without waiting.
            snapshot = None
            if shared_snapshot:
                conn, snapshot, version = stack.enter_context(exported_snapshot(self.database_url))
            pool = stack.enter_context(ThreadPoolExecutor(2))
            stack.enter_context(start_span(_TRACER, "backup.dump"))
            # A custom-format archive names both versions in its header (read below); only the
            # directory format needs pg_dump asked, and the server's version comes from the
            # snapshot's connection when there is one.
            tool_version = pool.submit(tools.version) if parallel else None
            counted = None
            server = None
            if shared_snapshot:
                server = pool.submit(str, version)
                counted = pool.submit(count_rows, conn) if settings.count_rows else None
            writer = self.storage.writer(data_name)
            sealer = Sealer(writer, key, progress)
            try:
                if parallel:
                    self._dump_directory(snapshot, sealer)
                    versions = None
                else:
                    if dump is None:
                        dump = start_dump(
                            tools, self.database_url, settings.compress_level, snapshot
                        )
                    versions = read_versions(self._dump_custom(dump, sealer))
                sealer.finish()
                table_rows = counted.result() if counted else {}
                if versions is not None:
                    server_version_text = versions.server_version
                    tool_version_text = versions.tool_version
                else:  # the directory format, or a header this code does not know
                    server_version_text = (
                        server.result() if server else server_version(self.database_url)
                    )
                    tool_version_text = tool_version.result() if tool_version else tools.version()
                writer.commit()
            except BaseException:
                writer.abort()
                raise
        manifest = Manifest(
            backup_id=backup_id,
            data_object=data_name,
            database=dbname,
            server_version=server_version_text,
            tool_version=tool_version_text,
            created_at=started_at,
            duration_seconds=round(time.monotonic() - began, 3),
            size_bytes=writer.bytes_written,
            sha256=sealer.digest.hexdigest(),
            dump_format=DIRECTORY_TAR if parallel else "custom",
            compression="none" if settings.compress_level == 0 else "gzip",
            encryption=crypto.ALGORITHM if key else None,
            key_id=settings.encryption_key_id if key else None,
            key_check=crypto.key_check(key) if key else None,
            table_rows=table_rows,
        )
        try:
            with start_span(_TRACER, "backup.manifest"):
                self.storage.put_bytes(backup_id + MANIFEST_SUFFIX, manifest.to_json())
        except BaseException:
            with contextlib.suppress(Exception):
                self.storage.delete(data_name)
            raise
        return manifest

    def _dump_custom(self, proc: ToolProcess, sealer: Sealer) -> bytes:
        """One running pg_dump -Fc, its stdout streamed straight into storage; returns the
        archive's first bytes (its header names the server's and pg_dump's versions)."""
        head = b""
        try:
            while chunk := proc.stdout.read(CHUNK):
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                sealer.write(chunk)
        except BaseException:
            proc.kill()
            raise
        code, err = proc.finish()
        if code != 0:
            raise BackupError(f"pg_dump exited with {code}: {err}")
        return head

    def _dump_directory(self, snapshot: str | None, sealer: Sealer) -> None:
        """pg_dump -Fd --jobs=N (tables dumped in parallel) into a temporary directory, then
        packed as one tar stream, checksummed and encrypted on its way into storage."""
        settings = self.settings
        with tempfile.TemporaryDirectory(prefix="backup-dump-") as tmp:
            outdir = Path(tmp) / "dump"
            argv, password = dump_argv(
                self.tools,
                self.database_url,
                snapshot,
                settings.compress_level,
                jobs=settings.jobs,
                directory=outdir,
            )
            code, err = ToolProcess(argv, password, stdout=subprocess.DEVNULL).finish()
            if code != 0:
                raise BackupError(f"pg_dump exited with {code}: {err}")
            with tarfile.open(fileobj=sealer, mode="w|") as tar:  # type: ignore[call-overload]
                for path in sorted(outdir.iterdir()):
                    tar.add(path, arcname=path.name, recursive=False)

    # -- list ------------------------------------------------------------------------------
    def _grouped(self) -> dict[str, dict[str, str]]:
        groups: dict[str, dict[str, str]] = {}
        for name in self.storage.names():
            parsed = split_name(name)
            if parsed:
                groups.setdefault(parsed[0], {})[parsed[1]] = name
        return groups

    def load_manifest(self, backup_id: str) -> Manifest:
        try:
            raw = self.storage.get_bytes(backup_id + MANIFEST_SUFFIX)
        except ObjectNotFoundError:
            raise CorruptBackupError(
                backup_id, "missing manifest (incomplete or damaged backup)"
            ) from None
        return Manifest.from_json(backup_id, raw)

    def list_backups(self) -> list[BackupInfo]:
        """Every stored backup, newest first, with its state (verified/unverified/corrupt)."""
        infos: list[BackupInfo] = []
        for backup_id, parts in self._grouped().items():
            location = self.storage.location(parts.get("data", backup_id + MANIFEST_SUFFIX))
            record = None
            if "verify" in parts:
                with contextlib.suppress(BackupError):
                    record = VerifyRecord.from_json(self.storage.get_bytes(parts["verify"]))
            try:
                manifest = self.load_manifest(backup_id)
            except CorruptBackupError as exc:
                stamp = id_timestamp(backup_id) or datetime.fromtimestamp(0, UTC)
                infos.append(
                    BackupInfo(backup_id, stamp, 0, "corrupt", exc.reason, location, False, None)
                )
                continue
            state: BackupState = "unverified"
            reason = ""
            if record is not None:
                state = "verified" if record.ok else "corrupt"
                reason = record.reason
            infos.append(
                BackupInfo(
                    backup_id,
                    manifest.created_at,
                    manifest.size_bytes,
                    state,
                    reason,
                    location,
                    manifest.encryption is not None,
                    manifest.key_id,
                )
            )
        # The id encodes the start time (to the microsecond), also for a backup whose
        # manifest is gone, so every entry sorts on the same clock.
        infos.sort(key=lambda i: (id_timestamp(i.backup_id) or i.created_at, i.backup_id))
        infos.reverse()
        return infos

    # -- verify ----------------------------------------------------------------------------
    def verify(
        self, backup_id: str, deep: bool = False, progress: Progress | None = None
    ) -> VerifyReport:
        """Checksum plus a full pg_restore read-through; `deep` restores into a scratch
        database and compares every table's row count with the manifest's."""
        began = time.monotonic()
        reason = ""
        try:
            manifest = self.load_manifest(backup_id)
            if deep:
                self._deep_verify(manifest, progress or noop)
            else:
                self._reader().read_through(manifest, progress or noop)
        except CorruptBackupError as exc:
            reason = exc.reason
        report = VerifyReport(backup_id, not reason, deep, reason, time.monotonic() - began)
        self._record(report)
        return report

    def _record(self, report: VerifyReport) -> None:
        if report.ok:
            log.info("backup %s verified (deep=%s)", report.backup_id, report.deep)
        else:
            log.warning("backup %s failed verification: %s", report.backup_id, report.reason)
        record = VerifyRecord(report.ok, report.deep, report.reason, self._clock())
        with contextlib.suppress(BackupError):
            self.storage.put_bytes(
                report.backup_id + VERIFY_SUFFIX, record.to_json(), overwrite=True
            )

    def _deep_verify(self, manifest: Manifest, progress: Progress) -> None:
        if not self.database_url:
            raise ConfigError(
                "DATABASE_URL (database.dsn)", None, "a server (deep verification restores into it)"
            )
        import psycopg  # deep verify and restore only: `create` never loads the client
        from psycopg import sql

        scratch = f"backup_verify_{secrets.token_hex(6)}"
        admin = self.database_url
        with tempfile.TemporaryDirectory(prefix="backup-verify-") as tmp:
            archive = self._reader().materialize(manifest, Path(tmp), progress)
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
            except psycopg.Error as exc:
                raise BackupError(
                    "deep verification cannot create a scratch database (the DATABASE_URL role "
                    f"needs CREATEDB): {redact(str(exc).strip(), *self._secrets())}"
                ) from None
            try:
                target = with_dbname(admin, scratch)
                argv, password = restore_argv(self.tools, target, str(archive))
                with start_span(_TRACER, "backup.verify.scratch_restore"):
                    code, err = ToolProcess(argv, password, stdout=subprocess.DEVNULL).finish()
                if code != 0:
                    raise CorruptBackupError(
                        manifest.backup_id, f"scratch restore failed: {redact(err)}"
                    )
                with psycopg.connect(target, connect_timeout=10) as conn:
                    restored = count_rows(conn)
                missing = sorted((toc_tables(self.tools, archive) or set()) - set(restored))
                if missing:
                    raise CorruptBackupError(
                        manifest.backup_id, f"tables missing after restore: {missing[:5]}"
                    )
                if manifest.table_rows and restored != manifest.table_rows:
                    diff = sorted(
                        t
                        for t in set(restored) | set(manifest.table_rows)
                        if restored.get(t) != manifest.table_rows.get(t)
                    )
                    raise CorruptBackupError(
                        manifest.backup_id, f"row counts differ after restore in {diff[:5]}"
                    )
            finally:
                self._drop_scratch(scratch)

    def _drop_scratch(self, scratch: str) -> None:
        """Drop the scratch database. A plain DROP first: it stops autovacuum workers that a
        fresh restore attracts (FORCE would need the right to signal them); then FORCE for a
        client that lingers. A database left behind is logged, not a failed verification."""
        import psycopg
        from psycopg import sql

        plain = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(scratch))
        force = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch))
        failure = ""
        for statement in (plain, force, plain):
            try:
                with psycopg.connect(
                    self.database_url, autocommit=True, connect_timeout=10
                ) as conn:
                    conn.execute(statement)
                return
            except psycopg.Error as exc:
                failure = redact(str(exc).strip(), *self._secrets())
                time.sleep(1)
        log.warning("could not drop scratch database %s: %s", scratch, failure)

    # -- restore ---------------------------------------------------------------------------
    def _candidates(self, backup_id: str) -> list[str]:
        ids = [info.backup_id for info in self.list_backups()]
        if backup_id == "latest":
            return ids
        if backup_id not in ids:
            raise BackupError(
                f"backup_id: got {backup_id!r}; allowed: 'latest' or an id shown by `list`"
            )
        return ids[ids.index(backup_id) :]

    def restore(
        self,
        backup_id: str = "latest",
        target: str = "",
        *,
        fallback: bool = True,
        progress: Progress | None = None,
    ) -> RestoreReport:
        """Restore the newest backup (from `backup_id` back) that verifies into `target`,
        a DSN of an existing, empty database. A bad backup is skipped with its reason."""
        with start_span(_TRACER, "backup.restore", attributes={"backup.id": backup_id}):
            return self._restore(backup_id, target, fallback, progress)

    def _restore(
        self, backup_id: str, target: str, fallback: bool, progress: Progress | None
    ) -> RestoreReport:
        began = time.monotonic()
        if not target:
            raise BackupError("target: got ''; allowed: a DSN of the database to restore into")
        import psycopg

        try:
            psycopg.connect(target, connect_timeout=10).close()
        except psycopg.Error as exc:
            raise RestoreError(
                f"cannot connect to target {mask_dsn(target)}: {redact(str(exc).strip())}"
            ) from None
        skipped: list[tuple[str, str]] = []
        for candidate in self._candidates(backup_id):
            with tempfile.TemporaryDirectory(prefix="backup-restore-") as tmp:
                try:
                    with start_span(
                        _TRACER, "backup.restore.fetch", attributes={"backup.id": candidate}
                    ):
                        manifest = self.load_manifest(candidate)
                        archive = self._reader().materialize(manifest, Path(tmp), progress or noop)
                        # The backup's own fault (unreadable) falls back; the target's does not.
                        self._reader().read_archive(manifest, archive)
                except CorruptBackupError as exc:
                    skipped.append((candidate, exc.reason))
                    self._record(VerifyReport(candidate, False, False, exc.reason, 0.0))
                    if not fallback:
                        raise
                    log.warning("skipping backup %s: %s", candidate, exc.reason)
                    continue
                argv, password = restore_argv(self.tools, target, str(archive))
                with start_span(_TRACER, "backup.restore.apply"):
                    code, err = ToolProcess(argv, password, stdout=subprocess.DEVNULL).finish()
                if code != 0:
                    raise RestoreError(
                        f"pg_restore of {candidate} into {mask_dsn(target)} failed "
                        f"(nothing was applied): {err}"
                    )
            log.info("restored backup %s into %s", candidate, mask_dsn(target))
            return RestoreReport(
                backup_id, candidate, mask_dsn(target), tuple(skipped), time.monotonic() - began
            )
        raise NoRestorableBackupError(skipped)

    # -- retention -------------------------------------------------------------------------
    def prune(self, dry_run: bool = False, now: datetime | None = None) -> RetentionPlan:
        """Apply BACKUP_RETENTION_DAYS and BACKUP_MIN_KEEP; `dry_run` only reports."""
        infos = self.list_backups()
        items = [RetentionItem(i.backup_id, i.created_at, i.state) for i in infos]
        plan = plan_retention(
            items, now or self._clock(), self.settings.retention_days, self.settings.min_keep
        )
        if dry_run:
            return plan
        groups = self._grouped()
        for backup_id in plan.delete:
            parts = groups.get(backup_id, {})
            # Manifest first: a half-deleted backup must never look complete.
            for kind in ("manifest", "data", "verify"):
                if kind in parts:
                    self.storage.delete(parts[kind])
            log.info("pruned backup %s", backup_id)
        return plan

    # -- the scheduled job -------------------------------------------------------------------
    def run_backup(self) -> BackupOutcome:
        """What the schedule runs: create a backup, then verify it (UT-INFRA-02.3)."""
        outcome = self.create_backup()
        if outcome.status == "success":
            report = self.verify(outcome.backup_id)
            if not report.ok:
                return BackupOutcome(
                    outcome.backup_id,
                    outcome.timestamp,
                    outcome.size_bytes,
                    "failed",
                    outcome.location,
                    f"verification failed: {report.reason}",
                    outcome.manifest,
                )
        return outcome

    def run_scheduled(self) -> BackupOutcome:
        """The job `BackupScheduler` runs (sidecar and `backup schedule`): `run_backup`,
        then, when it succeeded, prune what the retention policy no longer keeps."""
        outcome = self.run_backup()
        if outcome.status == "success":
            self.prune()
        return outcome

    def newest_backup_time(self) -> datetime | None:
        """When the newest complete backup was made (the scheduler's memory across restarts)."""
        for info in self.list_backups():
            if info.state != "corrupt":
                return info.created_at
        return None
