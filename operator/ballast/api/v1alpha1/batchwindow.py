"""BatchWindow: a recurring time window during which background work may run."""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import ConfigDict, Field, JsonValue, field_validator

from ballast.api.v1alpha1.common import ApiModel, StatusBase

# Five cron fields: minute hour day-of-month month day-of-week, each a list of
# values, ranges, steps or names; semantic checks (61 minutes) are done by the
# operator with croniter and reported as a Ready=False condition.
CRON_PATTERN = r"^\s*([0-9A-Za-z*?,/\-]+\s+){4}[0-9A-Za-z*?,/\-]+\s*$"
# Digit counts are bounded so that no matching text overflows a Go duration
# (CEL's duration()) or a Python timedelta; MAX_WINDOW_DURATION is the real limit.
DURATION_PATTERN = r"^([0-9]{1,4}h)?([0-9]{1,6}m)?([0-9]{1,8}s)?$"
MAX_WINDOW_DURATION = dt.timedelta(hours=8784)  # 366 days
_MAX_DURATION_TEXT = "8784h"
# Guarded by the pattern so that a malformed value gets one error, not two.
_POSITIVE_DURATION = f"!self.matches('{DURATION_PATTERN}') || duration(self) > duration('0s')"
_BOUNDED_DURATION = (
    f"!self.matches('{DURATION_PATTERN}') || duration(self) <= duration('{_MAX_DURATION_TEXT}')"
)
_DURATION_RE = re.compile(r"^(?:(\d{1,4})h)?(?:(\d{1,6})m)?(?:(\d{1,8})s)?$")

# RFC 3339 with an explicit, in-range offset (``+99:99`` is not an offset).
RFC3339_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:"
    r"[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_RFC3339_RE = re.compile(RFC3339_PATTERN)
# Extra openings must start in [EARLIEST, LATEST): a year like 9999 overflows
# datetime arithmetic in every process that reads the window.
EXTRA_OPENING_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
EXTRA_OPENING_LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def _duration_rules(what: str) -> list[JsonValue]:
    return [
        {"rule": _POSITIVE_DURATION, "message": f"{what} must be positive, e.g. 8h"},
        {
            "rule": _BOUNDED_DURATION,
            "message": f"{what} must be at most {_MAX_DURATION_TEXT} (366 days)",
        },
    ]


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


def _start_schema(schema: dict[str, Any]) -> None:
    # A plain string for the API server (its date-time format is lenient about
    # offsets, and CEL would see a timestamp we could not pattern-check).
    schema.pop("format", None)
    schema.update(pattern=RFC3339_PATTERN, maxLength=40)


class ExtraOpening(ApiModel):
    """A one-off opening in addition to the recurring schedule (a holiday, a release)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!self.start.matches('"
                    + RFC3339_PATTERN.replace("\\", "\\\\")
                    + "') || (timestamp(self.start) >= timestamp('1970-01-01T00:00:00Z') "
                    "&& timestamp(self.start) < timestamp('2200-01-01T00:00:00Z'))",
                    "message": "start must be between 1970-01-01 and 2199-12-31",
                    "fieldPath": ".start",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    start: dt.datetime = Field(
        description=(
            "When it opens: RFC 3339 with an offset (e.g. 2026-12-24T00:00:00+01:00), "
            "between 1970 and 2199."
        ),
        json_schema_extra=_start_schema,
    )
    duration: str = Field(
        pattern=DURATION_PATTERN,
        min_length=2,
        max_length=32,
        description="How long it stays open, e.g. 12h (at most 8784h).",
        json_schema_extra={"x-kubernetes-validations": _duration_rules("duration")},
    )

    @field_validator("start", mode="before")
    @classmethod
    def _strict_rfc3339(cls, value: object) -> object:
        if isinstance(value, str) and not _RFC3339_RE.match(value):
            raise ValueError("start must be RFC 3339 with an offset, e.g. 2026-12-24T00:00:00Z")
        return value

    @field_validator("start")
    @classmethod
    def _in_range(cls, value: dt.datetime) -> dt.datetime:
        try:
            utc = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        except (OverflowError, ValueError) as exc:
            raise ValueError("start is out of range") from exc
        if not EXTRA_OPENING_EARLIEST <= utc < EXTRA_OPENING_LATEST:
            raise ValueError("start must be between 1970-01-01 and 2199-12-31")
        return value


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
        json_schema_extra={"x-kubernetes-validations": _duration_rules("duration")},
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
            "What happens at close to Jobs of the classes that name this window (Jobs labelled "
            "ballast.dev/class): Finish lets Jobs with running pods run to completion and "
            "suspends the others; Checkpoint sends the class's signal to the running pods "
            "(ballast.dev/checkpoint-requested-at) and suspends the Job after "
            "gracePeriodSeconds; Evict suspends at once. A suspended Job's pods are deleted by "
            "the Job controller and start again at the next opening."
        ),
    )
    grace_period_seconds: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description=(
            "With onClose Checkpoint: seconds between the checkpoint request and the "
            "suspension of the Job."
        ),
    )


class BatchWindowStatus(StatusBase):
    """The observed state of a BatchWindow."""

    open: bool | None = Field(default=None, description="Whether the window is open now.")
    current_window_end: str | None = Field(
        default=None,
        max_length=64,
        description="When the current opening ends (RFC 3339), while open.",
    )
    next_open: str | None = Field(
        default=None, max_length=64, description="The next opening (RFC 3339)."
    )
    next_close: str | None = Field(
        default=None, max_length=64, description="The next closing (RFC 3339)."
    )
    suspended_jobs: int | None = Field(
        default=None,
        ge=0,
        description="Jobs of this window's classes that Ballast holds suspended now.",
    )
    checkpointing_jobs: int | None = Field(
        default=None,
        ge=0,
        description="Jobs asked to checkpoint at close, waiting out gracePeriodSeconds.",
    )
    finishing_jobs: int | None = Field(
        default=None,
        ge=0,
        description="Jobs still running after close under onClose Finish.",
    )


class BatchWindow(ApiModel):
    """A recurring, time-zone aware window during which background classes may run."""

    spec: BatchWindowSpec = Field(description="Desired state.")
    status: BatchWindowStatus | None = Field(default=None, description="Observed state.")
