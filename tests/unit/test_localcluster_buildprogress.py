"""Progress of a control-plane build, told from build.sh's output and the Go build cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from ballast.localcluster import binaries as b
from ballast.localcluster.buildprogress import BuildProgress, compiled_since, previous_steps


def _entry(cache: Path, name: str, mtime: float) -> None:
    sub = cache / name[:2]
    sub.mkdir(parents=True, exist_ok=True)
    (sub / name).write_text("x")
    os.utime(sub / name, (mtime, mtime))


def test_compiled_packages_are_new_output_entries(tmp_path: Path) -> None:
    now = time.time()
    _entry(tmp_path, "aa11-d", now)
    _entry(tmp_path, "aa12-a", now)  # an action entry, not an output
    _entry(tmp_path, "bb13-d", now - 3600)  # from an earlier build
    (tmp_path / "README").write_text("not a cache folder")
    assert compiled_since(tmp_path, now - 60) == 1
    assert compiled_since(tmp_path / "missing", 0) == 0
    assert compiled_since(None, 0) == 0


def test_steps_downloads_and_share_of_the_last_build(tmp_path: Path) -> None:
    p = BuildProgress(("etcd", "k8s"), {"k8s": {"seconds": 600, "packages": 4}}, tmp_path)
    assert p.feed("go: downloading example.com/m v1.0.0\n") is None
    assert p.feed("==> building etcd into /out\n") == "building etcd (1/2)"
    assert p.feed("==> building k8s into /out\n") == "building k8s (2/2)"
    p.feed("go: downloading example.com/n v1.0.0\n")
    _entry(tmp_path, "cc01-d", time.time() + 1)
    msg, fields = p.status()
    assert fields["step"] == "2/2" and fields["modules_downloaded"] == 2
    assert fields["packages_compiled"] == 1 and fields["pct_of_last_build"] == 25
    assert msg.startswith("still building k8s (2/2)") and "~25% of the last build's 4" in msg
    steps = p.finish()
    assert set(steps) == {"etcd", "k8s"} and steps["k8s"]["packages"] == 1


def test_a_build_records_its_steps_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hack = tmp_path / "hack"
    for module in ("k8s", "etcd", "kwok", "helm"):
        (hack / module).mkdir(parents=True)
        req = "\nrequire k8s.io/kubernetes v1.34.4\n" if module == "k8s" else ""
        (hack / module / "go.mod").write_text(f"module {module}\n\ngo 1.24.0\n{req}")
    bins = " ".join(b.BINARIES)
    (hack / "build.sh").write_text(
        'out=$1\nfor c in etcd k8s; do echo "==> building $c into $out"; done\n'
        f'for x in {bins}; do printf "#!/bin/sh\\n" > "$out/$x"; chmod +x "$out/$x"; done\n'
    )
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    (fakebin / "go").write_text('#!/bin/sh\necho "go version go1.26.8 linux/amd64"\n')
    (fakebin / "go").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fakebin}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("GOCACHE", str(tmp_path / "gocache"))
    monkeypatch.setenv(b.ENV_HACK_DIR, str(hack))
    monkeypatch.setenv(b.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(b.ENV_BIN_DIR, raising=False)
    out = b.build()
    doc = orjson.loads((out / b.MANIFEST).read_bytes())
    assert set(doc["steps"]) == {"etcd", "k8s"}
    assert previous_steps(tmp_path / "cache", b.MANIFEST) == doc["steps"]
