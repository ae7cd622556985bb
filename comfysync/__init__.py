"""comfysync: a synchronous HTTP gateway in front of ComfyUI."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from .config import Settings


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app; `test_config` overrides settings read from the environment."""
    from . import api, errors
    from .gateway import Gateway

    settings = Settings.from_env()
    if test_config:
        settings = settings.with_overrides(test_config)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.debug = settings.flask_debug
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False  # keep response fields in the documented order
    app.extensions["comfysync"] = Gateway(settings)
    errors.register_error_handlers(app)
    api.register(app)
    return app
