"""Storage sections (remote backend, uploads, retention of local outputs) and their reader."""

from __future__ import annotations

from dataclasses import dataclass, field

from .convert import (
    PRESIGN_MAX_EXPIRES,
    to_account_id,
    to_base_path,
    to_bool,
    to_count,
    to_https_base,
    to_positive_float,
    to_positive_int,
    to_presign_expires,
    to_seconds_or_zero,
    to_size,
)
from .reader import ConfigError, Reader, declare

PROVIDERS = ("local", "oss", "r2", "s3")
DEFAULT_BASE_PATH = "outputs"
OSS_DEFAULT_URL_EXPIRES = 30 * 24 * 3600


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
class StorageSettings:
    """The remote backend in use: `oss` is set only for "oss", `s3` only for "r2" and "s3".

    `provider` is where outputs actually go: OSS settings too incomplete to use
    leave it "local", with the missing variables in `oss_missing` for the
    store factory's warning.
    """

    provider: str = "local"
    oss: OssSettings | None = None
    s3: S3Settings | None = None
    oss_missing: tuple[str, ...] = ()


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


declare("STORAGE_PROVIDER", "ENABLE_OSS")


def read_storage(env: Reader) -> StorageSettings:
    """`STORAGE_PROVIDER` (or `ENABLE_OSS=true` for oss; else local) and its backend's settings.

    Incomplete OSS config is the one case that falls back to local storage
    instead of failing: deployments have long shipped `ENABLE_OSS=true` with
    half-filled `.env` files and expected the gateway to keep working.

    :raises ConfigError: naming the variable that is missing or unusable.
    """
    provider = env.raw("STORAGE_PROVIDER").lower()
    if not provider:
        provider = "oss" if env.get("ENABLE_OSS", False, to_bool) else "local"
    elif provider not in PROVIDERS:
        raise ConfigError(
            f"STORAGE_PROVIDER={provider!r} is invalid: expected one of {', '.join(PROVIDERS)}"
        )
    if provider == "oss":
        missing = tuple(name for name in _OSS_REQUIRED if not env.raw(name))
        if missing:
            return StorageSettings("local", oss_missing=missing)
        return StorageSettings("oss", oss=read_oss(env))
    if provider in ("r2", "s3"):
        return StorageSettings(provider, s3=read_s3(env, provider))
    return StorageSettings("local")


declare("STORAGE_CONNECT_TIMEOUT", "STORAGE_READ_TIMEOUT", "STORAGE_RETRIES")


def read_client(env: Reader) -> ClientSettings:
    """`STORAGE_CONNECT_TIMEOUT`, `STORAGE_READ_TIMEOUT`, `STORAGE_RETRIES`.

    :raises ConfigError: naming the variable with an unusable value.
    """
    d = ClientSettings
    return ClientSettings(
        connect_timeout=env.get("STORAGE_CONNECT_TIMEOUT", d.connect_timeout, to_positive_float),
        read_timeout=env.get("STORAGE_READ_TIMEOUT", d.read_timeout, to_positive_float),
        retries=env.get("STORAGE_RETRIES", d.retries, to_count),
    )


_OSS_REQUIRED = declare(
    "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_ENDPOINT", "OSS_BUCKET_NAME"
)
declare("OSS_BASE_PATH", "OSS_URL_EXPIRES", "OSS_PUBLIC_BASE_URL")


def read_oss(env: Reader) -> OssSettings:
    """OSS settings, once every variable of `_OSS_REQUIRED` is known to be set.

    :raises ConfigError: naming a variable that is set but unusable.
    """
    return OssSettings(
        access_key_id=env.raw("OSS_ACCESS_KEY_ID"),
        access_key_secret=env.raw("OSS_ACCESS_KEY_SECRET"),
        endpoint=env.get("OSS_ENDPOINT", "", to_https_base),
        bucket=env.raw("OSS_BUCKET_NAME"),
        base_path=env.get("OSS_BASE_PATH", DEFAULT_BASE_PATH, to_base_path),
        url_expires=env.get("OSS_URL_EXPIRES", OSS_DEFAULT_URL_EXPIRES, to_positive_int),
        public_base_url=env.get("OSS_PUBLIC_BASE_URL", "", to_https_base),
        client=read_client(env),
    )


declare(
    "R2_BUCKET_NAME",
    "R2_ACCESS_KEY",
    "R2_SECRET_KEY",
    "R2_ENDPOINT_URL",
    "R2_ACCOUNT_ID",
    "R2_PUBLIC_DOMAIN",
    "R2_BASE_PATH",
    "SPACES_BUCKET",
    "SPACES_KEY",
    "SPACES_SECRET",
    "SPACES_ENDPOINT",
    "SPACES_REGION",
    "SPACES_ENDPOINT_CDN",
    "SPACES_CDN_DONT_INCLUDE_BUCKET",
    "SPACES_CDN_FORCE_PATH_STYLE",
    "SPACES_BASE_PATH",
    "PRESIGN_EXPIRES",
)


def read_s3(env: Reader, provider: str) -> S3Settings:
    """S3-compatible settings from either the `R2_*` or the `SPACES_*` family.

    Where both families name the same thing, the `R2_*` variable wins.

    :raises ConfigError: naming missing or unusable variables.
    """
    _, bucket = env.pick("R2_BUCKET_NAME", "SPACES_BUCKET")
    _, access_key = env.pick("R2_ACCESS_KEY", "SPACES_KEY")
    _, secret_key = env.pick("R2_SECRET_KEY", "SPACES_SECRET")
    missing = [
        names
        for names, value in (
            ("R2_BUCKET_NAME or SPACES_BUCKET", bucket),
            ("R2_ACCESS_KEY or SPACES_KEY", access_key),
            ("R2_SECRET_KEY or SPACES_SECRET", secret_key),
        )
        if not value
    ]
    endpoint = env.first(("R2_ENDPOINT_URL", "SPACES_ENDPOINT"), "", to_https_base)
    if not endpoint and env.raw("R2_ACCOUNT_ID"):
        account = env.get("R2_ACCOUNT_ID", "", to_account_id)
        endpoint = f"https://{account}.r2.cloudflarestorage.com"
    elif not endpoint and provider == "r2":
        missing.append("R2_ACCOUNT_ID or R2_ENDPOINT_URL")
    if missing:
        raise ConfigError(f"STORAGE_PROVIDER={provider} needs {'; '.join(missing)}")

    public_domain = env.get("R2_PUBLIC_DOMAIN", "", to_https_base)
    cdn_url = env.get("SPACES_ENDPOINT_CDN", "", to_https_base)
    if public_domain and cdn_url:
        # Two URL rules at once is how the wrong-bucket-in-URL bug happened; refuse it.
        raise ConfigError("set only one of R2_PUBLIC_DOMAIN and SPACES_ENDPOINT_CDN")
    # R2 ignores the region but SigV4 needs one; "auto" is what Cloudflare documents.
    default_region = "auto" if provider == "r2" or ".r2." in endpoint else "us-east-1"
    return S3Settings(
        provider=provider,
        bucket=bucket,
        access_key=access_key,
        secret_key=secret_key,
        endpoint_url=endpoint,
        region=env.raw("SPACES_REGION") or default_region,
        public_domain=public_domain,
        cdn_url=cdn_url,
        cdn_include_bucket=not env.get("SPACES_CDN_DONT_INCLUDE_BUCKET", False, to_bool),
        force_path_style=env.get("SPACES_CDN_FORCE_PATH_STYLE", None, to_bool),
        base_path=env.first(("R2_BASE_PATH", "SPACES_BASE_PATH"), DEFAULT_BASE_PATH, to_base_path),
        presign_expires=env.get("PRESIGN_EXPIRES", PRESIGN_MAX_EXPIRES, to_presign_expires),
        client=read_client(env),
    )


declare("UPLOAD_CONCURRENCY", "UPLOAD_TIMEOUT")


def read_uploads(env: Reader) -> UploadSettings:
    """`UPLOAD_CONCURRENCY` (default 4) and `UPLOAD_TIMEOUT` seconds (default 300).

    :raises ConfigError: naming the variable with an unusable value.
    """
    d = UploadSettings
    return UploadSettings(
        concurrency=env.get("UPLOAD_CONCURRENCY", d.concurrency, to_positive_int),
        timeout=env.get("UPLOAD_TIMEOUT", d.timeout, to_positive_float),
    )


declare(
    "OUTPUT_RETENTION_HOURS",
    "OUTPUT_RETENTION_MAX_BYTES",
    "OUTPUT_RETENTION_MIN_AGE_SECONDS",
    "OUTPUT_RETENTION_INTERVAL_SECONDS",
)


def read_retention(env: Reader) -> RetentionSettings:
    """`OUTPUT_RETENTION_HOURS`, `_MAX_BYTES`, `_MIN_AGE_SECONDS`, `_INTERVAL_SECONDS`.

    :raises ConfigError: naming the variable with an unusable value.
    """
    d = RetentionSettings
    hours = env.get("OUTPUT_RETENTION_HOURS", None, to_positive_float)
    return RetentionSettings(
        max_age=hours * 3600 if hours is not None else None,
        max_bytes=env.get("OUTPUT_RETENTION_MAX_BYTES", None, to_size),
        min_age=env.get("OUTPUT_RETENTION_MIN_AGE_SECONDS", d.min_age, to_seconds_or_zero),
        interval=env.get("OUTPUT_RETENTION_INTERVAL_SECONDS", d.interval, to_positive_float),
    )
