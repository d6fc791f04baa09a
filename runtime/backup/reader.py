"""Moving backup bytes: sealing them on the way into storage, reading them back safely.

`Sealer` encrypts (optionally), hashes and stores a dump as it streams. `ArchiveReader` is the
only way bytes come back out: it checks size and SHA-256, authenticates every encrypted chunk,
and hands pg_restore nothing it has not checked, raising `CorruptBackupError` with the reason.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from runtime.backup import crypto
from runtime.backup.dump import PgTools, ToolProcess
from runtime.backup.errors import CorruptBackupError, ObjectNotFoundError
from runtime.backup.manifest import Manifest
from runtime.backup.storage import ObjectWriter, Storage
from runtime.settings import BackupSettings

CHUNK = 1 << 20
Progress = Callable[[int], object]


def noop(_: int) -> None:
    return None


DIRECTORY_TAR = "directory-tar"


class Sealer:
    """Bytes on their way into storage: encrypted (if a key is set), hashed, counted.

    The SHA-256 is over the stored bytes, so corruption is detectable without the key.
    It is file-like enough (`write`) for `tarfile`'s streaming mode.
    """

    def __init__(self, writer: ObjectWriter, key: bytes | None, progress: Progress) -> None:
        self._writer = writer
        self._encryptor = crypto.Encryptor(key) if key else None
        self._progress = progress
        self.digest = hashlib.sha256()

    def _put(self, data: bytes) -> None:
        if data:
            self.digest.update(data)
            self._writer.write(data)

    def write(self, data: bytes) -> int:
        self._put(self._encryptor.update(data) if self._encryptor else data)
        self._progress(len(data))
        return len(data)

    def finish(self) -> None:
        if self._encryptor is not None:
            self._put(self._encryptor.finalize())


class ArchiveReader:
    """Reads stored backups back, trusting nothing that has not been checked."""

    def __init__(self, storage: Storage, tools: PgTools, settings: BackupSettings) -> None:
        self.storage = storage
        self.tools = tools
        self.settings = settings

    def key_for(self, manifest: Manifest) -> bytes:
        key = self.settings.key_bytes
        if key is None:
            raise CorruptBackupError(
                manifest.backup_id,
                f"missing encryption key: encrypted with key id {manifest.key_id!r}; "
                "set BACKUP_ENCRYPTION_KEY",
            )
        if crypto.key_check(key) != manifest.key_check:
            raise CorruptBackupError(
                manifest.backup_id,
                f"wrong encryption key: encrypted with key id {manifest.key_id!r}, "
                f"the configured key (id {self.settings.encryption_key_id!r}) is not that key",
            )
        return key

    def stream_plain(
        self, manifest: Manifest, sink: Callable[[bytes], object], progress: Progress
    ) -> None:
        """Feed the backup's plaintext to `sink`, each piece authenticated when encrypted;
        raise `CorruptBackupError` with the precise reason if the stored bytes are bad."""
        bid = manifest.backup_id
        try:
            stored = self.storage.size(manifest.data_object)
        except ObjectNotFoundError:
            raise CorruptBackupError(bid, "data object is missing") from None
        if stored < manifest.size_bytes:
            raise CorruptBackupError(
                bid, f"truncated: {stored} of {manifest.size_bytes} bytes stored"
            )
        if stored > manifest.size_bytes:
            raise CorruptBackupError(
                bid, f"size mismatch: {stored} bytes stored, manifest says {manifest.size_bytes}"
            )
        decryptor = crypto.Decryptor(self.key_for(manifest)) if manifest.encryption else None
        digest = hashlib.sha256()
        failure: str | None = None
        feeding = True  # False once decryption failed or the reader (pg_restore) exited
        for chunk in self.storage.read_chunks(manifest.data_object, CHUNK):
            digest.update(chunk)
            progress(len(chunk))
            if not feeding:
                continue  # keep hashing: a checksum mismatch is the more precise reason
            try:
                sink(decryptor.update(chunk) if decryptor else chunk)
            except crypto.DecryptionError as exc:
                failure, feeding = f"undecryptable: {exc}", False
            except BrokenPipeError:
                feeding = False  # the reader's own exit status tells why
        if feeding and decryptor is not None:
            try:
                sink(decryptor.finalize())
            except crypto.DecryptionError as exc:
                failure = f"undecryptable: {exc}"
            except BrokenPipeError:
                pass
        if digest.hexdigest() != manifest.sha256:
            raise CorruptBackupError(
                bid,
                f"checksum mismatch: sha256 {digest.hexdigest()[:16]}..., "
                f"manifest says {manifest.sha256[:16]}...",
            )
        if failure is not None:
            raise CorruptBackupError(bid, failure)

    def read_through(self, manifest: Manifest, progress: Progress) -> None:
        """Checksum, decrypt and let pg_restore read every byte of the archive."""
        if manifest.dump_format == DIRECTORY_TAR:
            with tempfile.TemporaryDirectory(prefix="backup-verify-") as tmp:
                self.read_archive(manifest, self.materialize(manifest, Path(tmp), progress))
            return
        proc = ToolProcess(
            [self.tools.pg_restore, "--file=/dev/null"],
            None,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        try:
            self.stream_plain(manifest, proc.stdin.write, progress)
        except BaseException:
            proc.kill()
            raise
        code, err = proc.finish()
        if code != 0:
            raise CorruptBackupError(
                manifest.backup_id, f"pg_restore cannot read the archive: {err}"
            )

    def read_archive(self, manifest: Manifest, archive: Path) -> None:
        """pg_restore reads every byte of a local archive (file or directory) to nowhere."""
        code, err = ToolProcess(
            [self.tools.pg_restore, "--file=/dev/null", str(archive)],
            None,
            stdout=subprocess.DEVNULL,
        ).finish()
        if code != 0:
            raise CorruptBackupError(
                manifest.backup_id, f"pg_restore cannot read the archive: {err}"
            )

    def materialize(self, manifest: Manifest, tmp: Path, progress: Progress) -> Path:
        """The verified plaintext archive as a local file or directory (pg_restore needs to
        seek); a packed directory dump is unpacked only after its checksum matched."""
        path = tmp / ("archive.tar" if manifest.dump_format == DIRECTORY_TAR else "archive.dump")
        with open(path, "wb") as out:
            self.stream_plain(manifest, out.write, progress)
        if manifest.dump_format != DIRECTORY_TAR:
            return path
        outdir = tmp / "archive"
        try:
            with tarfile.open(path, "r:") as tar:
                tar.extractall(outdir, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise CorruptBackupError(manifest.backup_id, f"cannot unpack: {exc}") from None
        finally:
            path.unlink(missing_ok=True)
        return outdir
