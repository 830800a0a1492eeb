"""Types shared by every Ballast kind: the model base, conditions, selectors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
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
        default=None, description="When the status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation this condition was computed from."
    )


class LabelSelectorRequirement(ApiModel):
    """One requirement of a label selector, as in metav1.LabelSelectorRequirement."""

    key: str = Field(description="The label key the requirement applies to.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values."
    )
    values: list[str] | None = Field(
        default=None, description="Values for In and NotIn; empty for Exists and DoesNotExist."
    )


class LabelSelector(ApiModel):
    """A label query over Kubernetes objects, as in metav1.LabelSelector."""

    match_labels: dict[str, str] | None = Field(
        default=None, description="Labels that must all be present with these values."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, description="Requirements that must all hold."
    )


class StatusBase(ApiModel):
    """Status fields every Ballast kind carries."""

    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the operator last reconciled."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Current state: Ready and the sub-conditions that explain it.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
