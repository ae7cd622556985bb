"""Local disk storage under `output_images/`, served by the gateway itself."""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..errors import StorageError
from .base import LocalStore, StoredFile
from .signing import UrlSigner


class LocalDiskStore(LocalStore):
    """Files under `root`, served at `<base_url>/output_images/<key>`."""

    def __init__(
        self,
        root: str,
        base_url: str = "",
        url_prefix: str = "/output_images",
        signer: UrlSigner | None = None,
    ) -> None:
        self.root = os.path.abspath(root)
        self.base_url = base_url.rstrip("/")
        self.url_prefix = url_prefix
        self.signer = signer  # set: URLs are signed and expire, the file server checks them
        os.makedirs(self.root, exist_ok=True)

    def url_for(self, key: str) -> str:
        """Absolute when SERVER_BASE_URL is set, else relative to this service."""
        url = f"{self.base_url}{self.url_prefix}/{key}"
        return f"{url}?{self.signer.sign(key)}" if self.signer is not None else url

    def path_for(self, key: str) -> str:
        """The file behind `key`; refuses anything that would leave the root."""
        path = os.path.abspath(os.path.join(self.root, key))
        if not path.startswith(self.root + os.sep):
            raise StorageError(f"invalid storage key {key!r}")
        return path

    def write(self, key: str, chunks: Iterable[bytes], content_type: str) -> StoredFile:
        """Stream `chunks` into the file named by `key`, which must not exist yet.

        Keys are unguessable and handed out only once the write is done, so
        the file is created in place (O_EXCL) rather than through a temporary
        file and a rename: that cost more than half a millisecond per output.
        A failed write removes what it had written.
        """
        path = self.path_for(key)
        size = 0
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                # Chunks arrive in 64 KB pieces, so a buffered file object would
                # only add its own setup calls.
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                    size += len(chunk)
            except BaseException:
                os.unlink(path)
                raise
            finally:
                os.close(fd)
        except OSError as err:
            raise StorageError(f"could not write {key}: {err}") from err
        return StoredFile(
            key=key,
            url=self.url_for(key),
            content_type=content_type,
            size=size,
            storage=self.name,
            local_path=path,
        )
