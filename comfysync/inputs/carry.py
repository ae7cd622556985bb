"""Input images follow their run to the server it is dispatched to.

They are sent to one server when the run is accepted (checked, decoded and
renamed then, so a bad image is a 400 at once); a fleet may dispatch the run
to another, so there the files are copied from the first server's input
folder, under the same collision-free names, before the prompt is submitted.
"""

from __future__ import annotations

import logging

from ..comfy.backend import ComfyBackend
from ..runs.base import RunRecord

log = logging.getLogger(__name__)


def carry_uploads(record: RunRecord, origin: ComfyBackend, target: ComfyBackend) -> None:
    """Copy the run's input images from `origin` to `target` unless they are there.

    :raises GatewayError: either server failed (the attempt is retried; a
        transient error, as the origin may be down).
    """
    if not record.uploads or origin is target:
        return
    for name in record.uploads:
        subfolder, _, filename = name.rpartition("/")
        view = origin.client.open_view(filename, subfolder, "input")
        try:
            data = b"".join(view)
        finally:
            view.close()
        target.client.upload_image(data, name, overwrite=True)
    log.debug(
        "run %s: %d input images copied from %s to %s",
        record.id,
        len(record.uploads),
        origin.name,
        target.name,
    )
