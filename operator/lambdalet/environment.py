"""Typed reads of a component's environment, for the settings loaders of the operator
(``lambdalet.settings``), the activator and the dispatcher (their ``settings`` modules).

Each loader wraps its mapping once, ``env = Environment(os.environ, empty=...)``, and asks for
each variable by type: text, words, a number in a range, a whole number, a port, seconds, a
true/false flag, a choice of an enum, a namespace name. A value it cannot use is a
:class:`SettingsError` that names the variable and the value; a value Kubernetes injected for a
Service (a Docker link, ``tcp://10.96.35.181:80``) is refused with that reason
(``lambdalet.service_links.LinkGuard``).

What an empty value of a typed setting means differs between the components and is said where
each wraps its mapping: the operator's ``LAMBDALET_RESYNC_SECONDS=""`` is an error
(``empty="invalid"``), the activator's ``LAMBDALET_HOLD_LIMIT=""`` is the default
(``empty="unset"``). Text is taken as it is given either way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Literal, TypeVar

from lambdalet.service_links import LinkGuard

# A namespace name (DNS-1123 label).
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

TRUE = ("true", "1", "yes")
FALSE = ("false", "0", "no")

Empty = Literal["unset", "invalid"]
E = TypeVar("E", bound=StrEnum)


class SettingsError(ValueError):
    """An environment variable holds a value its component cannot use."""


class Environment:
    """A component's environment, read one variable at a time by type. ``empty`` says what an
    empty value of a typed setting (number, whole number, port, seconds, flag, choice, namespace)
    means: ``"unset"``, the default; ``"invalid"``, an error."""

    def __init__(self, env: Mapping[str, str], *, empty: Empty) -> None:
        self._env = LinkGuard(env, SettingsError)
        self._empty = empty

    def text(self, name: str, default: str) -> str:
        """The value as given (an empty one included); ``default`` when unset."""
        return self._env.get(name, default)

    def optional(self, name: str) -> str | None:
        """The value without surrounding blanks; None when unset or blank."""
        return self._env.get(name, "").strip() or None

    def url(self, name: str, default: str) -> str:
        """A base URL without its trailing '/', so that paths can be appended."""
        return self.text(name, default).rstrip("/")

    def words(self, name: str) -> tuple[str, ...]:
        """Whitespace-separated words; none when unset."""
        return tuple(self._env.get(name, "").split())

    def number(self, name: str, default: float, low: float, high: float) -> float:
        """A number from ``low`` to ``high``, both included."""
        raw = self._raw(name)
        if raw is None:
            return default
        value = self._parse(name, raw)
        if not low <= value <= high:  # nan too
            raise SettingsError(f"{name} must be between {low:g} and {high:g}, not {raw}")
        return value

    def whole(self, name: str, default: int, low: int, high: int) -> int:
        """A whole number from ``low`` to ``high``, both included ("1e3" is 1000; "80.5" is
        an error)."""
        raw = self._raw(name)
        if raw is None:
            return default
        value = self._parse(name, raw)
        if not (value.is_integer() and low <= value <= high):
            raise SettingsError(
                f"{name} must be a whole number between {low} and {high}, not {raw}"
            )
        return int(value)

    def port(self, name: str, default: int) -> int:
        """A TCP port: a whole number from 0 to 65535 (0: a listener takes any free port, or
        the component serves none, as each says)."""
        return self.whole(name, default, 0, 65535)

    def seconds(self, name: str, default: float) -> float:
        """A positive, finite number of seconds: nan and inf would silently stop a loop that
        sleeps that long, and 0 would make it spin."""
        raw = self._raw(name)
        if raw is None:
            return default
        value = self._parse(name, raw)
        if not 0 < value < math.inf:  # nan too
            raise SettingsError(f"{name} must be a positive, finite number, not {raw!r}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        """true or false (also 1 / 0, yes / no; any case)."""
        raw = self._raw(name)
        if raw is None:
            return default
        word = raw.strip().lower()
        if word not in TRUE + FALSE:
            raise SettingsError(f"{name} must be true or false, not {raw!r}")
        return word in TRUE

    def choice(self, name: str, default: E) -> E:
        """One of the values of ``default``'s enum, spelled exactly."""
        raw = self._raw(name)
        if raw is None:
            return default
        kind = type(default)
        try:
            return kind(raw)
        except ValueError as exc:
            allowed = ", ".join(member.value for member in kind)
            raise SettingsError(f"{name} must be one of {allowed}, not {raw!r}") from exc

    def namespace(self, name: str, default: str) -> str:
        """A namespace name: lowercase letters, digits and '-', at most 63."""
        raw = self._raw(name)
        return _namespace(name, default if raw is None else raw.strip())

    def optional_namespace(self, name: str) -> str | None:
        """A namespace name, or None when unset or blank."""
        value = self.optional(name)
        return None if value is None else _namespace(name, value)

    def _raw(self, name: str) -> str | None:
        """The value of a typed setting; None for the default (unset, or empty where an empty
        value means unset)."""
        raw = self._env.get(name)
        if raw == "" and self._empty == "unset":
            return None
        return raw

    @staticmethod
    def _parse(name: str, raw: str) -> float:
        try:
            return float(raw)
        except ValueError as exc:
            raise SettingsError(f"{name} must be a number, not {raw!r}") from exc


def _namespace(name: str, value: str) -> str:
    if not DNS_LABEL.fullmatch(value):
        raise SettingsError(
            f"{name} must be a namespace name (lowercase letters, digits and '-', at most 63), "
            f"not {value!r}"
        )
    return value
