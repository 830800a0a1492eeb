"""Keying, building, caching and finding the control-plane binaries, with a fake hack/ and go."""

from __future__ import annotations

import os
import re
from pathlib import Path

import orjson
import pytest

from ballast.localcluster import binaries as b
from ballast.localcluster import tools as t
from ballast.localcluster.errors import BuildError, GoMissingError, MissingBinariesError

BUILD_SH = """\
#!/usr/bin/env bash
set -euo pipefail
out=$1
echo "==> building fake into $out"
echo run >> "$(dirname "$0")/runs"
if [ -n "${FAKE_FAIL:-}" ]; then echo "compile error: boom"; exit 2; fi
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm; do
  printf '#!/bin/sh\\necho %s\\n' "$b" > "$out/$b"; chmod +x "$out/$b"
done
echo "==> done"
"""


@pytest.fixture
def hack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "hack"
    for module, go, require in (
        ("k8s", "1.24.0", "\nrequire k8s.io/kubernetes v1.34.4\n"),
        ("etcd", "1.26.0", ""),
        ("kwok", "1.24.0", ""),
    ):
        (root / module).mkdir(parents=True)
        (root / module / "go.mod").write_text(f"module {module}\n\ngo {go}\n{require}")
        (root / module / "go.sum").write_text(f"{module} sums\n")
        (root / module / "main.go").write_text("package main\n")
    (root / "build.sh").write_text(BUILD_SH)
    (root / "build.sh").chmod(0o755)
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    go = fakebin / "go"
    go.write_text('#!/bin/sh\necho "go version ${FAKE_GO:-go1.26.8} linux/amd64"\n')
    go.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fakebin}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv(b.ENV_HACK_DIR, str(root))
    monkeypatch.setenv(b.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(b.ENV_BIN_DIR, raising=False)
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    return root


def runs(hack: Path) -> int:
    path = hack / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_key_names_version_and_hashes_inputs(hack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = b.build_key(hack)
    assert re.fullmatch(r"v1\.34\.4-[0-9a-f]{12}", key)
    assert b.build_key(hack) == key
    (hack / "README.md").write_text("not an input\n")
    assert b.build_key(hack) == key
    monkeypatch.setenv("FAKE_GO", "go1.27.0")
    assert b.build_key(hack) != key
    monkeypatch.delenv("FAKE_GO")
    (hack / "kwok" / "main.go").write_text("package main // changed\n")
    assert b.build_key(hack) != key


def test_hack_files_and_minimum_go(hack: Path) -> None:
    names = [p.relative_to(hack).as_posix() for p in b.hack_files(hack)]
    assert names == sorted(names)
    assert "build.sh" in names and "k8s/go.mod" in names and "etcd/main.go" in names
    assert b.minimum_go(hack) == "1.26.0"


def test_build_then_reuse(hack: Path) -> None:
    cache = b.cache_dir()
    out = b.build()
    assert out == cache / "bin" / b.build_key(hack)
    assert b.missing_binaries(out) == []
    manifest = orjson.loads((out / b.MANIFEST).read_bytes())
    assert manifest["key"] == out.name and manifest["kubernetesVersion"] == "v1.34.4"
    assert manifest["hackDigest"] == b.hack_digest(hack)
    assert "==> done" in (cache / "logs" / f"build-{out.name}.log").read_text()
    assert b.build() == out and runs(hack) == 1  # cached: build.sh did not run again
    assert b.build(force=True) == out and runs(hack) == 2
    assert sorted(p.name for p in (cache / "bin").iterdir()) == [out.name]  # no temp leftovers
    assert b.resolve_bin_dir() == out


def test_failed_build_names_log_and_shows_tail(hack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "1")
    with pytest.raises(BuildError) as info:
        b.build()
    message = str(info.value)
    log = b.cache_dir() / "logs" / f"build-{b.build_key(hack)}.log"
    assert str(log) in message and "compile error: boom" in message
    assert list((b.cache_dir() / "bin").iterdir()) == []


def test_missing_binaries_say_how_to_build(hack: Path) -> None:
    with pytest.raises(MissingBinariesError, match="ballast cluster build"):
        b.resolve_bin_dir()


def test_bin_dir_override(hack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = b.build()
    monkeypatch.setenv(b.ENV_BIN_DIR, str(built))
    assert b.resolve_bin_dir() == built
    monkeypatch.setenv(b.ENV_BIN_DIR, str(tmp_path))
    with pytest.raises(MissingBinariesError, match="kube-apiserver"):
        b.resolve_bin_dir()


def test_go_missing(hack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = b.build()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(GoMissingError, match=r"Go >= 1\.26\.0"):
        b.build()
    # Without Go the key cannot be computed: a cached build of the same hack/ files is used.
    assert b.resolve_bin_dir() == built
    (hack / "kwok" / "main.go").write_text("package main // changed\n")
    with pytest.raises(GoMissingError):
        b.resolve_bin_dir()


def test_adopt_moves_a_finished_build_into_place(hack: Path, tmp_path: Path) -> None:
    done = tmp_path / "build-tmp"
    done.mkdir()
    for name in b.BINARIES:
        (done / name).write_text("#!/bin/sh\n")
        (done / name).chmod(0o755)
    final = b.adopt(done, seconds=427.0)
    assert not done.exists()
    assert final == b.resolve_bin_dir()
    assert orjson.loads((final / b.MANIFEST).read_bytes())["buildSeconds"] == 427.0
    assert b.build() == final and runs(hack) == 0


# -- tools keyed apart from the control plane (ballast.localcluster.tools) ------------------

TOOL_SECTION = """\
# >>> tool prometheus
if [ "${2:-}" = prometheus ]; then
  echo "==> building prometheus into $out"
  echo tool >> "$(dirname "$0")/tool-runs"
  for b in prometheus promtool; do printf '#!/bin/sh\\n' > "$out/$b"; chmod +x "$out/$b"; done
  exit 0
fi
# <<< tool prometheus
"""


def _add_tool(hack: Path) -> None:
    """A Prometheus wrapper folder and its section of build.sh, as in the real hack/."""
    (hack / "prometheus").mkdir()
    (hack / "prometheus" / "go.mod").write_text(
        "module prom\n\ngo 1.26.7\n\nrequire github.com/prometheus/prometheus v0.316.0\n"
    )
    (hack / "prometheus" / "go.sum").write_text("prom sums\n")
    (hack / "prometheus" / "tools.go").write_text("package tools\n")
    script = (hack / "build.sh").read_text()
    head, rest = script.split("out=$1\n", 1)
    (hack / "build.sh").write_text(f"{head}out=$1\n{TOOL_SECTION}{rest}")


def test_a_tool_never_changes_the_control_plane_key(hack: Path) -> None:
    key = b.build_key(hack)
    _add_tool(hack)
    assert b.build_key(hack) == key  # its folder and its build.sh section are cut out
    assert "prometheus/go.mod" not in [p.relative_to(hack).as_posix() for p in b.hack_files(hack)]
    tool = t.tool_key(hack, t.PROMETHEUS)
    assert re.fullmatch(r"prometheus-v0\.316\.0-[0-9a-f]{12}", tool)
    (hack / "prometheus" / "go.sum").write_text("prom sums, bumped\n")
    assert b.build_key(hack) == key and t.tool_key(hack, t.PROMETHEUS) != tool
    tool = t.tool_key(hack, t.PROMETHEUS)
    script = (hack / "build.sh").read_text()
    (hack / "build.sh").write_text(script.replace("tool-runs", "tool-runs2"))
    assert b.build_key(hack) == key and t.tool_key(hack, t.PROMETHEUS) != tool
    tool = t.tool_key(hack, t.PROMETHEUS)
    # The shared part of build.sh decides both builds.
    (hack / "build.sh").write_text(script.replace("set -euo pipefail", "set -eu -o pipefail"))
    assert b.build_key(hack) != key and t.tool_key(hack, t.PROMETHEUS) != tool


def test_tool_build_then_reuse_and_resolve(hack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _add_tool(hack)
    with pytest.raises(MissingBinariesError, match="ballast cluster build"):
        t.resolve(t.PROMETHEUS)
    out = t.build(t.PROMETHEUS)
    assert out == b.cache_dir() / "tools" / t.tool_key(hack, t.PROMETHEUS)
    assert t.missing(t.PROMETHEUS, out) == [] and runs(hack) == 0  # control plane not built
    assert t.build(t.PROMETHEUS) == out
    assert len((hack / "tool-runs").read_text().splitlines()) == 1  # cached
    assert t.binary(t.PROMETHEUS, "promtool") == out / "promtool"
    manifest = orjson.loads((out / t.MANIFEST).read_bytes())
    assert manifest["version"] == "v0.316.0" and manifest["digest"] == t.tool_digest(
        hack, t.PROMETHEUS
    )
    monkeypatch.setenv("PATH", "/nonexistent")  # without Go: the build of the same inputs
    assert t.resolve(t.PROMETHEUS) == out


def test_tool_without_its_section_is_an_error(hack: Path) -> None:
    (hack / "prometheus").mkdir()
    (hack / "prometheus" / "go.mod").write_text("module prom\n")
    with pytest.raises(BuildError, match="# >>> tool prometheus"):
        t.tool_key(hack, t.PROMETHEUS)
