"""The OpenAPI 3.1 description of the gateway, built once from the routes' own models."""

from .document import build_document
from .operations import FILE, operation

__all__ = ["FILE", "build_document", "operation"]
