"""Types shared by every Ballast kind: the model base, conditions, selectors."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base for API types: camelCase on the wire, unknown fields rejected.

    ``extra="forbid"`` mirrors the API server's pruning for what reaches the
    operator, so a typo in a test fixture fails loudly instead of vanishing.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=False,
    )

    def wire(self) -> dict[str, Any]:
        """Dump as the API server stores it (camelCase, unset fields omitted)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def format_validation_error(exc: ValidationError, root: str = "spec") -> str:
    """One line per problem, with the field path in camelCase as the user wrote it."""
    parts = []
    for err in exc.errors():
        path = ".".join(str(p) for p in (root, *err["loc"]) if p != "")
        parts.append(f"{path}: {err['msg']}")
    return "; ".join(parts)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One aspect of an object's state, in the metav1.Condition shape."""

    type: str = Field(description="Condition type, e.g. Ready.", max_length=316)
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="One CamelCase word saying why the condition is in this state.",
        max_length=1024,
    )
    message: str = Field(
        default="", description="What a person should know or do.", max_length=32768
    )
    last_transition_time: str | None = Field(
        default=None, max_length=64, description="When the status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation this condition was computed from."
    )


# Kubernetes label syntax (apimachinery's validation.IsQualifiedName and
# IsValidLabelValue): an optional DNS-subdomain prefix and "/", then a name of
# at most 63 characters; a value of at most 63 characters.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_KEY_MAX = 317  # 253 (prefix) + "/" + 63 (name)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
LABEL_VALUE_MAX = 63
_LABEL_KEY_RE = re.compile(LABEL_KEY_PATTERN)
SELECTOR_MAX_REQUIREMENTS = 16
SELECTOR_MAX_VALUES = 64


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key, or None."""
    prefix, _, _ = key.rpartition("/")
    if len(key) > LABEL_KEY_MAX or len(prefix) > 253 or not _LABEL_KEY_RE.match(key):
        return (
            f"{key!r} is not a label key: [prefix/]name, the name at most 63 characters of "
            "[A-Za-z0-9-_.] starting and ending with an alphanumeric, the prefix a DNS subdomain"
        )
    return None


LabelValue = Annotated[str, Field(max_length=LABEL_VALUE_MAX, pattern=LABEL_VALUE_PATTERN)]


class LabelSelectorRequirement(ApiModel):
    """One requirement of a label selector, as in metav1.LabelSelectorRequirement."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(self.operator in ['In', 'NotIn']) "
                    "|| (has(self.values) && size(self.values) > 0)",
                    "message": "In and NotIn need at least one value (otherwise the selector "
                    "can never match)",
                    "fieldPath": ".values",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "!(self.operator in ['Exists', 'DoesNotExist']) "
                    "|| !has(self.values) || size(self.values) == 0",
                    "message": "Exists and DoesNotExist take no values",
                    "fieldPath": ".values",
                    "reason": "FieldValueForbidden",
                },
                {
                    "rule": "!self.key.contains('/') || self.key.indexOf('/') <= 253",
                    "message": "the prefix of a label key is a DNS subdomain of at most 253 "
                    "characters",
                    "fieldPath": ".key",
                    "reason": "FieldValueInvalid",
                },
            ]
        }
    )

    key: str = Field(
        max_length=LABEL_KEY_MAX,
        pattern=LABEL_KEY_PATTERN,
        description="The label key the requirement applies to ([prefix/]name).",
    )
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values."
    )
    values: list[LabelValue] | None = Field(
        default=None,
        max_length=SELECTOR_MAX_VALUES,
        description="Values for In and NotIn (at least one); empty for Exists and DoesNotExist.",
    )

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"{self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"{self.operator} takes no values")
        problem = label_key_problem(self.key)
        if problem:
            raise ValueError(problem)
        return self


class LabelSelector(ApiModel):
    """A label query over Kubernetes objects, as in metav1.LabelSelector."""

    match_labels: dict[str, LabelValue] | None = Field(
        default=None,
        max_length=SELECTOR_MAX_REQUIREMENTS,
        description=(
            "Labels that must all be present with these values (keys are label keys; checked "
            "by the operator: a CEL rule over map keys has no length bound to cost)."
        ),
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None,
        max_length=SELECTOR_MAX_REQUIREMENTS,
        description="Requirements that must all hold.",
    )

    @model_validator(mode="after")
    def _keys_are_label_keys(self) -> LabelSelector:
        for key in self.match_labels or {}:
            problem = label_key_problem(key)
            if problem:
                raise ValueError(f"matchLabels: {problem}")
        return self


class StatusBase(ApiModel):
    """Status fields every Ballast kind carries."""

    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the operator last reconciled."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=32,
        description="Current state: Ready and the sub-conditions that explain it.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
