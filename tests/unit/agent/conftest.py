"""Fixtures for the agent tests: a fake libnvidia-ml compiled from tests/fakenvml/fake_nvml.c.

The real pynvml code path runs against it: in-process tests load it through
``Nvml(library_path=...)``; the end-to-end test runs ``ballast agent`` with
``--nvml-library``. The fake reads the fixture file named by
``$FAKE_NVML_FIXTURE`` on every call, so tests change the "hardware" by
rewriting that file (atomically).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "fakenvml" / "fake_nvml.c"


@pytest.fixture(scope="session")
def fake_nvml_lib(tmp_path_factory: pytest.TempPathFactory) -> str:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (cc) on PATH: cannot build the fake NVML library")
    out = tmp_path_factory.mktemp("fakenvml") / "libnvidia-ml.so.1"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(SOURCE), "-lpthread"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return str(out)


class GPUFixture:
    """The fake's fixture file: ``set(count=2)``, ``gpu(1, util=50, xid=79)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.top: dict[str, object] = {"count": 0}
        self.gpus: dict[int, dict[str, object]] = {}

    def set(self, **values: object) -> GPUFixture:
        self.top.update(values)
        return self.write()

    def gpu(self, index: int, **values: object) -> GPUFixture:
        self.gpus.setdefault(index, {}).update(values)
        return self.write()

    def raise_xid(self, index: int, xid: int) -> GPUFixture:
        seq = int(str(self.gpus.get(index, {}).get("xid_seq", 0))) + 1
        return self.gpu(index, xid=xid, xid_seq=seq)

    def write(self) -> GPUFixture:
        lines = [f"{k}={v}" for k, v in self.top.items()]
        for i, fields in sorted(self.gpus.items()):
            lines.extend(f"gpu.{i}.{k}={v}" for k, v in fields.items())
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.path)  # the fake may be reading concurrently
        return self


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
