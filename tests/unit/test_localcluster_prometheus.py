"""Prometheus' generated configuration and file_sd targets in a local cluster's state folder."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from ballast.localcluster import prometheus as prom
from ballast.localcluster.state import ClusterState, ComponentState
from ballast.telemetry.assets import RULES_FILE


def test_config_scrapes_itself_and_every_job_from_files(tmp_path: Path) -> None:
    doc = yaml.safe_load(prom.write_config(tmp_path, 9999).read_text())
    assert doc["global"]["scrape_interval"] == "2s"
    assert doc["rule_files"] == [str(RULES_FILE)] and RULES_FILE.is_file()
    jobs = {c["job_name"]: c for c in doc["scrape_configs"]}
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:9999"]}]
    for job in prom.JOBS:
        files = jobs[job]["file_sd_configs"][0]["files"]
        assert files == [str(prom.targets_dir(tmp_path, job) / "*.json")]
        assert prom.targets_dir(tmp_path, job).is_dir()
    assert jobs["ballast-agent"]["honor_labels"] is True  # the agent's Hostname/pod labels win
    argv = prom.args(Path("/bin/prometheus"), tmp_path, 9999)
    assert "--web.listen-address=127.0.0.1:9999" in argv
    assert f"--config.file={prom.config_path(tmp_path)}" in argv


def test_targets_are_added_replaced_and_removed(tmp_path: Path) -> None:
    path = prom.add_target(
        tmp_path, "ballast-agent", "127.0.0.1:9400", name="node/a", labels={"x": "1"}
    )
    assert path.parent == prom.targets_dir(tmp_path, "ballast-agent") and "/" not in path.name
    assert orjson.loads(path.read_bytes()) == [
        {"targets": ["127.0.0.1:9400"], "labels": {"x": "1"}}
    ]
    prom.add_target(tmp_path, "ballast-agent", "127.0.0.1:9401", name="node/a")  # restarted
    prom.add_target(tmp_path, "ballast-scheduler", "127.0.0.1:8080")
    assert prom.targets(tmp_path) == {
        "ballast-agent": ["127.0.0.1:9401"],
        "ballast-scheduler": ["127.0.0.1:8080"],
    }
    assert not list(path.parent.glob(".*.tmp"))  # written atomically, no leftovers
    prom.remove_target(tmp_path, "ballast-agent", "node/a")
    assert prom.targets(tmp_path) == {"ballast-scheduler": ["127.0.0.1:8080"]}
    with pytest.raises(ValueError, match="unknown job"):
        prom.add_target(tmp_path, "kubelet", "127.0.0.1:1")


def test_state_records_the_prometheus_url() -> None:
    state = ClusterState("c", "/bin", "/kc", "/etcd", {"kube-apiserver": 1, "prometheus": 4242})
    assert state.prometheus_url is None  # a port alone is not a running Prometheus
    state.components["prometheus"] = ComponentState(1, 1, 4242, ["prometheus"])
    assert state.prometheus_url == "http://127.0.0.1:4242"
    assert ClusterState.from_json(state.to_json()).prometheus_url == "http://127.0.0.1:4242"
