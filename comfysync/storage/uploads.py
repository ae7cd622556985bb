"""Upload the files of one run in parallel; a failed upload keeps the local copy."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import StorageError
from ..greenlets import bounded_map
from .base import RemoteStore, StoredFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadOutcome:
    """Every file in input order (remote or, after a failure, local) and the warnings."""

    files: list[StoredFile]
    warnings: list[str] = field(default_factory=list)


def upload_all(
    remote: RemoteStore | None,
    files: Sequence[StoredFile],
    *,
    prompt_id: str,
    concurrency: int = 4,
    timeout: float = 300.0,
) -> UploadOutcome:
    """Copy `files` (already written locally) to `remote`, at most `concurrency` at a time.

    Never raises for a failed upload: that file stays local (`storage="local"`)
    and a warning for the response is returned. Without monkey-patching the
    greenlets simply run one after another. With no remote store, `files` come
    back unchanged.
    """
    if remote is None or not files:
        return UploadOutcome(list(files))
    finished = bounded_map(
        lambda stored: _upload_one(remote, stored, prompt_id), files, concurrency, timeout=timeout
    )
    results: list[StoredFile] = []
    warnings: list[str] = []
    for stored, job in zip(files, finished, strict=True):
        value = job.value
        if isinstance(value, StoredFile):
            results.append(value)
            continue
        reason = value if isinstance(value, str) else f"no answer within {timeout:g}s"
        if not isinstance(value, str):
            log.warning(
                "prompt %s: upload of %s to %s timed out", prompt_id, stored.key, remote.name
            )
        results.append(stored)
        warnings.append(
            f"upload of {stored.key} to {remote.name} failed ({reason}); serving the local copy"
        )
    return UploadOutcome(results, warnings)


def _upload_one(remote: RemoteStore, stored: StoredFile, prompt_id: str) -> StoredFile | str:
    """The uploaded file, or the failure's message (logged here with the prompt id)."""
    started = time.monotonic()
    try:
        return remote.upload(stored, prompt_id=prompt_id)
    except Exception as err:  # whatever went wrong, the local copy stays in use
        log.warning(
            "prompt %s: upload of %s to %s failed after %.2fs: %s",
            prompt_id,
            stored.key,
            remote.name,
            time.monotonic() - started,
            err,
            # StorageError is a translated backend failure; anything else is a bug to trace.
            exc_info=not isinstance(err, StorageError),
        )
        return str(err) or type(err).__name__
