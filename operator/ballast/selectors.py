"""Kubernetes label selectors: one parser and one matcher for every place that needs them.

Used for a WorkloadClass's ``namespaceSelector``, PodDisruptionBudget
selectors and anything else with ``matchLabels``/``matchExpressions``.
Parsing never raises: a malformed selector comes back as ``None`` with the
problems found, and the caller decides what a broken selector means (for a
PDB: protect nothing we cannot read as protecting — see the caller).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions`` entry (``matchLabels`` entries become ``In`` with one value)."""

    key: str
    operator: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement (Kubernetes semantics)."""
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        return not present  # DoesNotExist


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed label selector; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether ``labels`` satisfy every requirement."""
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True for ``{}``, which selects everything."""
        return not self.requirements


EVERYTHING = Selector()


def from_labels(labels: Mapping[str, str]) -> Selector:
    """The selector ``matchLabels: labels``."""
    return Selector(tuple(Requirement(k, "In", frozenset((v,))) for k, v in labels.items()))


def parse(raw: Any) -> tuple[Selector | None, list[str]]:
    """A raw ``LabelSelector`` → (selector, problems); selector is None when unusable."""
    if raw is None:
        return EVERYTHING, []
    if not isinstance(raw, Mapping):
        return None, ["selector is not an object"]
    problems: list[str] = []
    reqs: list[Requirement] = []
    match_labels = raw.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        problems.append("matchLabels is not a map")
    else:
        for k, v in match_labels.items():
            if not isinstance(k, str) or not isinstance(v, str):
                problems.append(f"matchLabels entry {k!r} is not a string pair")
                continue
            reqs.append(Requirement(k, "In", frozenset((v,))))
    exprs = raw.get("matchExpressions") or []
    if not isinstance(exprs, list):
        problems.append("matchExpressions is not a list")
        exprs = []
    for i, e in enumerate(exprs):
        where = f"matchExpressions[{i}]"
        if not isinstance(e, Mapping):
            problems.append(f"{where} is not an object")
            continue
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if not isinstance(key, str) or not key:
            problems.append(f"{where}.key is missing")
            continue
        if op not in OPERATORS:
            problems.append(f"{where}.operator {op!r} is not one of {', '.join(OPERATORS)}")
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.append(f"{where}.values is not a list of strings")
            continue
        if op in ("In", "NotIn") and not values:
            problems.append(f"{where}: {op} needs at least one value")
            continue
        if op in ("Exists", "DoesNotExist") and values:
            problems.append(f"{where}: {op} takes no values")
            continue
        reqs.append(Requirement(key, str(op), frozenset(values)))
    if problems:
        return None, problems
    return Selector(tuple(reqs)), []
