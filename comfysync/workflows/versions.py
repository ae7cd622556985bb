"""A workflow with versions: `workflows/<name>/v<N>.json`, and its aliases.

The aliases live in `workflows/<name>/aliases.json` (or `aliases.toml`), one
alias to one version: `{"production": "v3", "staging": "v4"}`. The plain name
picks `production` when there is one, else the highest version.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from ..errors import GatewayError, NotFound
from .refs import ALIAS, version_number

DEFAULT_ALIAS = "production"
MANIFESTS = ("aliases.json", "aliases.toml")


@dataclass(frozen=True)
class Deployment:
    """The versions of one workflow (ascending) and its aliases."""

    name: str
    versions: tuple[str, ...]
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def default(self) -> str:
        """The version the plain name picks."""
        return self.aliases.get(DEFAULT_ALIAS) or self.versions[-1]

    def pick(self, tag: str | None) -> str:
        """The version a tag (a version, an alias, or None for the default) names.

        :raises NotFound: naming the versions and aliases there are.
        """
        if tag is None:
            return self.default
        if tag in self.versions:
            return tag
        if tag in self.aliases:
            return self.aliases[tag]
        raise NotFound(
            f"Workflow {self.name!r} has no version or alias {tag!r}; {self.describe()}",
            workflow=self.name,
            versions=list(self.versions),
            aliases=dict(self.aliases),
        )

    def describe(self) -> str:
        """What exists, for messages: `versions v1, v3; aliases production (v3)`."""
        text = "versions " + ", ".join(self.versions)
        if self.aliases:
            text += "; aliases " + ", ".join(f"{a} ({v})" for a, v in self.aliases.items())
        return text

    def to_json(self) -> dict[str, Any]:
        """What `GET /api/workflows` shows of it."""
        return {"versions": list(self.versions), "aliases": self.aliases, "default": self.default}


def read_deployment(folder: str, name: str) -> Deployment | None:
    """The versions in `folder` and its aliases; None when it holds no version.

    :raises GatewayError: the aliases file is unreadable, or names a version
        that is not there (a deployment error).
    """
    try:
        entries = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    numbered = []
    for entry in entries:
        stem, ext = os.path.splitext(entry)
        number = version_number(stem) if ext == ".json" else None
        if number is not None:
            numbered.append((number, stem))
    if not numbered:
        return None
    versions = tuple(stem for _, stem in sorted(numbered))
    return Deployment(name, versions, _read_aliases(folder, name, versions))


def _read_aliases(folder: str, name: str, versions: tuple[str, ...]) -> dict[str, str]:
    present = [m for m in MANIFESTS if os.path.isfile(os.path.join(folder, m))]
    if not present:
        return {}
    where = f"{name}/{present[0]}"
    if len(present) > 1:
        raise GatewayError(f"Workflow {name!r} has both {' and '.join(present)}; keep one")
    try:
        with open(os.path.join(folder, present[0]), "rb") as handle:
            raw = handle.read()
        data = tomllib.loads(raw.decode()) if where.endswith(".toml") else json.loads(raw)
    except (OSError, ValueError) as err:  # TOMLDecodeError and JSONDecodeError included
        raise GatewayError(f"{where} is not valid: {err}") from err
    if not isinstance(data, dict):
        raise GatewayError(f'{where} must map aliases to versions: {{"production": "v3"}}')
    aliases = {}
    for alias, version in data.items():
        if not ALIAS.match(alias) or version_number(alias) is not None:
            raise GatewayError(f"{where}: {alias!r} is not an alias name (letters, digits, _ -)")
        if version not in versions:
            have = ", ".join(versions)
            raise GatewayError(f"{where}: {alias} points to {version!r}; the versions are {have}")
        aliases[alias] = version
    return aliases
