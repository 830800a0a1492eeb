"""BatchWindow: a recurring time window during which background work may run."""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import ConfigDict, Field

from ballast.api.v1alpha1.common import ApiModel, StatusBase

# Five cron fields: minute hour day-of-month month day-of-week, each a list of
# values, ranges, steps or names; semantic checks (61 minutes) are done by the
# operator with croniter and reported as a Ready=False condition.
CRON_PATTERN = r"^\s*([0-9A-Za-z*?,/\-]+\s+){4}[0-9A-Za-z*?,/\-]+\s*$"
DURATION_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
# Guarded by the pattern so that a malformed value gets one error, not two.
_POSITIVE_DURATION = f"!self.matches('{DURATION_PATTERN}') || duration(self) > duration('0s')"
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


@cache
def iana_time_zones() -> tuple[str, ...]:
    """Every IANA zone name in the pinned tzdata package, sorted (deterministic)."""
    text = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return tuple(sorted(z.strip() for z in text.splitlines() if z.strip()))


def _tz_rule() -> dict[str, str]:
    names = ",".join(f"'{z}'" for z in iana_time_zones())
    return {
        "rule": f"self.timeZone in [{names}]",
        "message": "timeZone must be an IANA time zone name such as Europe/Berlin or "
        "America/New_York (see the tz database)",
        "fieldPath": ".timeZone",
        "reason": "FieldValueInvalid",
    }


def parse_duration(text: str) -> dt.timedelta:
    """Parse a Go-style duration limited to hours, minutes and seconds (``1h30m``)."""
    m = _DURATION_RE.match(text)
    if not text or m is None:
        raise ValueError(f"{text!r} is not a duration like 6h, 90m or 1h30m")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return dt.timedelta(hours=h, minutes=mi, seconds=s)


class ExtraOpening(ApiModel):
    """A one-off opening in addition to the recurring schedule (a holiday, a release)."""

    start: dt.datetime = Field(description="When it opens (RFC 3339 with offset).")
    duration: str = Field(
        pattern=DURATION_PATTERN,
        min_length=2,
        max_length=32,
        description="How long it stays open, e.g. 12h.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": _POSITIVE_DURATION, "message": "duration must be positive"}
            ]
        },
    )


class BatchWindowSpec(ApiModel):
    """The desired state of a BatchWindow."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [dict(_tz_rule())]})

    schedule: str = Field(
        pattern=CRON_PATTERN,
        max_length=256,
        description=(
            "When the window opens, as a five-field cron expression (minute hour day-of-month "
            "month day-of-week) in timeZone, e.g. '0 22 * * 1-5' for 22:00 on weekdays."
        ),
    )
    duration: str = Field(
        pattern=DURATION_PATTERN,
        min_length=2,
        max_length=32,
        description=(
            "How long the window stays open after each start, e.g. 8h or 1h30m; positive and "
            "shorter than the time between two starts."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": _POSITIVE_DURATION,
                    "message": "duration must be positive, e.g. 8h",
                }
            ]
        },
    )
    time_zone: str = Field(
        default="UTC",
        max_length=64,
        description=(
            "IANA time zone the schedule is read in; daylight-saving changes are honoured "
            "(a 22:00 start stays at 22:00 local time)."
        ),
    )
    extra_openings: list[ExtraOpening] | None = Field(
        default=None, max_length=64, description="One-off openings besides the schedule."
    )
    on_close: Literal["Finish", "Checkpoint", "Evict"] = Field(
        default="Finish",
        description=(
            "What happens to running work at close: Finish lets it run to completion; "
            "Checkpoint requests a checkpoint and evicts after gracePeriodSeconds; Evict evicts."
        ),
    )
    grace_period_seconds: int = Field(
        default=300, ge=0, le=86_400, description="Time between checkpoint request and eviction."
    )


class BatchWindowStatus(StatusBase):
    """The observed state of a BatchWindow."""

    open: bool | None = Field(default=None, description="Whether the window is open now.")
    current_window_end: str | None = Field(
        default=None, description="When the current opening ends (RFC 3339), while open."
    )
    next_open: str | None = Field(default=None, description="The next opening (RFC 3339).")
    next_close: str | None = Field(default=None, description="The next closing (RFC 3339).")


class BatchWindow(ApiModel):
    """A recurring, time-zone aware window during which background classes may run."""

    spec: BatchWindowSpec = Field(description="Desired state.")
    status: BatchWindowStatus | None = Field(default=None, description="Observed state.")
