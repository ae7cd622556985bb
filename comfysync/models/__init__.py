"""Typed request and response bodies: they check what clients send and describe
the API (`/openapi.json`) from one source."""

from .parse import parse
from .requests import GenerateRequest, OutputRequest

__all__ = ["GenerateRequest", "OutputRequest", "parse"]
