"""The generated burn-rate rules pass ``promtool check rules`` and fire when they should.

Rules are generated from WorkloadClass specs (ballast.telemetry.slo_rules), then
``promtool test rules`` feeds them series: a budget that burns fast pages, one
that burns slowly opens a ticket and does not page, a healthy class raises
nothing, and an objective that is not a bucket bound is reported. Needs only
promtool (``make bins``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ballast.api.v1alpha1.serving import Slo
from ballast.cli import main
from ballast.localcluster import ClusterError, tools
from ballast.telemetry.slo_rules import ALERT_NAMES, BUCKET_ALERT, dump, rules_file

FAST, SLOW = ALERT_NAMES["page"], ALERT_NAMES["ticket"]
MINUTES = 240  # series length; evaluation at 30m and 3h


@pytest.fixture(scope="module")
def promtool() -> Path:
    try:
        return tools.binary(tools.PROMETHEUS, "promtool")
    except ClusterError as exc:
        pytest.fail(f"promtool is not built: run `make bins`.\n{exc}", pytrace=False)


CLASSES: dict[str, dict[str, Any]] = {
    # joined with the scheduler's pod_info (the default selection)
    "fast": {"latencyP99Ms": 1000},
    "slow": {"latencyP99Ms": 1000},
    "healthy": {"latencyP99Ms": 1000, "latencyP95Ms": 500, "successRatio": 0.99},
    # selected by labels instead; its objective is not a bucket bound
    "nobucket": {"latencyP99Ms": 1200, "matchLabels": {"service": "nobucket"}},
    "avail": {"successRatio": 0.999, "queueWaitP95Seconds": 30},
}
LAT = "vllm:e2e_request_latency_seconds"


def _serving(
    cls: str, *, per_min: int, slow_per_min: int, fails_per_min: int = 0
) -> list[dict[str, str]]:
    """One serving pod of ``cls``: the scheduler's pod_info and its latency histogram."""
    pod = f'namespace="team", pod="{cls}-0"'
    fast = per_min - slow_per_min
    series = [
        {"series": f'ballast_scheduler_pod_info{{{pod}, class="{cls}", tier="Interactive", node="n1"}}',
         "values": f"1+0x{MINUTES}"},
        {"series": f'{LAT}_bucket{{{pod}, le="0.5"}}', "values": f"0+{fast - slow_per_min}x{MINUTES}"},
        {"series": f'{LAT}_bucket{{{pod}, le="1.0"}}', "values": f"0+{fast}x{MINUTES}"},
        {"series": f'{LAT}_bucket{{{pod}, le="+Inf"}}', "values": f"0+{per_min}x{MINUTES}"},
        {"series": f"{LAT}_count{{{pod}}}", "values": f"0+{per_min}x{MINUTES}"},
        {"series": f'vllm:request_success_total{{{pod}, finished_reason="stop"}}',
         "values": f"0+{per_min - fails_per_min}x{MINUTES}"},
    ]  # fmt: skip
    if cls == "nobucket":  # labelled, not joined
        for s in series[1:]:
            s["series"] = s["series"].replace(pod, 'service="nobucket"')
    return series


def _alerts(rules: dict[str, Any], name: str, cls: str, slo: str) -> list[dict[str, Any]]:
    """The alert ``name`` of ``cls``/``slo`` as it should fire (labels, annotations)."""
    for group in rules["groups"]:
        for r in group["rules"]:
            if r.get("alert") == name and r["labels"]["class"] == cls and r["labels"]["slo"] == slo:
                return [{"exp_labels": r["labels"], "exp_annotations": r["annotations"]}]
    raise AssertionError(f"no {name} for {cls}/{slo}")


def _case(rules: dict[str, Any]) -> dict[str, Any]:
    series = [
        # 20% of requests over 1 s against a 1% budget: 20x, pages.
        *_serving("fast", per_min=100, slow_per_min=20),
        # 4% over 1 s: 4x, above the ticket's 3x, below the page's 6x.
        *_serving("slow", per_min=100, slow_per_min=4),
        # 0.5% over 1 s, 1% over 0.5 s (budget 5%), 0.5% failures (budget 1%): nothing.
        *_serving("healthy", per_min=200, slow_per_min=1, fails_per_min=1),
        *_serving("nobucket", per_min=100, slow_per_min=0),
        # half the requests fail against a 0.1% budget; every pod waited under 30 s.
        *_serving("avail", per_min=100, slow_per_min=0, fails_per_min=50),
        {"series": 'ballast_scheduler_pod_scheduling_seconds_bucket{class="avail", le="30.0"}',
         "values": f"0+3x{MINUTES}"},
        {"series": 'ballast_scheduler_pod_scheduling_seconds_bucket{class="avail", le="+Inf"}',
         "values": f"0+3x{MINUTES}"},
        {"series": 'ballast_scheduler_pod_scheduling_seconds_count{class="avail"}',
         "values": f"0+3x{MINUTES}"},
    ]  # fmt: skip
    tests: list[dict[str, Any]] = []
    for at in ("30m", "3h"):
        tests += [
            {"eval_time": at, "alertname": FAST,
             "exp_alerts": [*_alerts(rules, FAST, "fast", "latency-p99"),
                            *_alerts(rules, FAST, "avail", "availability")]},
            {"eval_time": at, "alertname": SLOW,
             "exp_alerts": [*_alerts(rules, SLOW, "fast", "latency-p99"),
                            *_alerts(rules, SLOW, "slow", "latency-p99"),
                            *_alerts(rules, SLOW, "avail", "availability")]},
            {"eval_time": at, "alertname": BUCKET_ALERT,
             "exp_alerts": _alerts(rules, BUCKET_ALERT, "nobucket", "latency-p99")},
        ]  # fmt: skip
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": tests,
        "promql_expr_test": [
            {"expr": 'round(ballast:slo_errors:ratio_rate1h{class="slow"}, 0.0001)', "eval_time": "3h",
             "exp_samples": [{"labels": '{class="slow", slo="latency-p99"}', "value": 0.04}]},
        ],
    }  # fmt: skip


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    rules = rules_file((n, Slo.model_validate(s)) for n, s in CLASSES.items())
    path = tmp_path_factory.mktemp("slo-rules") / "slo.rules.yaml"
    path.write_text(dump(rules))
    return path, rules


def test_generated_rules_pass_promtool_check(promtool: Path, generated: tuple[Path, Any]) -> None:
    out = _run(str(promtool), "check", "rules", "--lint=all", "--lint-fatal", str(generated[0]))
    assert out.returncode == 0, out.stdout + out.stderr


def test_burn_rates_page_ticket_or_stay_quiet(promtool: Path, generated: tuple[Path, Any]) -> None:
    path, rules = generated
    cases = path.parent / "slo.rules.test.yaml"
    cases.write_text(
        yaml.safe_dump(
            {"rule_files": [path.name], "evaluation_interval": "1m", "tests": [_case(rules)]},
            sort_keys=False,
        )
    )
    out = _run(str(promtool), "test", "rules", str(cases))
    assert out.returncode == 0, out.stdout + out.stderr


def test_only_classes_with_objectives_get_rules() -> None:
    rules = rules_file([("a", Slo.model_validate({"latencyHistogram": "x_seconds"})),
                        ("b", Slo.model_validate({"latencyP99Ms": 250}))])  # fmt: skip
    assert [g["name"] for g in rules["groups"]] == ["ballast-slo-b"]


def test_the_examples_rules_from_the_cli_pass_promtool_check(
    promtool: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = Path(__file__).resolve().parents[3] / "examples" / "workloadclasses.yaml"
    path = tmp_path / "examples.rules.yaml"
    assert main(["slo-rules", str(examples), "-o", str(path)]) == 0
    names = {g["name"] for g in yaml.safe_load(path.read_text())["groups"]}
    with_slo = {
        d["metadata"]["name"]
        for d in yaml.safe_load_all(examples.read_text())
        if d and d["kind"] == "WorkloadClass" and "slo" in d["spec"]
    }
    assert names == {f"ballast-slo-{n}" for n in with_slo} and names
    out = _run(str(promtool), "check", "rules", "--lint=all", "--lint-fatal", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: WorkloadClass\nmetadata: {name: x}\nspec: {tier: Bogus}\n")
    assert main(["slo-rules", str(bad)]) == 2
    assert "WorkloadClass x: spec.tier" in capsys.readouterr().err
