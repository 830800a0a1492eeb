"""The start-up check of the API server's version and APIs."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ballast.kube import compat


def server(version: str, missing: tuple[str, ...] = ()) -> Any:
    def get(path: str) -> dict[str, Any] | None:
        if path == "/version":
            return {"gitVersion": version, "major": "1", "minor": version.split(".")[1]}
        return None if any(path.endswith(m) for m in missing) else {"resources": []}

    return get


def test_a_supported_server_passes() -> None:
    compat.require(server("v1.37.2"), compat.SCHEDULER_APIS, "the scheduler")


def test_a_missing_api_is_named_with_what_needs_it() -> None:
    with pytest.raises(compat.IncompatibleServer) as err:
        compat.require(
            server("v1.30.0", ("policy/v1", "ballast.dev/v1alpha1")),
            compat.SCHEDULER_APIS,
            "the scheduler",
        )
    text = str(err.value)
    assert "policy/v1" in text and "Eviction API" in text and "ballast.dev/v1alpha1" in text
    assert "v1.35 to v1.37" in text


def test_an_old_server_with_every_api_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        compat.require(server("v1.31.4"), compat.OPERATOR_APIS, "the operator")
    assert "older than supported" in caplog.text


@pytest.mark.parametrize(
    ("doc", "want"),
    [({"gitVersion": "v1.37.2"}, (1, 37)), ({"major": "1", "minor": "35+"}, (1, 35)), ({}, None)],
)
def test_server_minor(doc: dict[str, str], want: tuple[int, int] | None) -> None:
    assert compat.server_minor(doc) == want
