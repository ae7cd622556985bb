"""Aliyun OSS storage with oss2: signed URLs by default, public/CDN URLs when configured."""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import quote

import oss2
import requests
from urllib3.util.retry import Retry

from ..errors import StorageError
from .base import RemoteStore, StoredFile, remote_key
from .settings import OssSettings


class OssStore(RemoteStore):
    """Uploads with `put_object` (V1 signatures) into one bucket under a base path."""

    name = "oss"

    def __init__(self, settings: OssSettings) -> None:
        self.settings = settings
        client = settings.client
        # oss2 has no retry of its own for single requests; urllib3 retries
        # connection errors, timeouts and 5xx answers under the adapter instead.
        retry = Retry(
            total=client.retries,
            connect=client.retries,
            read=client.retries,
            status=client.retries,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "HEAD", "PUT"}),
            backoff_factor=0.2,
            raise_on_status=False,  # hand the last error response to oss2 to parse
        )
        adapter = requests.adapters.HTTPAdapter(max_retries=retry)
        self.session = oss2.Session(adapter=adapter)
        try:
            self.bucket = oss2.Bucket(
                oss2.Auth(settings.access_key_id, settings.access_key_secret),
                settings.endpoint,
                settings.bucket,
                session=self.session,
                # oss2 passes this straight to requests, so a pair sets both timeouts.
                connect_timeout=(client.connect_timeout, client.read_timeout),
                # The CRC adapter turns the body into an unseekable stream that a
                # retry could not resend; Content-MD5 lets OSS check integrity instead.
                enable_crc=False,
            )
        except oss2.exceptions.ClientError as err:
            raise StorageError(f"cannot create the OSS client: {err}") from err

    def upload(self, stored: StoredFile, *, prompt_id: str = "") -> StoredFile:
        """Put the local file at `<OSS_BASE_PATH>/runs/<prompt_id>/<name>`.

        :raises StorageError: when the upload fails after the retries.
        """
        key = remote_key(self.settings.base_path, stored, prompt_id)
        started = time.monotonic()
        try:
            # Bytes, not a file: oss2 wraps files in an unseekable adapter, and a
            # retried request must be able to send its body again.
            with open(stored.local_path, "rb") as source:
                data = source.read()
            headers = {
                "Content-Type": stored.content_type,
                "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
            }
            self.bucket.put_object(key, data, headers=headers)
        except (oss2.exceptions.OssError, OSError) as err:
            raise StorageError(
                f"upload of {key} to OSS bucket {self.settings.bucket!r} failed: {_describe(err)}"
            ) from err
        return self.uploaded(stored, key, started)

    def url_for(self, key: str) -> str:
        """`<OSS_PUBLIC_BASE_URL>/<key>` when set, else a GET URL signed for OSS_URL_EXPIRES."""
        if self.settings.public_base_url:
            return f"{self.settings.public_base_url}/{quote(key, safe='/')}"
        return self.bucket.sign_url("GET", key, self.settings.url_expires, slash_safe=True)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.session.session.close()


def _describe(err: Exception) -> str:
    """OSS errors carry a code and message worth more than their repr."""
    if isinstance(err, oss2.exceptions.OssError):
        if err.code:
            return f"HTTP {err.status} {err.code}: {err.message}"
        return str(err.body)  # request errors: the connection failure itself
    return str(err)
