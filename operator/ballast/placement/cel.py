"""CEL device selectors (``resource.k8s.io/v1``), evaluated with cel-python.

A DRA selector is a CEL expression over one ``device``: ``device.driver``,
``device.attributes[<domain>].<name>`` and ``device.capacity[<domain>].<name>``
(``gpu.nvidia.com`` is the domain of NVIDIA's driver). Kubernetes adds a few
functions to the standard library; the ones here are ``quantity("40Gi")``
(an integer in base units), ``semver("1.2.3")`` and the methods
``compareTo``, ``isGreaterThan`` and ``isLessThan`` on quantities and
versions. A device whose evaluation fails (a missing attribute, a type
mismatch) does not match, and the error is kept for the explanation.

Compiled programs are cached by expression text; the parser is only run once
per distinct selector.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes

AttrValue = bool | int | str

_SEMVER = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+].*)?$")
_BIN = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DEC = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


class CelError(ValueError):
    """A selector that does not compile (the message names the expression)."""


class Semver(celtypes.StringType):
    """A version attribute (``VersionValue``) or ``semver(...)`` result."""


@dataclass(frozen=True, slots=True)
class Version:
    """A version attribute as published (semantic version text)."""

    text: str


def parse_quantity(value: Any) -> int | None:
    """A Kubernetes quantity ("80Gi", "1500M", "4") as an integer, rounded up; None if bad."""
    s = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not s:
        return None
    mult: float = 1
    for suffix, m in (*_BIN.items(), *_DEC.items()):
        if s.endswith(suffix):
            s, mult = s[: -len(suffix)], m
            break
    try:
        x = float(s) * mult
    except ValueError:
        return None
    if not math.isfinite(x) or x < 0 or x > 2.0**62:
        return None
    return math.ceil(x - 1e-9)


def semver_key(text: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` of a version text, None when it is not one."""
    m = _SEMVER.match(text.strip())
    if m is None:
        return None
    return (int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0))


def _cmp(a: Any, b: Any) -> int:
    if isinstance(a, celtypes.StringType) and isinstance(b, celtypes.StringType):
        ka, kb = semver_key(str(a)), semver_key(str(b))
        if ka is None or kb is None:
            raise TypeError(f"not a version: {a!r} or {b!r}")
        return (ka > kb) - (ka < kb)
    if isinstance(a, celtypes.IntType | celtypes.UintType) and isinstance(
        b, celtypes.IntType | celtypes.UintType
    ):
        return (int(a) > int(b)) - (int(a) < int(b))
    raise TypeError(f"cannot compare {type(a).__name__} with {type(b).__name__}")


def _quantity(text: Any) -> celtypes.IntType:
    q = parse_quantity(str(text))
    if q is None:
        raise ValueError(f"not a quantity: {text!r}")
    return celtypes.IntType(q)


def _semver(text: Any) -> Semver:
    if semver_key(str(text)) is None:
        raise ValueError(f"not a version: {text!r}")
    return Semver(str(text))


_FUNCTIONS: dict[str, Any] = {
    "quantity": _quantity,
    "semver": _semver,
    "compareTo": lambda a, b: celtypes.IntType(_cmp(a, b)),
    "isGreaterThan": lambda a, b: celtypes.BoolType(_cmp(a, b) > 0),
    "isLessThan": lambda a, b: celtypes.BoolType(_cmp(a, b) < 0),
}


@lru_cache(maxsize=1)
def _env() -> celpy.Environment:
    """The CEL environment, built on first use: building its parser takes about a second,
    which every process that imports the engine would otherwise pay at start, with or
    without a DRA selector to compile."""
    return celpy.Environment()


@lru_cache(maxsize=4096)
def compile_selector(expression: str) -> Any:
    """The runnable program for ``expression``; raises :class:`CelError` when it does not compile."""
    if not expression.strip():
        raise CelError("empty CEL expression")
    try:
        env = _env()
        ast = env.compile(expression)
        return env.program(ast, functions=_FUNCTIONS)
    except Exception as exc:  # the parser raises several types; all mean "does not compile"
        column = getattr(exc, "column", None)
        where = (
            f"syntax error at column {column}" if isinstance(column, int) else type(exc).__name__
        )
        raise CelError(f"CEL expression {expression!r} does not compile: {where}") from None


def compile_error(expression: str) -> str:
    """Why ``expression`` does not compile ("" when it does)."""
    try:
        compile_selector(expression)
    except CelError as exc:
        return str(exc)
    return ""


def _cel_value(v: AttrValue | Version) -> Any:
    if isinstance(v, Version):
        return Semver(v.text)
    if isinstance(v, bool):
        return celtypes.BoolType(v)
    if isinstance(v, int):
        return celtypes.IntType(v)
    return celtypes.StringType(v)


def activation(
    driver: str,
    attributes: Mapping[str, AttrValue | Version],
    capacity: Mapping[str, int],
) -> dict[str, Any]:
    """The ``device`` variable for qualified attribute and capacity names (``domain/name``)."""
    attrs: dict[str, dict[str, Any]] = {}
    for key, v in attributes.items():
        domain, _, name = key.rpartition("/")
        attrs.setdefault(domain, {})[name] = _cel_value(v)
    caps: dict[str, dict[str, Any]] = {}
    for key, q in capacity.items():
        domain, _, name = key.rpartition("/")
        caps.setdefault(domain, {})[name] = celtypes.IntType(q)
    device = celtypes.MapType(
        {
            celtypes.StringType("driver"): celtypes.StringType(driver),
            celtypes.StringType("attributes"): _nested(attrs),
            celtypes.StringType("capacity"): _nested(caps),
            celtypes.StringType("allowMultipleAllocations"): celtypes.BoolType(False),
        }
    )
    return {"device": device}


def _nested(d: Mapping[str, Mapping[str, Any]]) -> celtypes.MapType:
    return celtypes.MapType(
        {
            celtypes.StringType(dom): celtypes.MapType(
                {celtypes.StringType(k): v for k, v in vals.items()}
            )
            for dom, vals in d.items()
        }
    )


def evaluate(expression: str, device: Mapping[str, Any]) -> tuple[bool, str]:
    """``(matches, error)`` of a compiled-good ``expression`` for one device's activation."""
    program = compile_selector(expression)
    try:
        result = program.evaluate(device)
    except Exception as exc:  # runtime errors: the device does not match
        return False, f"{expression!r}: {str(exc)[:200]}"
    if isinstance(result, celtypes.BoolType):
        return bool(result), ""
    if isinstance(result, Exception):
        return False, f"{expression!r}: {str(result)[:200]}"
    return False, f"{expression!r}: result is {type(result).__name__}, not bool"
