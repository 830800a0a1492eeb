"""The registry: explicit, duplicates refused, arguments validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ballast.placement.framework import FilterPlugin, GPUChooser, ScorePlugin
from ballast.placement.plugins import data_locality, gpu_fit
from ballast.placement.profiles import PROFILES
from ballast.placement.registry import Registry, default_registry


def test_every_plugin_satisfies_its_protocol() -> None:
    reg = default_registry()
    for name in reg.filters:
        plugin = reg.filter(name)
        assert isinstance(plugin, FilterPlugin) and plugin.name == name and plugin.reasons
    for name in reg.scores:
        plugin = reg.score(name)
        assert isinstance(plugin, ScorePlugin) and plugin.name == name
    for prof in PROFILES.values():
        for ref in prof.filters:
            assert ref.name in reg.filters
        for sref in prof.scores:
            assert sref.name in reg.scores
    assert isinstance(reg.score("FragmentationGradient"), GPUChooser)


def test_duplicates_are_an_error() -> None:
    reg = Registry()
    reg.add_filter(gpu_fit.NAME, gpu_fit.factory)
    with pytest.raises(ValueError, match="already registered"):
        reg.add_filter(gpu_fit.NAME, gpu_fit.factory)
    with pytest.raises(ValueError, match="already registered"):
        reg.add_score(gpu_fit.NAME, data_locality.factory)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("bad range", {"zone_factor": 2.0}),
        ("unknown field", {"nope": 1}),
        ("wrong type", {"spread_saturation": "many"}),
    ],
)
def test_plugin_args_are_validated(name: str, args: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        default_registry().score("DataLocality", args)


def test_plugin_args_have_defaults_and_overrides() -> None:
    plugin = default_registry().score("DataLocality", {"zone_factor": 0.5})
    assert plugin.args.zone_factor == 0.5 and plugin.args.spread_floor == 0.6  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        default_registry().filter("NoSuchFilter")
