"""gunicorn settings: the gevent worker, bound from FLASK_HOST/FLASK_PORT.

Every value comes from `Settings` (see `.env.example`), like the gateway's own.
"""

import gc
import os
import shutil
import signal

from comfysync.config import Settings, load_env_file
from comfysync.pids import alive

load_env_file()  # `.env` (or ENV_FILE) under the real environment; workers inherit it
_settings = Settings.from_env(os.environ)
_service = _settings.service


def _metrics_folder(data_dir):
    """A fresh folder for the workers' metric files, before any worker exists.

    prometheus_client reads PROMETHEUS_MULTIPROC_DIR when it is imported, so
    it is set here, in the master; folders of masters no longer running go.
    """
    root = os.path.join(data_dir, "metrics")
    os.makedirs(root, exist_ok=True)
    for name in os.listdir(root):
        if name.isdigit() and not alive(int(name)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    folder = os.path.join(root, str(os.getpid()))
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_folder(_settings.runs.data_dir)

bind = f"{_service.host}:{_service.port}"
workers = _service.workers
worker_class = "gevent"
# Each held request is one greenlet; thousands can wait in one worker.
worker_connections = _service.worker_connections
# Requests are held open for minutes by design: gunicorn's worker timeout
# only watches the heartbeat, which the gevent worker keeps beating.
timeout = _service.gunicorn_timeout
graceful_timeout = int(_service.shutdown_grace)
keepalive = 5
# Bursts of many new connections need a listen queue to match (and somaxconn).
backlog = _service.backlog
accesslog = _service.access_log
loglevel = _service.log_level.lower()
if _service.log_format == "json":
    from comfysync.logs import gunicorn_logconfig

    logconfig_dict = gunicorn_logconfig(_service.log_level)
# gunicorn's control socket defaults to one path per user, which several
# instances on one host would fight over; opt in with GUNICORN_CONTROL_SOCKET.
control_socket_disable = not _service.control_socket
if _service.control_socket:
    control_socket = _service.control_socket


# The cyclic garbage collector, tuned for thousands of held requests: with
# the defaults it ran ~900 times during 5,000 held generations, 1.15 s in all
# (0.23 ms per request), and each pass stops every request of the worker.
# Objects alive after start-up are frozen out of its scans, and the young
# generation is collected every 50,000 allocations instead of 700: 12 passes,
# 0.13 s, worker CPU 1.9 -> 1.4 ms per held request (python -m bench held).
# Nearly everything a request allocates is freed by reference counting.
GC_THRESHOLDS = (50_000, 20, 10)


def post_worker_init(worker):
    """Start the watcher, tune the garbage collector, and chain SIGTERM to a graceful stop."""
    gateway = worker.wsgi.extensions["comfysync"]
    gateway.start()  # connect the WebSocket now, not on the first request
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    previous = signal.getsignal(signal.SIGTERM)
    # Answer the stragglers a little before gunicorn kills them.
    grace = max(0.0, worker.cfg.graceful_timeout - 1.5)

    def on_term(signum, frame):
        gateway.begin_shutdown(grace)
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def child_exit(server, worker):
    """A worker is gone (in the master): its live gauges no longer count."""
    from comfysync.metrics import mark_dead

    mark_dead(worker.pid)


def worker_exit(server, worker):
    """Close the gateway (watcher, pruner, background greenlets, connections) as the worker exits.

    gunicorn also calls this in the master for a worker that died unseen, where
    no app was ever loaded.
    """
    gateway = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("comfysync")
    if gateway is not None:
        gateway.close()
        server.log.info("Gateway closed (pid: %s)", worker.pid)
