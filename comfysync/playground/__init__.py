"""The playground: `GET /` and `/playground`, a page to try the stored workflows in a browser.

Plain HTML, CSS and a few ES modules in `static/`, inside the package so every
installed copy (the Docker image included) serves them; nothing comes from
another origin, so the page works offline. The page holds no data and needs no
API key; its script sends the key the user types to `/api`, like any client.
"""

from __future__ import annotations

from flask import Blueprint, Response

bp = Blueprint("playground", __name__, static_folder="static", static_url_path="/playground/static")

# Only our own script and styles run: no inline script, no other origin's code.
# Output images may live on another host (S3, OSS, a CDN); the chosen upload
# shows as a blob: preview; the empty data: icon spares a /favicon.ico request.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: https: http:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


@bp.get("/")
@bp.get("/playground")
def page() -> Response:
    """The playground page."""
    return bp.send_static_file("index.html")


@bp.after_request
def _harden(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Run ids and URLs in the page's address never leak to an image host.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
