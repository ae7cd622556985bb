"""The storage interface: where a generated file is kept and how clients reach it."""

from __future__ import annotations

import posixpath
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, replace

# Anything outside this set in a prompt id could add path levels or break a URL.
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class StoredFile:
    """A file the gateway holds for a client, and the URL that serves it."""

    key: str  # relative name, e.g. "2026-11-22/<prompt>-<node>-0-<token>.png"
    url: str
    content_type: str
    size: int
    storage: str  # "local", "oss", "r2", "s3"
    local_path: str
    remote_key: str = ""  # the object key in the remote bucket, once uploaded
    upload_duration: float | None = None  # seconds the upload took, once uploaded
    pixel_size: tuple[int, int] | None = None  # (width, height) of an image


class LocalStore(ABC):
    """Writes every output to local disk first, so nothing is lost if an upload fails."""

    name = "local"

    @abstractmethod
    def write(self, key: str, chunks: Iterable[bytes], content_type: str) -> StoredFile:
        """Write `chunks` under `key` atomically and return where it is served.

        :raises StorageError: when the file cannot be written.
        """

    @abstractmethod
    def url_for(self, key: str) -> str:
        """The URL under which this service serves `key`."""


class RemoteStore(ABC):
    """A remote backend (OSS, S3, R2...) that receives a copy of a stored file."""

    name = "remote"

    @abstractmethod
    def upload(self, stored: StoredFile, *, prompt_id: str = "") -> StoredFile:
        """Upload the local file under `remote_key(...)`; return it with the remote URL.

        :raises StorageError: after the backend's own retries have failed.
        """

    def url_for(self, key: str) -> str:
        """The URL a client uses to fetch the object `key` (needed by `uploaded`)."""
        raise NotImplementedError

    def uploaded(self, stored: StoredFile, key: str, started: float) -> StoredFile:
        """`stored` as served by this backend, after an upload begun at `started`."""
        return replace(
            stored,
            url=self.url_for(key),
            storage=self.name,
            remote_key=key,
            upload_duration=time.monotonic() - started,
        )

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to close
        """Release connections; called at shutdown."""


def remote_key(base_path: str, stored: StoredFile, prompt_id: str = "") -> str:
    """The object key for `stored`: `<base>/runs/<prompt_id>/<file name>`.

    Without a prompt id the local key is kept under the base path instead.
    """
    name = posixpath.basename(stored.key)
    safe_id = _UNSAFE_KEY_CHARS.sub("_", prompt_id).strip(".")
    tail = f"runs/{safe_id}/{name}" if safe_id else stored.key.lstrip("/")
    base = base_path.strip("/")
    return f"{base}/{tail}" if base else tail
