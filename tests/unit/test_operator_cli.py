"""``ballast operator``: standalone by default, peering chosen by a flag."""

from __future__ import annotations

import argparse

import pytest

from ballast.api.generate import render_all
from ballast.controller import cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(list(argv))


def test_standalone_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BALLAST_PEERING", raising=False)
    assert parse().peering is None
    assert parse("--standalone").peering is None


def test_peering_by_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse("--peering", "ballast").peering == "ballast"
    monkeypatch.setenv("BALLAST_PEERING", "from-env")
    assert parse().peering == "from-env"
    assert parse("--standalone").peering is None  # the flag wins over the environment


def test_peering_and_standalone_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        parse("--peering", "x", "--standalone")


def test_default_priority_grows_with_start_time_and_is_json_safe() -> None:
    earlier = cli.default_priority(now_ns=1_800_000_000_000_000_000, tiebreak=999)
    later = cli.default_priority(now_ns=1_800_000_000_001_000_000, tiebreak=0)
    assert later > earlier
    assert cli.default_priority() < 2**53


def test_peering_crd_is_generated_with_the_others() -> None:
    rendered = render_all()
    text = rendered["clusterkopfpeerings.kopf.dev.yaml"]
    assert "kind: ClusterKopfPeering" in text
    assert "app.kubernetes.io/part-of: ballast" in text  # installed and awaited with the rest
