"""Turn every image a request supplies into a file in ComfyUI's input folder."""

from __future__ import annotations

import copy
import logging
import math
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from comfysync import metrics
from comfysync.errors import ComfyUnavailable
from comfysync.greenlets import bounded_map
from comfysync.inputs.decode import (
    SourceKind,
    classify,
    decode_base64,
    decode_data_url,
)
from comfysync.inputs.errors import (
    FieldError,
    ImageInputError,
    InvalidInputs,
    describe,
)
from comfysync.inputs.fetch import ImageFetcher
from comfysync.inputs.mounted import read_mounted
from comfysync.inputs.settings import InputSettings
from comfysync.inputs.verify import VerifiedImage, verify_image

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

Upload = Callable[[bytes, str], str]
"""Stores `data` in ComfyUI's input folder as `filename`; returns the name ComfyUI used."""

Graph = dict[str, Any]

EXPECTED_IMAGE = (
    "image: http(s) URL, data:image/...;base64, URL, base64, uploaded file "
    "or alias:name in an input mount"
)
# Core nodes whose `image` input names a file in ComfyUI's input folder.
LOAD_IMAGE_CLASSES = frozenset({"LoadImage", "LoadImageMask"})
UPLOAD_TIMEOUT = 120.0  # the upload callable has its own timeouts; this bounds the wait


@dataclass(frozen=True)
class ImageJob:
    """One image from the request and the node inputs that must point at it."""

    name: str  # the parameter (or "<node_id>.image") named in error fields
    source: str | bytes  # URL, data URL, base64, a plain file name, or uploaded bytes
    targets: tuple[tuple[str, str], ...]  # (node_id, input_name) pairs
    alpha: bool = False  # upload as an RGBA PNG so LoadImage yields a mask


def load_image_jobs(graph: Graph, exclude: Iterable[tuple[str, str]] = ()) -> list[ImageJob]:
    """Jobs for LoadImage nodes whose `image` holds a URL or base64 rather than a file name."""
    skip = set(exclude)
    jobs = []
    for node_id, node in graph.items():
        if not isinstance(node, dict) or node.get("class_type") not in LOAD_IMAGE_CLASSES:
            continue
        value = (node.get("inputs") or {}).get("image")
        target = (str(node_id), "image")
        if target in skip or not isinstance(value, str):
            continue
        if classify(value) is not SourceKind.NAME:
            jobs.append(ImageJob(f"{node_id}.image", value, (target,)))
    return jobs


def prepare_images(
    graph: Graph,
    jobs: Sequence[ImageJob],
    *,
    upload: Upload,
    settings: InputSettings,
    fetcher: ImageFetcher | None = None,
) -> Graph:
    """Fetch, decode and verify every image concurrently, upload each, point nodes at it.

    Besides `jobs`, every LoadImage `image` input holding a URL or base64 is handled.
    Nothing is uploaded unless every image passed. Returns a new graph.

    :raises InvalidInputs: listing each image that was unreachable, blocked, too large
        or not an image (and any over `max_images`).
    :raises ComfyUnavailable: when the uploads do not finish in time; errors raised
        by `upload` itself propagate unchanged.
    """
    graph = copy.deepcopy(graph)
    claimed = [target for job in jobs for target in job.targets]
    jobs = [*jobs, *load_image_jobs(graph, exclude=claimed)]
    named = [job for job in jobs if _is_name(job.source)]
    jobs = [job for job in jobs if not _is_name(job.source)]
    for job in named:
        _point(graph, job, str(job.source).strip())
    if not jobs:
        return graph
    if len(jobs) > settings.max_images:
        reason = f"too many images: at most {settings.max_images} per request"
        raise InvalidInputs(
            [FieldError(j.name, EXPECTED_IMAGE, describe(j.source), reason) for j in jobs]
        )

    fetcher = fetcher or ImageFetcher(settings)
    per_job = settings.fetch_timeout + settings.fetch_connect_timeout * (settings.max_redirects + 1)
    rounds = math.ceil(len(jobs) / settings.fetch_concurrency)
    loaded = _run_bounded(
        lambda job: _load(job, fetcher, settings),
        jobs,
        settings.fetch_concurrency,
        timeout=per_job * rounds + 1.0,
    )
    errors = []
    for job, result in zip(jobs, loaded, strict=True):
        if isinstance(result, ImageInputError):
            errors.append(FieldError(job.name, EXPECTED_IMAGE, describe(job.source), result.reason))
        elif result is None:
            errors.append(
                FieldError(job.name, EXPECTED_IMAGE, describe(job.source), "unreachable: timed out")
            )
    if errors:
        metrics.INPUT_REFUSALS.inc(len(errors))
        raise InvalidInputs(errors)

    images = [r for r in loaded if isinstance(r, VerifiedImage)]
    names = _run_bounded(
        lambda pair: upload(pair[1].data, upload_name(pair[0], pair[1])),
        list(zip(jobs, images, strict=True)),
        settings.fetch_concurrency,
        timeout=UPLOAD_TIMEOUT,
    )
    if any(name is None for name in names):
        raise ComfyUnavailable("uploading input images to ComfyUI timed out")
    for job, name in zip(jobs, names, strict=True):
        _point(graph, job, str(name))
    return graph


def upload_name(job: ImageJob, image: VerifiedImage) -> str:
    """A collision-free file name that still says which parameter it came from."""
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", job.name).strip("-")[:40] or "image"
    return f"comfysync_{label}_{uuid.uuid4().hex}{image.extension}"


def _load(job: ImageJob, fetcher: ImageFetcher, settings: InputSettings) -> VerifiedImage:
    source = job.source
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    else:
        kind = classify(source)
        if kind in (SourceKind.URL, SourceKind.OTHER_SCHEME):
            data = fetcher.fetch(source.strip())  # refuses schemes other than http(s)
        elif kind is SourceKind.DATA_URL:
            data = decode_data_url(source, settings.max_bytes)
        elif kind is SourceKind.MOUNT:
            data = read_mounted(source, settings.mounts, settings.max_bytes)
        else:
            data = decode_base64(source, settings.max_bytes)
    return verify_image(
        data, max_bytes=settings.max_bytes, max_pixels=settings.max_pixels, alpha=job.alpha
    )


def _run_bounded(
    work: Callable[[T], R], items: Sequence[T], size: int, *, timeout: float
) -> list[R | ImageInputError | None]:
    """Run `work` over `items`, `size` at a time, in order.

    An `ImageInputError` is returned in place of the result; `None` means the item did
    not finish within `timeout`; any other exception is re-raised.
    """
    results: list[R | ImageInputError | None] = []
    for item in bounded_map(work, items, size, timeout=timeout):
        if isinstance(item.error, ImageInputError):
            results.append(item.error)
        else:
            results.append(item.get() if item.done else None)
    return results


def _is_name(source: str | bytes) -> bool:
    return isinstance(source, str) and classify(source) is SourceKind.NAME


def _point(graph: Graph, job: ImageJob, name: str) -> None:
    for node_id, input_name in job.targets:
        node = graph.get(node_id)
        if isinstance(node, dict):
            node.setdefault("inputs", {})[input_name] = name
