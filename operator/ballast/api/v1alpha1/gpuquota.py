"""GPUQuota: what a tenant (a set of namespaces) may use, with cohort borrowing."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from ballast.api.v1alpha1.common import ApiModel, StatusBase

_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class TierLimits(ApiModel):
    """GPU limits per tier; an absent tier is bounded only by the overall limit."""

    interactive: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        alias="Interactive",
        description="GPUs for Interactive classes.",
    )
    nearline: int | None = Field(
        default=None, ge=0, le=1_000_000, alias="Nearline", description="GPUs for Nearline classes."
    )
    offline: int | None = Field(
        default=None, ge=0, le=1_000_000, alias="Offline", description="GPUs for Offline classes."
    )


class GPUQuotaSpec(ApiModel):
    """The desired state of a GPUQuota."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.lendingLimit) || self.lendingLimit <= self.gpus",
                    "message": "lendingLimit cannot exceed gpus: a tenant lends only what it has",
                    "fieldPath": ".lendingLimit",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "has(self.cohort) || !has(self.borrowingLimit) || self.borrowingLimit == 0",
                    "message": "borrowingLimit needs a cohort to borrow from",
                    "fieldPath": ".borrowingLimit",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "!has(self.tierLimits) || ["
                    "has(self.tierLimits.Interactive) ? self.tierLimits.Interactive : 0, "
                    "has(self.tierLimits.Nearline) ? self.tierLimits.Nearline : 0, "
                    "has(self.tierLimits.Offline) ? self.tierLimits.Offline : 0"
                    "].all(v, v <= self.gpus)",
                    "message": "a tier limit cannot exceed the overall gpus limit",
                    "fieldPath": ".tierLimits",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "!has(self.classLimits) "
                    "|| self.classLimits.all(k, self.classLimits[k] <= self.gpus)",
                    "message": "a class limit cannot exceed the overall gpus limit",
                    "fieldPath": ".classLimits",
                    "reason": "FieldValueInvalid",
                },
            ]
        }
    )

    namespaces: list[str] = Field(
        min_length=1,
        max_length=256,
        description="The namespaces whose pods count against this quota (the tenant).",
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "items": {"type": "string", "pattern": _NAME, "maxLength": 63},
        },
    )
    gpus: int = Field(
        ge=0, le=1_000_000, description="GPUs the tenant may use at once (its nominal quota)."
    )
    tier_limits: TierLimits | None = Field(default=None, description="Tighter limits per tier.")
    class_limits: dict[str, Annotated[int, Field(ge=0, le=1_000_000)]] | None = Field(
        default=None,
        max_length=256,
        description="Tighter limits per WorkloadClass name; none may exceed gpus.",
    )
    cohort: str | None = Field(
        default=None,
        pattern=_NAME,
        max_length=63,
        description="Quotas in the same cohort lend each other idle GPUs.",
    )
    borrowing_limit: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="Most GPUs this tenant may borrow from its cohort beyond gpus (unset: no limit).",
    )
    lending_limit: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="Most of this tenant's idle GPUs the cohort may borrow (unset: all of them).",
    )


class GPUQuotaStatus(StatusBase):
    """The observed state of a GPUQuota."""

    used_gpus: int | None = Field(
        default=None, alias="usedGPUs", description="GPUs held by running pods."
    )
    borrowed_gpus: int | None = Field(
        default=None, alias="borrowedGPUs", description="GPUs borrowed from the cohort."
    )
    lent_gpus: int | None = Field(
        default=None, alias="lentGPUs", description="Idle GPUs lent to the cohort."
    )
    waiting_gpus: int | None = Field(
        default=None,
        alias="waitingGPUs",
        description="GPUs requested by pods held back by this quota.",
    )


class GPUQuota(ApiModel):
    """GPU limits for a tenant, with borrowing and lending inside a cohort."""

    spec: GPUQuotaSpec = Field(description="Desired state.")
    status: GPUQuotaStatus | None = Field(default=None, description="Observed state.")
