"""Client-supplied images: safe fetching, decoding, checking and uploading to ComfyUI."""

from __future__ import annotations

from comfysync.inputs.errors import FieldError, InvalidInputs
from comfysync.inputs.fetch import AddressPolicy, ImageFetcher, system_resolver
from comfysync.inputs.prepare import ImageJob, Upload, load_image_jobs, prepare_images
from comfysync.inputs.settings import InputSettings

__all__ = [
    "AddressPolicy",
    "FieldError",
    "ImageFetcher",
    "ImageJob",
    "InputSettings",
    "InvalidInputs",
    "Upload",
    "load_image_jobs",
    "prepare_images",
    "system_resolver",
]
