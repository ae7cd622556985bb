"""The gateway's own sections (ComfyUI, the service itself, runs, input images) and their reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from ..keys import ApiKey, Rate, load_keys_file, parse_rate
from ..mounts import Mount, parse_mounts, pick_inputs, url_prefix_for
from .convert import (
    AllowList,
    IPNetwork,
    to_allow_list,
    to_bool,
    to_count,
    to_http_url,
    to_list,
    to_log_format,
    to_log_level,
    to_origins,
    to_output_url_style,
    to_port,
    to_positive_float,
    to_positive_int,
    to_redis_url,
    to_seconds_or_zero,
    to_size,
    to_stored_workflow,
    to_webhook_secret,
)
from .fleet import DEFAULT_SERVER_NAME, ComfyServer, read_servers
from .reader import ConfigError, Reader, declare

DEFAULT_COMFYUI_URL = "http://127.0.0.1:8188"


@dataclass(frozen=True)
class ComfySettings:
    """The ComfyUI server: its address, timeouts and the WebSocket's pace."""

    url: str = DEFAULT_COMFYUI_URL
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retries: int = 2
    output_dir: str = ""  # ComfyUI's output folder, when this machine can read it
    cleanup_outputs: bool = False
    ws_ping_interval: float = 10.0
    ws_stall_timeout: float = 25.0
    ws_reconnect_max_delay: float = 5.0
    reconcile_interval: float = 15.0
    max_inflight: int = 2  # prompts sent to ComfyUI at once; 0: no limit
    servers: tuple[ComfyServer, ...] = (ComfyServer(DEFAULT_SERVER_NAME, DEFAULT_COMFYUI_URL),)
    # A server down this long loses the runs it was executing to the others.
    failover_grace: float = 30.0

    def limit(self, server: ComfyServer) -> int:
        """How many prompts `server` may hold at once (0: no limit)."""
        return self.max_inflight if server.max_inflight is None else server.max_inflight


@dataclass(frozen=True)
class ServiceSettings:
    """This service: where it listens, what it accepts, how long requests wait, gunicorn."""

    host: str = "0.0.0.0"
    port: int = 5000
    debug: bool = False
    log_level: str = "INFO"
    log_format: str = "plain"  # or "json": one object a line
    log_workflows: bool = False
    server_base_url: str = ""
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    named_keys: tuple[ApiKey, ...] = ()  # from API_KEYS_FILE
    rate_limit: Rate | None = None  # per key without its own, or per address without keys
    cors_origins: tuple[str, ...] = ()  # origins, lower case, or "*"; empty: no CORS
    file_mounts: tuple[Mount, ...] = ()
    file_access_key: str = field(default="", repr=False)
    metrics_token: str = field(default="", repr=False)  # set: /metrics wants it as a bearer
    local_url_secret: str = field(default="", repr=False)  # set: local output URLs are signed
    local_url_ttl: int = 7 * 24 * 3600
    max_content_length: int = 50 << 20
    body_timeout: float = 60.0  # seconds to receive a whole request body
    workflows_dir: str = "workflows"
    warmup_workflow: str = ""  # run on every ComfyUI server at start; empty: none
    output_dir: str = "output_images"
    output_url_style: str = "storage"  # or "mounts": local outputs linked through a file mount
    # Where local outputs are served; with "mounts", a mount URL that holds FILE_ACCESS_KEY.
    output_url_prefix: str = field(default="/output_images", repr=False)
    generation_timeout: float = 600.0
    cancel_on_disconnect: bool = True
    cancel_on_timeout: bool = False
    shutdown_grace: float = 30.0
    workers: int = 1
    worker_connections: int = 10000
    gunicorn_timeout: int = 30
    backlog: int = 2048
    access_log: str | None = "-"  # None: no access log
    control_socket: str = ""  # empty: gunicorn's control socket stays off


@dataclass(frozen=True)
class RunSettings:
    """Durable runs: where they are kept, how long they may take and be retried."""

    data_dir: str = "data"
    redis_url: str = ""  # empty: no Redis
    timeout: float = 600.0  # default: GENERATION_TIMEOUT
    max_attempts: int = 3
    max_queued: int = 1000  # 0: no limit
    retention_hours: float = 168.0
    sync_wait_max: float = 600.0  # default: GENERATION_TIMEOUT
    retry_base: float = 1.0
    # A worker silent this long is taken for dead and its runs are taken over.
    owner_ttl: float = 15.0


@dataclass(frozen=True)
class InputSettings:
    """Every limit on fetching, decoding and checking input images."""

    max_bytes: int = 20 << 20
    max_pixels: int = 40_000_000  # about 6300 x 6300; Pillow's own bomb limit is 89M
    fetch_connect_timeout: float = 5.0
    fetch_timeout: float = 30.0  # per socket read, and for the whole fetch of one image
    max_redirects: int = 3
    fetch_concurrency: int = 4
    max_images: int = 8
    allow_hosts: tuple[str, ...] = ()  # host names (".example.com" = subdomains too)
    allow_networks: tuple[IPNetwork, ...] = ()
    mounts: tuple[Mount, ...] = ()  # INPUT_MOUNTS: file mounts `alias:name` may read


@dataclass(frozen=True)
class EventSettings:
    """Run events and their Server-Sent Events streams."""

    sse_heartbeat: float = 15.0  # a comment line this often keeps proxies' idle timers alive


@dataclass(frozen=True)
class WebhookSettings:
    """Webhooks: the default receiver, the signing key, retries and the address policy."""

    url: str = ""  # every run's receiver unless it names its own; empty: none
    secret: bytes = field(default=b"", repr=False)  # WEBHOOK_SECRET decoded; empty: unsigned
    retry_hours: float = 24.0
    retry_base: float = 5.0  # the first retry's delay; doubling after
    timeout: float = 10.0  # per attempt, connecting and reading
    concurrency: int = 16  # attempts under way at once, per process
    progress_interval: float = 2.0  # at most one run.progress per run this often
    allow_hosts: tuple[str, ...] = ()
    allow_networks: tuple[IPNetwork, ...] = ()


COMFYUI_URL_NAMES = declare("COMFYUI_URL", "COMFYUI_BASE_URL", "COMFYUI_SERVER")
declare(
    "COMFYUI_CONNECT_TIMEOUT",
    "COMFYUI_READ_TIMEOUT",
    "COMFYUI_RETRIES",
    "COMFYUI_OUTPUT_DIR",
    "COMFYUI_CLEANUP_OUTPUTS",
    "COMFYUI_MAX_INFLIGHT",
    "WS_PING_INTERVAL",
    "WS_STALL_TIMEOUT",
    "WS_RECONNECT_MAX_DELAY",
    "RECONCILE_INTERVAL",
)


def read_comfy(env: Reader) -> ComfySettings:
    """ComfyUI's address (under any of its three names), timeouts and WebSocket pace.

    :raises ConfigError: naming the variable with an unusable value.
    """
    d = ComfySettings
    url = env.first(COMFYUI_URL_NAMES, d.url, to_http_url)
    settings = ComfySettings(
        url=url,
        servers=read_servers(env, url),
        failover_grace=env.get("FAILOVER_GRACE", d.failover_grace, to_seconds_or_zero),
        connect_timeout=env.get("COMFYUI_CONNECT_TIMEOUT", d.connect_timeout, to_positive_float),
        read_timeout=env.get("COMFYUI_READ_TIMEOUT", d.read_timeout, to_positive_float),
        retries=env.get("COMFYUI_RETRIES", d.retries, to_count),
        output_dir=env.get("COMFYUI_OUTPUT_DIR", d.output_dir, str.strip),
        cleanup_outputs=env.get("COMFYUI_CLEANUP_OUTPUTS", d.cleanup_outputs, to_bool),
        ws_ping_interval=env.get("WS_PING_INTERVAL", d.ws_ping_interval, to_positive_float),
        ws_stall_timeout=env.get("WS_STALL_TIMEOUT", d.ws_stall_timeout, to_positive_float),
        ws_reconnect_max_delay=env.get(
            "WS_RECONNECT_MAX_DELAY", d.ws_reconnect_max_delay, to_positive_float
        ),
        reconcile_interval=env.get("RECONCILE_INTERVAL", d.reconcile_interval, to_positive_float),
        max_inflight=env.get("COMFYUI_MAX_INFLIGHT", d.max_inflight, to_count),
    )
    if settings.ws_stall_timeout <= settings.ws_ping_interval:
        raise ConfigError(
            "WS_STALL_TIMEOUT must be longer than WS_PING_INTERVAL "
            f"(got {settings.ws_stall_timeout} <= {settings.ws_ping_interval})"
        )
    return settings


declare(
    "FLASK_HOST",
    "FLASK_PORT",
    "FLASK_DEBUG",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "LOG_WORKFLOWS",
    "SERVER_BASE_URL",
    "API_KEYS",
    "API_KEYS_FILE",
    "RATE_LIMIT",
    "CORS_ORIGINS",
    "FILE_MOUNTS",
    "FILE_ACCESS_KEY",
    "METRICS_TOKEN",
    "LOCAL_URL_SECRET",
    "LOCAL_URL_TTL",
    "MAX_CONTENT_LENGTH",
    "BODY_TIMEOUT",
    "WORKFLOWS_DIR",
    "WARMUP_WORKFLOW",
    "OUTPUT_DIR",
    "OUTPUT_URL_STYLE",
    "GENERATION_TIMEOUT",
    "CANCEL_ON_DISCONNECT",
    "CANCEL_ON_TIMEOUT",
    "GRACEFUL_TIMEOUT",
    "WEB_CONCURRENCY",
    "WORKER_CONNECTIONS",
    "GUNICORN_TIMEOUT",
    "GUNICORN_BACKLOG",
    "ACCESS_LOG",
    "GUNICORN_CONTROL_SOCKET",
)


def read_service(env: Reader) -> ServiceSettings:
    """Where the service listens, what it accepts, how long requests wait, gunicorn's knobs.

    :raises ConfigError: naming the variable with an unusable value.
    """
    d = ServiceSettings
    mounts = env.get("FILE_MOUNTS", d.file_mounts, parse_mounts)
    access_key = env.raw("FILE_ACCESS_KEY")
    if mounts and len(access_key) < 16:
        raise ConfigError("FILE_MOUNTS needs FILE_ACCESS_KEY, at least 16 characters")
    url_secret = env.raw("LOCAL_URL_SECRET")
    if url_secret and len(url_secret) < 16:
        raise ConfigError("LOCAL_URL_SECRET must be at least 16 characters")
    workflows_dir = env.get("WORKFLOWS_DIR", d.workflows_dir, str.strip)
    output_dir = env.get("OUTPUT_DIR", d.output_dir, str.strip)
    style = env.get("OUTPUT_URL_STYLE", d.output_url_style, to_output_url_style)
    url_prefix = d.output_url_prefix
    if style == "mounts":
        if url_secret:
            raise ConfigError(
                "OUTPUT_URL_STYLE=mounts cannot be used with LOCAL_URL_SECRET: "
                "mount URLs are not signed"
            )
        try:
            url_prefix = url_prefix_for(mounts, access_key, output_dir)
        except ValueError as err:
            message = f"OUTPUT_URL_STYLE=mounts needs OUTPUT_DIR in a mount: {err}"
            raise ConfigError(message) from err
    return ServiceSettings(
        file_mounts=mounts,
        file_access_key=access_key,
        metrics_token=env.raw("METRICS_TOKEN"),
        local_url_secret=url_secret,
        local_url_ttl=env.get("LOCAL_URL_TTL", d.local_url_ttl, to_positive_int),
        host=env.get("FLASK_HOST", d.host, str.strip),
        port=env.get("FLASK_PORT", d.port, to_port),
        debug=env.get("FLASK_DEBUG", d.debug, to_bool),
        log_level=env.get("LOG_LEVEL", d.log_level, to_log_level),
        log_format=env.get("LOG_FORMAT", d.log_format, to_log_format),
        log_workflows=env.get("LOG_WORKFLOWS", d.log_workflows, to_bool),
        server_base_url=env.get("SERVER_BASE_URL", d.server_base_url, to_http_url),
        api_keys=env.get("API_KEYS", d.api_keys, to_list),
        named_keys=env.get("API_KEYS_FILE", d.named_keys, load_keys_file),
        rate_limit=env.get("RATE_LIMIT", d.rate_limit, parse_rate),
        cors_origins=env.get("CORS_ORIGINS", d.cors_origins, to_origins),
        max_content_length=env.get("MAX_CONTENT_LENGTH", d.max_content_length, to_size),
        body_timeout=env.get("BODY_TIMEOUT", d.body_timeout, to_positive_float),
        workflows_dir=workflows_dir,
        warmup_workflow=env.get("WARMUP_WORKFLOW", "", partial(to_stored_workflow, workflows_dir)),
        output_dir=output_dir,
        output_url_style=style,
        output_url_prefix=url_prefix,
        generation_timeout=env.get("GENERATION_TIMEOUT", d.generation_timeout, to_positive_float),
        cancel_on_disconnect=env.get("CANCEL_ON_DISCONNECT", d.cancel_on_disconnect, to_bool),
        cancel_on_timeout=env.get("CANCEL_ON_TIMEOUT", d.cancel_on_timeout, to_bool),
        shutdown_grace=env.get("GRACEFUL_TIMEOUT", d.shutdown_grace, to_positive_float),
        workers=env.get("WEB_CONCURRENCY", d.workers, to_positive_int),
        worker_connections=env.get("WORKER_CONNECTIONS", d.worker_connections, to_positive_int),
        # 0 is gunicorn's own "no timeout".
        gunicorn_timeout=env.get("GUNICORN_TIMEOUT", d.gunicorn_timeout, to_count),
        backlog=env.get("GUNICORN_BACKLOG", d.backlog, to_positive_int),
        # Set but empty turns the access log off; unset keeps it on stdout.
        access_log=(env.raw("ACCESS_LOG") or None) if env.is_set("ACCESS_LOG") else d.access_log,
        control_socket=env.get("GUNICORN_CONTROL_SOCKET", d.control_socket, str.strip),
    )


declare(
    "DATA_DIR",
    "REDIS_URL",
    "RUN_TIMEOUT",
    "RUN_MAX_ATTEMPTS",
    "MAX_QUEUED_RUNS",
    "RUN_RETENTION_HOURS",
    "SYNC_WAIT_MAX",
    "RUN_RETRY_BASE",
    "RUN_OWNER_TTL",
)


def read_runs(env: Reader, generation_timeout: float) -> RunSettings:
    """Durable runs; their timeout and the longest synchronous wait default to `generation_timeout`.

    :raises ConfigError: naming the variable with an unusable value.
    """
    d = RunSettings
    return RunSettings(
        data_dir=env.get("DATA_DIR", d.data_dir, str.strip),
        redis_url=env.get("REDIS_URL", d.redis_url, to_redis_url),
        timeout=env.get("RUN_TIMEOUT", generation_timeout, to_positive_float),
        max_attempts=env.get("RUN_MAX_ATTEMPTS", d.max_attempts, to_positive_int),
        max_queued=env.get("MAX_QUEUED_RUNS", d.max_queued, to_count),
        retention_hours=env.get("RUN_RETENTION_HOURS", d.retention_hours, to_positive_float),
        sync_wait_max=env.get("SYNC_WAIT_MAX", generation_timeout, to_positive_float),
        retry_base=env.get("RUN_RETRY_BASE", d.retry_base, to_seconds_or_zero),
        owner_ttl=env.get("RUN_OWNER_TTL", d.owner_ttl, to_positive_float),
    )


declare(
    "INPUT_MAX_BYTES",
    "INPUT_MAX_PIXELS",
    "INPUT_FETCH_CONNECT_TIMEOUT",
    "INPUT_FETCH_TIMEOUT",
    "INPUT_MAX_REDIRECTS",
    "INPUT_FETCH_CONCURRENCY",
    "INPUT_MAX_IMAGES",
    "INPUT_ALLOW_HOSTS",
    "INPUT_MOUNTS",
)


def read_inputs(env: Reader, file_mounts: tuple[Mount, ...] = ()) -> InputSettings:
    """Limits on input images, from the `INPUT_*` variables; INPUT_MOUNTS picks `file_mounts`.

    :raises ConfigError: naming the variable with an unusable value.
    """
    d = InputSettings
    no_allow_list: AllowList = ((), ())
    hosts, networks = env.get("INPUT_ALLOW_HOSTS", no_allow_list, to_allow_list)
    return InputSettings(
        max_bytes=env.get("INPUT_MAX_BYTES", d.max_bytes, to_size),
        max_pixels=env.get("INPUT_MAX_PIXELS", d.max_pixels, to_positive_int),
        fetch_connect_timeout=env.get(
            "INPUT_FETCH_CONNECT_TIMEOUT", d.fetch_connect_timeout, to_positive_float
        ),
        fetch_timeout=env.get("INPUT_FETCH_TIMEOUT", d.fetch_timeout, to_positive_float),
        max_redirects=env.get("INPUT_MAX_REDIRECTS", d.max_redirects, to_count),
        fetch_concurrency=env.get("INPUT_FETCH_CONCURRENCY", d.fetch_concurrency, to_positive_int),
        max_images=env.get("INPUT_MAX_IMAGES", d.max_images, to_positive_int),
        allow_hosts=hosts,
        allow_networks=networks,
        mounts=env.get("INPUT_MOUNTS", d.mounts, partial(pick_inputs, mounts=file_mounts)),
    )


declare("SSE_HEARTBEAT")


def read_events(env: Reader) -> EventSettings:
    """Run event streams.

    :raises ConfigError: naming the variable with an unusable value.
    """
    d = EventSettings
    return EventSettings(
        sse_heartbeat=env.get("SSE_HEARTBEAT", d.sse_heartbeat, to_positive_float),
    )


declare(
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "WEBHOOK_RETRY_HOURS",
    "WEBHOOK_RETRY_BASE",
    "WEBHOOK_TIMEOUT",
    "WEBHOOK_CONCURRENCY",
    "WEBHOOK_PROGRESS_INTERVAL",
    "WEBHOOK_ALLOW_HOSTS",
)


def read_webhooks(env: Reader) -> WebhookSettings:
    """Webhook deliveries, from the `WEBHOOK_*` variables.

    :raises ConfigError: naming the variable with an unusable value.
    """
    d = WebhookSettings
    no_allow_list: AllowList = ((), ())
    hosts, networks = env.get("WEBHOOK_ALLOW_HOSTS", no_allow_list, to_allow_list)
    return WebhookSettings(
        url=env.get("WEBHOOK_URL", d.url, to_http_url),
        secret=_secret(env, "WEBHOOK_SECRET"),
        retry_hours=env.get("WEBHOOK_RETRY_HOURS", d.retry_hours, to_positive_float),
        retry_base=env.get("WEBHOOK_RETRY_BASE", d.retry_base, to_positive_float),
        timeout=env.get("WEBHOOK_TIMEOUT", d.timeout, to_positive_float),
        concurrency=env.get("WEBHOOK_CONCURRENCY", d.concurrency, to_positive_int),
        progress_interval=env.get(
            "WEBHOOK_PROGRESS_INTERVAL", d.progress_interval, to_positive_float
        ),
        allow_hosts=hosts,
        allow_networks=networks,
    )


def _secret(env: Reader, name: str) -> bytes:
    """A webhook signing key; its value never appears in the error (it ends up in logs)."""
    raw = env.raw(name).strip()
    if not raw:
        return b""
    try:
        return to_webhook_secret(raw)
    except ValueError as err:
        raise ConfigError(f"{name} is invalid: {err}") from err
