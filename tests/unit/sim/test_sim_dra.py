"""The simulator's DRA fill-up: the same engine and device table, no cluster."""

from __future__ import annotations

from ballast.sim import dra


def test_the_fill_never_overcommits_and_is_deterministic() -> None:
    kinds = dra.workload(40, seed=3)
    for policy in ("ballast", "kube-default"):
        a = dra.fill(policy, 4, kinds)
        assert a == dra.fill(policy, 4, kinds)
        assert 0 < a["placed"] <= a["pods"] == 40
        assert a["allocated_milli"] <= 4 * 8 * 1000
        assert a["unallocated_gpus"] + a["mig_only_gpus"] <= 32


def test_the_cli_prints_a_ratio_last(capsys: object) -> None:
    import json

    assert dra.main(["--nodes", "2", "--pods", "20", "--policies", "ballast,kube-default"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]  # type: ignore[attr-defined]
    doc = json.loads(last)
    assert doc["sim"] == "dra_fill" and doc["ratio"] > 0
