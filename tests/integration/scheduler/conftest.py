"""Per-test node sets for scheduler tests (labelled, so tests never share nodes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sutil import delete_nodes, new_test_id

from ballast.kube.raw import Kube


@pytest.fixture
def tid(kube: Kube) -> Iterator[str]:
    """A test id; nodes labelled with it are deleted after the test."""
    t = new_test_id()
    yield t
    delete_nodes(kube, t)
