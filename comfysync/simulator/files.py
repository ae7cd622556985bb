"""GET /view and POST /upload/image with ComfyUI's path rules and headers."""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
from typing import Any

from aiohttp import web
from PIL import Image

from .storage import DataDirs

# A plain GET of a file this small is answered from memory with FileResponse's
# own headers: aiohttp's FileResponse does its stat and open in worker threads,
# which cost more than everything else the simulator does per prompt.
_INLINE_MAX = 256 * 1024
_CONDITIONAL = ("Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")

_FORCE_DOWNLOAD_0364 = {
    "text/html",
    "text/html-sandboxed",
    "application/xhtml+xml",
    "text/javascript",
    "text/css",
}


def _dangerous_027(content_type: str) -> bool:
    base = content_type.split(";")[0].strip().lower()
    return (
        base in _FORCE_DOWNLOAD_0364
        or base in ("image/svg+xml", "message/rfc822", "application/javascript")
        or base.endswith("/xml")
        or base.endswith("+xml")
    )


def _split_annotation(name: str, dirs: DataDirs) -> tuple[str, str | None]:
    for tag, folder in (
        (" [output]", dirs.output),
        (" [input]", dirs.input),
        (" [temp]", dirs.temp),
    ):
        if name.endswith(tag):
            return name[: -len(tag)], folder
    return name, None


async def view(request: web.Request, dirs: DataDirs, v027: bool) -> web.StreamResponse:
    """Serve an input/output/temp file (or a webp/jpeg preview of it)."""
    query = request.rel_url.query
    if "filename" not in query:
        return web.Response(status=404)
    filename, output_dir = _split_annotation(query["filename"], dirs)
    if not filename:
        return web.Response(status=400)
    if filename[0] == "/" or ".." in filename:
        return web.Response(status=400)
    if output_dir is None:
        output_dir = dirs.by_type(query.get("type", "output"))
    if output_dir is None:
        return web.Response(status=400)
    if "subfolder" in query:
        full = os.path.join(output_dir, query["subfolder"])
        if os.path.commonpath((os.path.abspath(full), output_dir)) != output_dir:
            return web.Response(status=403)
        output_dir = full
    filename = os.path.basename(filename)
    path = os.path.join(output_dir, filename)
    if not os.path.isfile(path):
        return web.Response(status=404)
    disposition = {"Content-Disposition": f'filename="{filename}"'}
    if "preview" in query:
        parts = query["preview"].split(";")
        fmt = (
            parts[0]
            if parts[0] in ("webp", "jpeg") and "a" not in query.get("channel", "")
            else "webp"
        )
        quality = int(parts[-1]) if parts[-1].isdigit() else 90
        with Image.open(path) as opened:
            img = (
                opened.convert("RGB")
                if fmt == "jpeg" or query.get("channel", "") == "rgb"
                else opened
            )
            buf = io.BytesIO()
            img.save(buf, format=fmt, quality=quality)
        return web.Response(body=buf.getvalue(), content_type=f"image/{fmt}", headers=disposition)
    channel = query.get("channel", "rgba")
    if channel in ("rgb", "a"):
        with Image.open(path) as img:
            if channel == "rgb":
                out = img.convert("RGB")
            else:
                alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
                out = Image.new("RGBA", img.size)
                out.putalpha(alpha)
            buf = io.BytesIO()
            out.save(buf, format="PNG")
        return web.Response(body=buf.getvalue(), content_type="image/png", headers=disposition)
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    headers: dict[str, str] = {}
    if v027:
        if _dangerous_027(content_type):
            content_type = "application/octet-stream"
            disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
        headers = {**disposition, "Content-Type": content_type, "X-Content-Type-Options": "nosniff"}
    else:
        if content_type in _FORCE_DOWNLOAD_0364:
            content_type = "application/octet-stream"
        headers = {**disposition, "Content-Type": content_type}
    if request.method == "GET" and not any(h in request.headers for h in _CONDITIONAL):
        inline = _inline_file(path, headers)
        if inline is not None:
            return inline
    return web.FileResponse(path, headers=headers)


def _inline_file(path: str, headers: dict[str, str]) -> web.Response | None:
    """The file as FileResponse would send it (ETag, Last-Modified, ranges offered)."""
    with open(path, "rb") as handle:
        stat = os.fstat(handle.fileno())
        if stat.st_size > _INLINE_MAX:
            return None
        body = handle.read()
    response = web.Response(body=body, headers={**headers, "Accept-Ranges": "bytes"})
    response.etag = f"{stat.st_mtime_ns:x}-{stat.st_size:x}"
    response.last_modified = stat.st_mtime
    return response


def _same_bytes(path: str, data: bytes) -> bool:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).digest() == hashlib.sha256(data).digest()


async def upload_image(request: web.Request, dirs: DataDirs) -> web.Response:
    """Store a multipart `image`; same bytes keep the name, else 'name (1).png'."""
    post = await request.post()
    image: Any = post.get("image")
    overwrite = post.get("overwrite")
    upload_type = post.get("type")
    kind = str(upload_type) if upload_type is not None else "input"
    upload_dir = dirs.by_type(kind)
    if upload_dir is None:
        # ComfyUI fails with an unbound local here, i.e. a 500.
        raise RuntimeError(f"unknown upload type {kind!r}")
    if not (image is not None and isinstance(image, web.FileField) and image.file):
        return web.Response(status=400)
    filename = image.filename
    if not filename:
        return web.Response(status=400)
    subfolder = str(post.get("subfolder", ""))
    folder = os.path.join(upload_dir, os.path.normpath(subfolder))
    filepath = os.path.abspath(os.path.join(folder, filename))
    if os.path.commonpath((upload_dir, filepath)) != upload_dir:
        return web.Response(status=400)
    os.makedirs(folder, exist_ok=True)
    data = image.file.read()
    duplicate = False
    if overwrite not in ("true", "1"):
        stem, ext = os.path.splitext(filename)
        i = 1
        while os.path.exists(filepath):
            if _same_bytes(filepath, data):
                duplicate = True
                break
            filename = f"{stem} ({i}){ext}"
            filepath = os.path.join(folder, filename)
            i += 1
    if not duplicate:
        with open(filepath, "wb") as fh:
            fh.write(data)
    return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})
