"""Where backups live: a local directory or S3-compatible object storage, one interface.

Both backends publish an object atomically: a reader sees the whole object or nothing. The
local backend writes a hidden temporary file and hard-links it into place (which fails rather
than overwrite); S3 buffers parts and completes a multipart upload only on `commit()`, and
`abort()` removes the parts, so an interrupted upload leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
)

from runtime.backup.errors import ObjectNotFoundError, StorageError

if TYPE_CHECKING:
    from runtime.settings import BackupSettings

READ_CHUNK = 1 << 20


class ObjectWriter(Protocol):
    """A streaming upload that becomes visible only on `commit()`."""

    bytes_written: int

    def write(self, data: bytes) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class Storage(Protocol):
    """The operations the backup manager needs from any backend."""

    def writer(self, name: str) -> ObjectWriter: ...
    def read_chunks(self, name: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]: ...
    def put_bytes(self, name: str, data: bytes, overwrite: bool = False) -> None: ...
    def get_bytes(self, name: str) -> bytes: ...
    def size(self, name: str) -> int: ...
    def names(self) -> list[str]: ...
    def delete(self, name: str) -> None: ...
    def location(self, name: str) -> str: ...


# -- local directory ----------------------------------------------------------------------
class _LocalWriter:
    def __init__(self, final: Path, overwrite: bool = False) -> None:
        self._final = final
        self._overwrite = overwrite
        self._tmp = final.with_name(f".{final.name}.partial-{secrets.token_hex(4)}")
        self._file = open(self._tmp, "xb")  # noqa: SIM115 - closed in commit/abort
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.bytes_written += len(data)

    def commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            if self._overwrite:
                os.replace(self._tmp, self._final)
            else:
                os.link(self._tmp, self._final)  # fails if the name exists: never overwrite
        except FileExistsError:
            raise StorageError(f"refusing to overwrite existing {self._final}") from None
        except OSError as exc:
            raise StorageError(f"cannot write {self._final}: {exc.strerror}") from None
        finally:
            self._tmp.unlink(missing_ok=True)
        _fsync_dir(self._final.parent)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self._tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalStorage:
    """Backups as files in one directory (a mounted volume in the sidecar)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"BACKUP_DIR {self.root}: cannot create: {exc.strerror}") from None

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise StorageError(f"invalid object name {name!r}")
        return self.root / name

    def writer(self, name: str, overwrite: bool = False) -> _LocalWriter:
        try:
            return _LocalWriter(self._path(name), overwrite)
        except OSError as exc:
            raise StorageError(f"cannot write in {self.root}: {exc.strerror}") from None

    def read_chunks(self, name: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        path = self._path(name)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below, generator-safe
        except FileNotFoundError:
            raise ObjectNotFoundError(str(path)) from None
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def put_bytes(self, name: str, data: bytes, overwrite: bool = False) -> None:
        writer = self.writer(name, overwrite)
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def get_bytes(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFoundError(str(self._path(name))) from None

    def size(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFoundError(str(self._path(name))) from None

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith("."))

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def location(self, name: str) -> str:
        return str(self.root / name)


# -- S3 -----------------------------------------------------------------------------------
def _s3_error(action: str, location: str, exc: Exception) -> StorageError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            return ObjectNotFoundError(location)
        return StorageError(f"S3 {action} {location}: {code or exc}")
    return StorageError(f"S3 {action} {location}: {type(exc).__name__}: {exc}")


class _S3Writer:
    def __init__(self, storage: S3Storage, key: str) -> None:
        self._s3 = storage
        self._key = key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.bytes_written = 0

    def _flush_part(self) -> None:
        client, bucket = self._s3.client, self._s3.bucket
        if self._upload_id is None:
            created = client.create_multipart_upload(Bucket=bucket, Key=self._key)
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        part = client.upload_part(
            Bucket=bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"ETag": part["ETag"], "PartNumber": number})
        self._buffer.clear()

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.bytes_written += len(data)
        if len(self._buffer) >= self._s3.part_size:
            try:
                self._flush_part()
            except (BotoCoreError, ClientError) as exc:
                raise _s3_error("upload", self._s3.location(self._key), exc) from None

    def commit(self) -> None:
        client, bucket = self._s3.client, self._s3.bucket
        try:
            if self._upload_id is None:
                client.put_object(Bucket=bucket, Key=self._key, Body=bytes(self._buffer))
                return
            if self._buffer:
                self._flush_part()
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error("upload", self._s3.location(self._key), exc) from None

    def abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is not None:
            with contextlib.suppress(BotoCoreError, ClientError):
                self._s3.client.abort_multipart_upload(
                    Bucket=self._s3.bucket, Key=self._key, UploadId=self._upload_id
                )
            self._upload_id = None


class S3Storage:
    """Backups as objects under a prefix in an S3-compatible bucket (AWS, MinIO, ...).

    Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID/..., profiles, roles).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        part_size: int = 16 << 20,
        client: Any = None,
    ) -> None:
        if part_size < 5 << 20:
            raise StorageError(f"part_size: got {part_size}; allowed: >= 5 MiB (S3's minimum)")
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        if client is None:
            # Imported here: boto3 costs ~0.2 s, and most importers of `runtime` never use S3.
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                config=Config(retries={"max_attempts": 3, "mode": "standard"}),
            )
        self.client = client

    @classmethod
    def from_settings(cls, settings: BackupSettings) -> S3Storage:
        assert settings.s3_bucket is not None
        return cls(
            settings.s3_bucket,
            settings.s3_prefix,
            settings.s3_endpoint,
            settings.s3_region,
            settings.s3_part_size_mb << 20,
        )

    def __repr__(self) -> str:
        return f"S3Storage({self.location('')!r})"

    def _key(self, name: str) -> str:
        return self.prefix + name

    def writer(self, name: str) -> _S3Writer:
        return _S3Writer(self, self._key(name))

    def read_chunks(self, name: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error("read", self.location(name), exc) from None
        try:
            yield from body.iter_chunks(chunk_size)
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error("read", self.location(name), exc) from None
        finally:
            body.close()

    def put_bytes(self, name: str, data: bytes, overwrite: bool = False) -> None:
        kwargs: dict[str, Any] = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error("write", self.location(name), exc) from None

    def get_bytes(self, name: str) -> bytes:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
            return bytes(obj["Body"].read())
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error("read", self.location(name), exc) from None

    def size(self, name: str) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error("stat", self.location(name), exc) from None
        return int(head["ContentLength"])

    def names(self) -> list[str]:
        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    name = str(obj["Key"])[len(self.prefix) :]
                    if name and "/" not in name:
                        found.append(name)
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error("list", self.location(""), exc) from None
        return sorted(found)

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error("delete", self.location(name), exc) from None

    def location(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"


def storage_from_settings(settings: BackupSettings) -> Storage:
    """S3 when BACKUP_S3_BUCKET is set, otherwise the local BACKUP_DIR."""
    if settings.s3_bucket:
        return S3Storage.from_settings(settings)
    return LocalStorage(settings.dir)
