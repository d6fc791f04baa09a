"""Streaming AES-256-GCM in authenticated chunks.

One GCM tag over a whole multi-gigabyte stream would only be checked at the very end, after
pg_restore has already consumed unauthenticated bytes. Instead the stream is cut into 1 MiB
chunks, each sealed with AES-GCM under a nonce of (random 7-byte prefix, 4-byte counter,
1-byte last-chunk flag) and the header as associated data. A chunk is released only once
authenticated; reordering breaks the counter and truncation breaks the last-chunk flag.

Format: MAGIC (8) | nonce prefix (7) | chunk size (4, big-endian) | sealed chunks...
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runtime.backup.errors import BackupError

MAGIC = b"RTBKGCM1"
ALGORITHM = "aes-256-gcm-chunked-v1"
CHUNK_SIZE = 1 << 20
TAG_SIZE = 16
_HEADER = struct.Struct(">8s7sI")
HEADER_SIZE = _HEADER.size
_MAX_CHUNKS = 2**32 - 1


class DecryptionError(BackupError):
    """The ciphertext does not authenticate: wrong key, corrupted or truncated data."""


def key_check(key: bytes) -> str:
    """A short public fingerprint of a key, so "wrong key" is told apart from corruption.

    It is an HMAC of a fixed label: it reveals nothing usable about the key.
    """
    return hmac.new(key, b"runtime.backup key check v1", hashlib.sha256).hexdigest()[:16]


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter > _MAX_CHUNKS:
        raise DecryptionError("stream too long for one nonce prefix")
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


class Encryptor:
    """Feed plaintext with `update()`, then `finalize()`; both return ciphertext bytes."""

    def __init__(self, key: bytes, chunk_size: int = CHUNK_SIZE) -> None:
        self._aead = AESGCM(key)
        self._prefix = os.urandom(7)
        self._chunk = chunk_size
        self._header = _HEADER.pack(MAGIC, self._prefix, chunk_size)
        self._buffer = bytearray()
        self._counter = 0
        self._started = False
        self._done = False

    def _seal(self, data: bytes, last: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._counter, last), data, self._header)
        self._counter += 1
        return sealed

    def update(self, data: bytes) -> bytes:
        out = bytearray()
        if not self._started:
            out += self._header
            self._started = True
        self._buffer += data
        # Keep at least one byte back so the final chunk is never empty unless the stream is.
        while len(self._buffer) > self._chunk:
            out += self._seal(bytes(self._buffer[: self._chunk]), last=False)
            del self._buffer[: self._chunk]
        return bytes(out)

    def finalize(self) -> bytes:
        if self._done:
            raise BackupError("Encryptor.finalize() called twice")
        self._done = True
        out = bytearray()
        if not self._started:
            out += self._header
        out += self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()
        return bytes(out)


class Decryptor:
    """The inverse of `Encryptor`: releases only authenticated plaintext."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._buffer = bytearray()
        self._header: bytes | None = None
        self._prefix = b""
        self._sealed = 0
        self._counter = 0

    def _read_header(self) -> None:
        raw = bytes(self._buffer[:HEADER_SIZE])
        magic, prefix, chunk = _HEADER.unpack(raw)
        if magic != MAGIC or not 0 < chunk <= 1 << 30:
            raise DecryptionError("not an encrypted backup (bad header)")
        self._header, self._prefix, self._sealed = raw, prefix, chunk + TAG_SIZE
        del self._buffer[:HEADER_SIZE]

    def _open(self, sealed: bytes, last: bool) -> bytes:
        assert self._header is not None
        try:
            plain = self._aead.decrypt(
                _nonce(self._prefix, self._counter, last), sealed, self._header
            )
        except InvalidTag:
            raise DecryptionError(
                f"chunk {self._counter} does not authenticate (wrong key, corrupted or truncated)"
            ) from None
        self._counter += 1
        return plain

    def update(self, data: bytes) -> bytes:
        self._buffer += data
        if self._header is None:
            if len(self._buffer) < HEADER_SIZE:
                return b""
            self._read_header()
        out = bytearray()
        # Hold one full chunk back: only finalize() knows whether it is the last one.
        while len(self._buffer) > self._sealed:
            out += self._open(bytes(self._buffer[: self._sealed]), last=False)
            del self._buffer[: self._sealed]
        return bytes(out)

    def finalize(self) -> bytes:
        if self._header is None:
            raise DecryptionError("truncated: no complete header")
        if len(self._buffer) < TAG_SIZE:
            raise DecryptionError("truncated: last chunk is incomplete")
        plain = self._open(bytes(self._buffer), last=True)
        self._buffer.clear()
        return plain
