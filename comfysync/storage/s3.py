"""S3-compatible storage (Cloudflare R2, AWS S3, DigitalOcean Spaces, MinIO) with boto3."""

from __future__ import annotations

import time
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import StorageError
from .base import RemoteStore, StoredFile, remote_key
from .settings import S3Settings

_ADDRESSING = {None: "auto", True: "path", False: "virtual"}


class S3Store(RemoteStore):
    """Uploads with `put_object`; URLs from R2_PUBLIC_DOMAIN, SPACES_ENDPOINT_CDN or presigning.

    `SPACES_CDN_FORCE_PATH_STYLE` sets the client's addressing, for uploads and
    presigned URLs alike: `true` puts the bucket in the path
    (`<endpoint>/<bucket>/<key>`, which MinIO without wildcard DNS needs),
    `false` in the host name (`<bucket>.<endpoint>/<key>`), and unset leaves
    botocore's "auto" (path on a custom endpoint, host name on AWS; IP
    endpoints always use the path). It never changes CDN or public-domain URLs.
    """

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.name = settings.provider
        config = Config(
            region_name=settings.region,
            signature_version="s3v4",
            connect_timeout=settings.client.connect_timeout,
            read_timeout=settings.client.read_timeout,
            # "standard" retries throttling, 5xx and connection errors with backoff.
            retries={"total_max_attempts": settings.client.retries + 1, "mode": "standard"},
            s3={"addressing_style": _ADDRESSING[settings.force_path_style]},
            # botocore's default CRC checksums are refused by several S3-compatible
            # servers; send them only where the API requires them.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # A private session with explicit keys: never the process-wide default
        # credential chain, so a stray AWS profile cannot redirect uploads.
        session = boto3.session.Session(
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            region_name=settings.region,
        )
        try:
            self.client = session.client(
                "s3", endpoint_url=settings.endpoint_url or None, config=config
            )
        except (BotoCoreError, ValueError) as err:
            raise StorageError(f"cannot create the {self.name} client: {err}") from err

    def upload(self, stored: StoredFile, *, prompt_id: str = "") -> StoredFile:
        """Put the local file at `<base>/runs/<prompt_id>/<name>` with its content type.

        :raises StorageError: when the upload fails after botocore's retries.
        """
        key = remote_key(self.settings.base_path, stored, prompt_id)
        started = time.monotonic()
        try:
            # A real file keeps the body seekable, so botocore can rewind it on a retry.
            with open(stored.local_path, "rb") as body:
                self.client.put_object(
                    Bucket=self.settings.bucket,
                    Key=key,
                    Body=body,
                    ContentType=stored.content_type,
                )
        except (BotoCoreError, ClientError, OSError) as err:
            raise StorageError(
                f"upload of {key} to {self.name} bucket {self.settings.bucket!r} failed: {err}"
            ) from err
        return self.uploaded(stored, key, started)

    def url_for(self, key: str) -> str:
        """The public URL when a domain or CDN is configured, else a presigned GET URL.

        :raises StorageError: when presigning fails.
        """
        quoted = quote(key, safe="/")
        if self.settings.public_domain:
            return f"{self.settings.public_domain}/{quoted}"
        if self.settings.cdn_url:
            if self.settings.cdn_include_bucket:
                return f"{self.settings.cdn_url}/{quote(self.settings.bucket)}/{quoted}"
            return f"{self.settings.cdn_url}/{quoted}"
        try:
            return self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.settings.bucket, "Key": key},
                ExpiresIn=self.settings.presign_expires,
            )
        except (BotoCoreError, ClientError) as err:
            raise StorageError(f"cannot presign {key}: {err}") from err

    def close(self) -> None:
        """Close the client's connection pool."""
        self.client.close()
