"""comfysync: a synchronous HTTP gateway in front of ComfyUI."""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from .config import Settings


def create_app(test_config: Settings | Mapping[str, str] | None = None) -> Flask:
    """Build the Flask app from `test_config`, else from the process environment.

    `test_config` is a `Settings` or a mapping of variable names to strings,
    read on its own (never merged with `os.environ`). No `.env` file is read
    here: the entry points call `config.load_env_file()` first.

    :raises ConfigError: naming the variable whose value is unusable.
    """
    from . import api, cors, errors, logs, request_ids
    from .api import docs
    from .gateway import Gateway

    if isinstance(test_config, Settings):
        settings = test_config
    else:
        settings = Settings.from_env(os.environ if test_config is None else test_config)
    service = settings.service
    logs.configure(service.log_level, service.log_format)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = service.max_content_length
    app.debug = service.debug
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False  # keep response fields in the documented order
    app.extensions["comfysync"] = Gateway(settings)
    request_ids.register(app)
    cors.register(app)
    errors.register_error_handlers(app)
    api.register(app)
    docs.register(app)
    return app
