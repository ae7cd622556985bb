"""The one reader of the environment: look-ups, defaults and errors that name the variable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")

# Every variable the settings read, declared next to the code that reads it.
VARIABLES: set[str] = set()
# Prefixes of variable families whose full names depend on other settings
# (COMFYUI_HEADERS_<SERVER>).
PREFIXES: set[str] = set()


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


def declare(*names: str) -> tuple[str, ...]:
    """Add `names` to `VARIABLES`; a `Reader` refuses to read a name not declared."""
    VARIABLES.update(names)
    return names


def declare_prefix(prefix: str) -> str:
    """Add a family of variables, read together with `Reader.prefixed`."""
    PREFIXES.add(prefix)
    return prefix


class Reader:
    """Looks variables up in one mapping and wraps converter failures in a ConfigError.

    A blank value counts as unset, as it always has: `.env.example` leaves
    optional variables empty.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, name: str) -> str:
        """The value of `name`, stripped; "" when unset."""
        if name not in VARIABLES:
            raise LookupError(f"{name} is read but not declared (see config.reader.declare)")
        return (self._env.get(name) or "").strip()

    def is_set(self, name: str) -> bool:
        """Whether `name` is present at all, even with an empty value."""
        self.raw(name)
        return name in self._env

    def prefixed(self, prefix: str) -> dict[str, str]:
        """Every variable whose name starts with a declared `prefix`."""
        if prefix not in PREFIXES:
            raise LookupError(f"{prefix}* is read but not declared (see config.reader)")
        return {k: v for k, v in self._env.items() if k.startswith(prefix)}

    def pick(self, *names: str) -> tuple[str, str]:
        """The first of `names` that is set, as (name, value); ("", "") if none is."""
        for name in names:
            value = self.raw(name)
            if value:
                return name, value
        return "", ""

    def get(self, name: str, default: T, convert: Callable[[str], T]) -> T:
        """`convert(value)` of `name`, or `default` when it is unset or blank.

        :raises ConfigError: naming the variable when `convert` refuses its value.
        """
        return self.first((name,), default, convert)

    def first(self, names: tuple[str, ...], default: T, convert: Callable[[str], T]) -> T:
        """Like `get`, for the first of several names (aliases) that is set."""
        name, value = self.pick(*names)
        if not name:
            return default
        return self.convert(name, self._env[name], convert)

    @staticmethod
    def convert(name: str, raw: str, convert: Callable[[str], T]) -> T:
        """`convert(raw)`, its ValueError turned into a ConfigError naming `name`."""
        try:
            return convert(raw)
        except ValueError as err:
            raise ConfigError(f"{name}={raw!r} is invalid: {err}") from err
