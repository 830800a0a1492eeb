"""The chart's generated files, its values conventions and its version (no helm needed)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from ballast.api import chart

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ballast"


def test_committed_chart_files_match_generator() -> None:
    for rel, text in chart.render_chart(ROOT).items():
        path = ROOT / rel
        assert path.exists(), f"{rel} missing: run `make generate`"
        assert path.read_text() == text, f"{rel} is stale: run `make generate`"


def test_only_kopfs_peering_crd_is_in_the_folder_helm_never_upgrades() -> None:
    assert [p.name for p in (CHART / "crds").glob("*.yaml")] == [
        "clusterkopfpeerings.kopf.dev.yaml"
    ]
    templated = {p.name for p in (CHART / "templates" / "crds").glob("*.yaml")}
    assert templated == {p.name for p in (ROOT / "crds").glob("*.ballast.dev.yaml")}


def test_app_version_is_the_package_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == project["version"]


def test_every_value_is_documented_and_in_the_schema() -> None:
    docs = chart.parse_values((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"].startswith("http://json-schema.org/draft-07/")

    def walk(items: list[chart.ValueDoc], node: dict) -> int:
        count = 0
        assert node.get("additionalProperties") is False
        for d in items:
            assert d.description, d.name
            sub = node["properties"][d.path[-1]]
            assert sub["description"] == d.description
            count += 1 + (walk(d.children, sub) if d.section else 0)
        return count

    assert walk(docs, schema) > 60


def test_an_undocumented_value_is_an_error() -> None:
    text = "# -- a section\nsection:\n  # -- documented\n  a: 1\n  b: 2\n"
    with pytest.raises(chart.ValuesError, match=r"section\.b"):
        chart.parse_values(text)


def test_a_map_documented_as_a_whole_and_lists_are_one_setting() -> None:
    text = (
        "# -- selector\nnodeSelector:\n  gpu: 'true'\n"
        "# -- tolerations\ntolerations:\n  - key: a\n    operator: Exists\n"
        "# -- after the list\nafter: x\n"
    )
    docs = chart.parse_values(text)
    assert [d.name for d in docs] == ["nodeSelector", "tolerations", "after"]
    assert docs[0].default == {"gpu": "true"} and not docs[0].section
    assert docs[1].default == [{"key": "a", "operator": "Exists"}]


def test_crd_templates_are_kept_and_labelled() -> None:
    for name, text in chart.render_crd_templates().items():
        assert text.splitlines()[1] == "{{- if .Values.crds.install }}", name
        assert "helm.sh/resource-policy: keep" in text
        assert '{{- include "ballast.labels" . | nindent 4 }}' in text


def test_monitoring_files_are_the_package_assets() -> None:
    from ballast.telemetry import assets

    assert (CHART / "files" / "ballast.rules.yaml").read_text() == assets.RULES_FILE.read_text()
    rules = yaml.safe_load((CHART / "files" / "ballast.rules.yaml").read_text())
    assert rules["groups"]  # PrometheusRule's spec as it stands
