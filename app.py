"""Development entry point: `python app.py` serves the gateway with gevent's WSGI server.

Production runs `gunicorn -c gunicorn.conf.py wsgi:app` (see `make run`).
"""

from __future__ import annotations

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()  # first, before anything imports socket or ssl

from comfysync import create_app  # noqa: E402
from comfysync.config import load_env_file  # noqa: E402


def main() -> None:
    """Serve on FLASK_HOST:FLASK_PORT, with `.env` (or ENV_FILE) under the real environment."""
    from gevent.pywsgi import WSGIServer

    load_env_file()
    app = create_app()
    service = app.extensions["comfysync"].settings.service
    print(f"comfysync (development server) on http://{service.host}:{service.port}")
    WSGIServer((service.host, service.port), app).serve_forever()


if __name__ == "__main__":
    main()
