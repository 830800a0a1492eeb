"""Ballast's rules pass ``promtool check rules`` and their ``promtool test rules`` cases.

No cluster needed, only promtool (built by ``make bins``). The cases are in
rules/ballast.rules.test.yaml beside this file: input series and the alerts
and recorded samples expected from them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from ballast.localcluster import ClusterError, tools
from ballast.telemetry.assets import RULES_FILE

RULE_TESTS = Path(__file__).resolve().parent / "rules" / "ballast.rules.test.yaml"


@pytest.fixture(scope="module")
def promtool() -> Path:
    try:
        return tools.binary(tools.PROMETHEUS, "promtool")
    except ClusterError as exc:
        pytest.fail(f"promtool is not built: run `make bins`.\n{exc}", pytrace=False)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120)


def test_rules_pass_promtool_check(promtool: Path) -> None:
    out = _run(str(promtool), "check", "rules", "--lint=all", "--lint-fatal", str(RULES_FILE))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_rules_unit_tests(promtool: Path, tmp_path: Path) -> None:
    # The cases name the rules by a path relative to the repository (for a run by hand);
    # here they get the packaged file's absolute path, and a missing one is an error
    # (promtool only warns about a rule file it cannot find).
    doc = yaml.safe_load(RULE_TESTS.read_text())
    assert (RULE_TESTS.parent / doc["rule_files"][0]).resolve() == RULES_FILE
    doc["rule_files"] = [str(RULES_FILE)]
    cases = tmp_path / RULE_TESTS.name
    cases.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = _run(str(promtool), "test", "rules", str(cases))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "WARNING" not in out.stdout + out.stderr, out.stdout + out.stderr


def test_every_alert_has_a_test_case() -> None:
    alerts = {
        r["alert"]
        for g in yaml.safe_load(RULES_FILE.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    tested = {
        a["alertname"]
        for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for a in t.get("alert_rule_test", [])
    }
    assert alerts == tested


def test_a_broken_rule_fails_the_check(promtool: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - record: a:b\n        expr: sum(\n")
    out = _run(str(promtool), "check", "rules", str(broken))
    assert out.returncode != 0
