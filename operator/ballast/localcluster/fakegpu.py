"""Fake GPUs for the local cluster: a libnvidia-ml built here and the fixture it reads.

There is no GPU on a developer's laptop or in CI, yet the node agent must
run its real code path (``pynvml`` → ``libnvidia-ml.so.1``). The C source of
a small fake NVML library lives in the repository (:data:`SOURCE`); this
module compiles it with the machine's C compiler into the cache
(``<cache>/fakenvml/<hash of the source>/libnvidia-ml.so.1``, reused while
the source is unchanged) and writes the fixture file it answers from.

The fake re-reads its fixture (``$FAKE_NVML_FIXTURE``) on every call, so a
test or the demo changes the "hardware" of a running agent by rewriting the
file: :class:`GPUFixture` writes it atomically.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ballast.localcluster.binaries import cache_dir
from ballast.localcluster.errors import ClusterError

#: The fake library's C source (see its header for the fixture keys).
SOURCE = Path(__file__).resolve().parents[3] / "tests" / "fakenvml" / "fake_nvml.c"
LIBRARY = "libnvidia-ml.so.1"
ENV_FIXTURE = "FAKE_NVML_FIXTURE"
MIB = 1 << 20


class FakeGPUError(ClusterError):
    """The fake NVML library cannot be built (no C compiler, no source, compile error)."""


def build_fake_nvml(cache: Path | None = None, source: Path = SOURCE) -> Path:
    """Compile the fake NVML library (once per source version); returns its path."""
    try:
        code = source.read_bytes()
    except OSError as exc:
        raise FakeGPUError(f"fake NVML source not readable: {exc}") from exc
    digest = hashlib.sha256(code).hexdigest()[:12]
    folder = (cache or cache_dir()) / "fakenvml" / digest
    lib = folder / LIBRARY
    if lib.is_file():
        return lib
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise FakeGPUError("no C compiler (cc, gcc or clang) on PATH to build the fake NVML")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{LIBRARY}.{os.getpid()}"
    out = subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-o", str(tmp), str(source), "-lpthread"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise FakeGPUError(f"compiling {source.name} failed: {out.stderr.strip()[-2000:]}")
    os.replace(tmp, lib)  # atomic: a concurrent build of the same source is harmless
    return lib


class GPUFixture:
    """The fake's fixture file: ``set(count=2)``, ``gpu(1, util=50)``, ``raise_xid(0, 79)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.top: dict[str, object] = {"count": 0}
        self.gpus: dict[int, dict[str, object]] = {}

    def set(self, **values: object) -> GPUFixture:
        """Node-wide keys (``count``, ``driver``, ``events``, ``init_error``)."""
        self.top.update(values)
        return self.write()

    def gpu(self, index: int, **values: object) -> GPUFixture:
        """Keys of one GPU (``util``, ``mem_used``, ``ecc_dbe``, ``lost`` ...)."""
        self.gpus.setdefault(index, {}).update(values)
        return self.write()

    def raise_xid(self, index: int, xid: int) -> GPUFixture:
        """Deliver XID ``xid`` on GPU ``index`` once (to an agent waiting for events)."""
        seq = int(str(self.gpus.get(index, {}).get("xid_seq", 0))) + 1
        return self.gpu(index, xid=xid, xid_seq=seq)

    def write(self) -> GPUFixture:
        """Rewrite the file atomically (the fake may be reading it right now)."""
        lines = [f"{k}={v}" for k, v in self.top.items()]
        for i, fields in sorted(self.gpus.items()):
            lines.extend(f"gpu.{i}.{k}={v}" for k, v in fields.items())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.path)
        return self

    @classmethod
    def for_node(
        cls,
        path: Path,
        node: str,
        product: str,
        gpus: int,
        memory_mib: int,
        readings: Mapping[int, Mapping[str, object]] | None = None,
    ) -> GPUFixture:
        """Healthy, idle GPUs like a fake node's: product name, memory, stable UUIDs."""
        fx = cls(path)
        fx.top.update(count=gpus, driver="550.54.15")
        name = product.replace("-", " ")
        for i in range(gpus):
            uid = hashlib.sha256(f"{node}/{i}".encode()).hexdigest()
            fields: dict[str, object] = {
                "name": name,
                "uuid": f"GPU-{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}",
                "mem_total": memory_mib * MIB,
                "mem_used": 0,
                "util": 0,
                "power_mw": 70_000,
                "temp": 32,
            }
            fields.update((readings or {}).get(i, {}))
            fx.gpus[i] = fields
        return fx.write()
