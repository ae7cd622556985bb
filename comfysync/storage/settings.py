"""Storage settings: each backend's variables, read from the raw environment mapping."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config import (
    ConfigError,
    _Reader,
    _to_count,
    to_bool,
    to_http_url,
    to_positive_float,
    to_size,
)

log = logging.getLogger(__name__)

PROVIDERS = ("local", "oss", "r2", "s3")
DEFAULT_BASE_PATH = "outputs"
OSS_DEFAULT_URL_EXPIRES = 30 * 24 * 3600
# SigV4 presigned URLs cannot live longer than 7 days (AWS, R2, Spaces and MinIO agree).
PRESIGN_MAX_EXPIRES = 7 * 24 * 3600


@dataclass(frozen=True)
class ClientSettings:
    """Network behaviour shared by every remote backend."""

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    retries: int = 3  # retries after the first attempt, done by the library


@dataclass(frozen=True)
class OssSettings:
    """Aliyun OSS: where objects go and how their URLs are made."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    endpoint: str = ""
    bucket: str = ""
    base_path: str = DEFAULT_BASE_PATH
    url_expires: int = OSS_DEFAULT_URL_EXPIRES
    public_base_url: str = ""  # when set, URLs are `<public_base_url>/<key>`, unsigned
    client: ClientSettings = field(default_factory=ClientSettings)


@dataclass(frozen=True)
class S3Settings:
    """Any S3-compatible service (R2, AWS, Spaces, MinIO) and its URL rules."""

    provider: str  # "r2" or "s3": the `storage` name results carry
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)
    endpoint_url: str = ""  # empty: AWS itself
    region: str = "us-east-1"
    public_domain: str = ""  # R2_PUBLIC_DOMAIN as a base URL: `<it>/<key>`
    cdn_url: str = ""  # SPACES_ENDPOINT_CDN: `<it>/<bucket>/<key>` or `<it>/<key>`
    cdn_include_bucket: bool = True
    force_path_style: bool | None = None  # None: botocore's "auto" addressing
    base_path: str = DEFAULT_BASE_PATH
    presign_expires: int = PRESIGN_MAX_EXPIRES
    client: ClientSettings = field(default_factory=ClientSettings)


@dataclass(frozen=True)
class UploadSettings:
    """How many files of one run upload at once, and how long the batch may take."""

    concurrency: int = 4
    timeout: float = 300.0


@dataclass(frozen=True)
class RetentionSettings:
    """Limits for local outputs; with neither limit set the pruner stays off."""

    max_age: float | None = None  # seconds
    max_bytes: int | None = None
    min_age: float = 3600.0  # never delete a file younger than this
    interval: float = 600.0

    @property
    def enabled(self) -> bool:
        """Whether any limit is configured."""
        return self.max_age is not None or self.max_bytes is not None


# -- converters (ValueError on bad input, wrapped into ConfigError by the reader) --


def to_positive_int(raw: str) -> int:
    """Parse a whole number above zero."""
    value = int(raw.strip())
    if value <= 0:
        raise ValueError("must be a whole number greater than 0")
    return value


def to_seconds_or_zero(raw: str) -> float:
    """Parse a duration in seconds that may be 0."""
    value = float(raw)
    if not value >= 0:
        raise ValueError("must be 0 or more")
    return value


def to_https_base(raw: str) -> str:
    """A public base URL; a bare domain such as `img.example.com` means https."""
    value = raw.strip()
    return to_http_url(value if "://" in value else "https://" + value)


def to_account_id(raw: str) -> str:
    """A Cloudflare account id: it becomes part of a host name."""
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9-]+", value):
        raise ValueError("expected the hexadecimal account id from the Cloudflare dashboard")
    return value


def to_base_path(raw: str) -> str:
    """A key prefix without leading or trailing slashes."""
    value = raw.strip().strip("/")
    if any(part in ("", ".", "..") for part in value.split("/")):
        raise ValueError("expected a prefix such as 'outputs' or 'comfy/outputs'")
    return value


def to_presign_expires(raw: str) -> int:
    """Seconds a presigned URL stays valid, within the SigV4 limit of 7 days."""
    value = to_positive_int(raw)
    if value > PRESIGN_MAX_EXPIRES:
        raise ValueError(f"must be at most {PRESIGN_MAX_EXPIRES} (7 days, the SigV4 limit)")
    return value


class _Env(_Reader):
    """The settings reader of `config`, plus the look-ups backends need."""

    def raw(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def pick(self, *names: str) -> tuple[str, str]:
        """The first of `names` that is set, as (name, value); ("", "") if none."""
        return self.first(*names) or ("", "")


def storage_provider(env: Mapping[str, str]) -> str:
    """`STORAGE_PROVIDER`, or `oss` when only `ENABLE_OSS=true` is set, else `local`.

    :raises ConfigError: for an unknown provider or a malformed ENABLE_OSS.
    """
    reader = _Env(env)
    provider = reader.raw("STORAGE_PROVIDER").lower()
    if not provider:
        return "oss" if reader.get("ENABLE_OSS", False, to_bool) else "local"
    if provider not in PROVIDERS:
        raise ConfigError(
            f"STORAGE_PROVIDER={provider!r} is invalid: expected one of {', '.join(PROVIDERS)}"
        )
    return provider


def load_client_settings(env: Mapping[str, str]) -> ClientSettings:
    """`STORAGE_CONNECT_TIMEOUT`, `STORAGE_READ_TIMEOUT`, `STORAGE_RETRIES`.

    :raises ConfigError: naming the variable with an unusable value.
    """
    reader = _Env(env)
    return ClientSettings(
        connect_timeout=reader.get(
            "STORAGE_CONNECT_TIMEOUT", ClientSettings.connect_timeout, to_positive_float
        ),
        read_timeout=reader.get(
            "STORAGE_READ_TIMEOUT", ClientSettings.read_timeout, to_positive_float
        ),
        retries=reader.get("STORAGE_RETRIES", ClientSettings.retries, _to_count),
    )


_OSS_REQUIRED = ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_ENDPOINT", "OSS_BUCKET_NAME")


def load_oss_settings(env: Mapping[str, str]) -> OssSettings | None:
    """OSS settings, or None (after one warning) when a required variable is missing.

    Incomplete OSS config is the one case that falls back to local storage
    instead of failing: deployments have long shipped `ENABLE_OSS=true` with
    half-filled `.env` files and expected the gateway to keep working.

    :raises ConfigError: naming a variable that is set but unusable.
    """
    reader = _Env(env)
    missing = [name for name in _OSS_REQUIRED if not reader.raw(name)]
    if missing:
        log.warning(
            "OSS storage is enabled but %s %s not set; outputs stay on local storage",
            ", ".join(missing),
            "is" if len(missing) == 1 else "are",
        )
        return None
    return OssSettings(
        access_key_id=reader.raw("OSS_ACCESS_KEY_ID"),
        access_key_secret=reader.raw("OSS_ACCESS_KEY_SECRET"),
        endpoint=reader.get("OSS_ENDPOINT", "", to_https_base),
        bucket=reader.raw("OSS_BUCKET_NAME"),
        base_path=reader.get("OSS_BASE_PATH", DEFAULT_BASE_PATH, to_base_path),
        url_expires=reader.get("OSS_URL_EXPIRES", OSS_DEFAULT_URL_EXPIRES, to_positive_int),
        public_base_url=reader.get("OSS_PUBLIC_BASE_URL", "", to_https_base),
        client=load_client_settings(env),
    )


def load_s3_settings(env: Mapping[str, str], provider: str) -> S3Settings:
    """S3-compatible settings from either the `R2_*` or the `SPACES_*` family.

    Where both families name the same thing, the `R2_*` variable wins.

    :raises ConfigError: naming missing or unusable variables.
    """
    reader = _Env(env)
    _, bucket = reader.pick("R2_BUCKET_NAME", "SPACES_BUCKET")
    _, access_key = reader.pick("R2_ACCESS_KEY", "SPACES_KEY")
    _, secret_key = reader.pick("R2_SECRET_KEY", "SPACES_SECRET")
    missing = [
        names
        for names, value in (
            ("R2_BUCKET_NAME or SPACES_BUCKET", bucket),
            ("R2_ACCESS_KEY or SPACES_KEY", access_key),
            ("R2_SECRET_KEY or SPACES_SECRET", secret_key),
        )
        if not value
    ]
    endpoint_var, endpoint = reader.pick("R2_ENDPOINT_URL", "SPACES_ENDPOINT")
    if endpoint:
        endpoint = reader.convert(endpoint_var, endpoint, to_https_base)
    elif reader.raw("R2_ACCOUNT_ID"):
        account = reader.get("R2_ACCOUNT_ID", "", to_account_id)
        endpoint = f"https://{account}.r2.cloudflarestorage.com"
    elif provider == "r2":
        missing.append("R2_ACCOUNT_ID or R2_ENDPOINT_URL")
    if missing:
        raise ConfigError(f"STORAGE_PROVIDER={provider} needs {'; '.join(missing)}")

    public_domain = reader.get("R2_PUBLIC_DOMAIN", "", to_https_base)
    cdn_url = reader.get("SPACES_ENDPOINT_CDN", "", to_https_base)
    if public_domain and cdn_url:
        # Two URL rules at once is how the wrong-bucket-in-URL bug happened; refuse it.
        raise ConfigError("set only one of R2_PUBLIC_DOMAIN and SPACES_ENDPOINT_CDN")
    # R2 ignores the region but SigV4 needs one; "auto" is what Cloudflare documents.
    default_region = "auto" if provider == "r2" or ".r2." in endpoint else "us-east-1"
    base_var, base_path = reader.pick("R2_BASE_PATH", "SPACES_BASE_PATH")
    return S3Settings(
        provider=provider,
        bucket=bucket,
        access_key=access_key,
        secret_key=secret_key,
        endpoint_url=endpoint,
        region=reader.raw("SPACES_REGION") or default_region,
        public_domain=public_domain,
        cdn_url=cdn_url,
        cdn_include_bucket=not reader.get("SPACES_CDN_DONT_INCLUDE_BUCKET", False, to_bool),
        force_path_style=reader.get("SPACES_CDN_FORCE_PATH_STYLE", None, to_bool),
        base_path=reader.convert(base_var, base_path, to_base_path)
        if base_path
        else DEFAULT_BASE_PATH,
        presign_expires=reader.get("PRESIGN_EXPIRES", PRESIGN_MAX_EXPIRES, to_presign_expires),
        client=load_client_settings(env),
    )


def load_upload_settings(env: Mapping[str, str]) -> UploadSettings:
    """`UPLOAD_CONCURRENCY` (default 4) and `UPLOAD_TIMEOUT` seconds (default 300).

    :raises ConfigError: naming the variable with an unusable value.
    """
    reader = _Env(env)
    return UploadSettings(
        concurrency=reader.get("UPLOAD_CONCURRENCY", UploadSettings.concurrency, to_positive_int),
        timeout=reader.get("UPLOAD_TIMEOUT", UploadSettings.timeout, to_positive_float),
    )


def load_retention_settings(env: Mapping[str, str]) -> RetentionSettings:
    """`OUTPUT_RETENTION_HOURS`, `_MAX_BYTES`, `_MIN_AGE_SECONDS`, `_INTERVAL_SECONDS`.

    :raises ConfigError: naming the variable with an unusable value.
    """
    reader = _Env(env)
    hours = reader.get("OUTPUT_RETENTION_HOURS", None, to_positive_float)
    return RetentionSettings(
        max_age=hours * 3600 if hours is not None else None,
        max_bytes=reader.get("OUTPUT_RETENTION_MAX_BYTES", None, to_size),
        min_age=reader.get(
            "OUTPUT_RETENTION_MIN_AGE_SECONDS", RetentionSettings.min_age, to_seconds_or_zero
        ),
        interval=reader.get(
            "OUTPUT_RETENTION_INTERVAL_SECONDS", RetentionSettings.interval, to_positive_float
        ),
    )
