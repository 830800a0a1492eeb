"""Fixtures for the agent tests: a fake libnvidia-ml compiled from tests/fakenvml/fake_nvml.c.

The library and the fixture writer are :mod:`ballast.localcluster.fakegpu`'s,
the same that ``make demo`` uses for its nodes' agents.

The real pynvml code path runs against it: in-process tests load it through
``Nvml(library_path=...)``; the end-to-end test runs ``ballast agent`` with
``--nvml-library``. The fake reads the fixture file named by
``$FAKE_NVML_FIXTURE`` on every call, so tests change the "hardware" by
rewriting that file (atomically).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ballast.localcluster.fakegpu import FakeGPUError, GPUFixture, build_fake_nvml

__all__ = ["GPUFixture"]


@pytest.fixture(scope="session")
def fake_nvml_lib(tmp_path_factory: pytest.TempPathFactory) -> str:
    try:
        return str(build_fake_nvml(tmp_path_factory.mktemp("fakenvml-cache")))
    except FakeGPUError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_nvml_lib: str
) -> Iterator[GPUFixture]:
    fx = GPUFixture(tmp_path / "fixture.txt")
    fx.set(count=2, driver="550.54.15")
    fx.gpu(
        0,
        name="NVIDIA H100 80GB HBM3",
        uuid="GPU-aaaa",
        mem_total=80 << 30,
        mem_used=8 << 30,
        util=37,
        power_mw=250_500,
        temp=45,
    )
    fx.gpu(
        1,
        name="NVIDIA H100 80GB HBM3",
        uuid="GPU-bbbb",
        mem_total=80 << 30,
        mem_used=0,
        util=0,
        power_mw=70_000,
        temp=30,
    )
    monkeypatch.setenv("FAKE_NVML_FIXTURE", str(fx.path))
    yield fx
