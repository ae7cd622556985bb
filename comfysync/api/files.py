"""`GET /output_images/<file>`: outputs kept on local disk, served by the gateway."""

from __future__ import annotations

from flask import Blueprint, current_app, send_from_directory

bp = Blueprint("files", __name__)


@bp.get("/output_images/<path:key>")
def output_image(key: str):
    """Serve one stored output; names are unguessable and there is no listing."""
    store = current_app.extensions["comfysync"].local
    response = send_from_directory(store.root, key, max_age=86400)
    response.headers["X-Content-Type-Options"] = "nosniff"
    # An SVG or HTML output opened directly must not run as a page of our origin.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "public, max-age=86400, immutable"
    return response
