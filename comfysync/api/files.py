"""`GET /output_images/<file>`: outputs kept on local disk, served by the gateway; and
`GET /comfyui_server/pw=<key>/files/<alias>/<file>`: the file mounts."""

from __future__ import annotations

import mimetypes

from flask import Blueprint, current_app, request, send_file, send_from_directory

from ..errors import NotFound
from ..mounts import check_key, resolve
from ..openapi.operations import FILE, Query, operation

bp = Blueprint("files", __name__)


@bp.get("/output_images/<path:key>")
@operation(
    query=(Query("expires", {"type": "string"}), Query("sig", {"type": "string"})),
    answers={200: FILE},
    tag="files",
    public=True,
)
def output_image(key: str):
    """Serve one stored output; names are unguessable and there is no listing."""
    store = current_app.extensions["comfysync"].local
    if store.signer is not None:
        store.signer.verify(key, request.args.get("expires"), request.args.get("sig"))
    response = send_from_directory(store.root, key, max_age=86400)
    response.headers["X-Content-Type-Options"] = "nosniff"
    # An SVG or HTML output opened directly must not run as a page of our origin.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    # Signed URLs are private: no shared cache may keep one past its expiry.
    cache = "private, max-age=3600" if store.signer is not None else "public, max-age=86400"
    response.headers["Cache-Control"] = cache + ", immutable"
    return response


# The key may travel in this header instead of the path.
KEY_HEADER = "X-File-Access-Key"


def _serve_mounted(key: str | None, alias: str, name: str):
    settings = current_app.extensions["comfysync"].settings.service
    if not settings.file_mounts:
        raise NotFound("No file mounts are configured")
    check_key(settings.file_access_key, key)
    path = resolve(settings.file_mounts, alias, name)
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    response = send_file(path, mimetype=kind, conditional=True, max_age=3600)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    # Behind a key: kept by the browser, never by a shared cache.
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.get("/comfyui_server/pw=<key>/files/<alias>/<path:name>")
@operation(answers={200: FILE}, tag="files", public=True)
def mounted_file(key: str, alias: str, name: str):
    """One file of a mount, the key in the path (seed 004's form)."""
    return _serve_mounted(key, alias, name)


@bp.get("/comfyui_server/files/<alias>/<path:name>")
@operation(
    query=(Query(KEY_HEADER, {"type": "string"}, where="header"),),
    answers={200: FILE},
    tag="files",
    public=True,
)
def mounted_file_keyed(alias: str, name: str):
    """One file of a mount, the key in the X-File-Access-Key header."""
    return _serve_mounted(request.headers.get(KEY_HEADER), alias, name)
