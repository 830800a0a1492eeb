"""The image recipe: the Dockerfile and `make image` agree, keys, layer writing, archive reading."""

from __future__ import annotations

import gzip
import io
import json
import re
import shlex
import shutil
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml

from ballast import __version__
from ballast.image import archive, assemble, layers, spec
from ballast.localcluster import binaries as b
from ballast.localcluster import tools as t

ROOT = Path(__file__).resolve().parents[2]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def _stages(text: str) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions(text):
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _args(text: str) -> dict[str, str]:
    return dict(a.split("=", 1) for k, a in _instructions(text) if k == "ARG" and "=" in a)


def _apt_packages(stage: list[tuple[str, str]]) -> tuple[str, ...]:
    runs = " ".join(a for k, a in stage if k == "RUN")
    match = re.search(r"apt-get install --yes --no-install-recommends ([a-z0-9 .+-]+?) &&", runs)
    assert match, "no apt-get install in the stage"
    return tuple(match.group(1).split())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_base_and_packages_are_the_recipe(dockerfile: str) -> None:
    args = _args(dockerfile)
    build, runtime = _stages(dockerfile)
    for stage in (build, runtime):
        image = stage[0][1].split()[0]
        assert image.replace("${DEBIAN}", args["DEBIAN"]) == spec.DOCKER_BASE
    assert spec.DOCKER_BASE.startswith(f"debian:{spec.SUITE}")
    assert _apt_packages(build) == spec.BUILD_PACKAGES
    assert _apt_packages(runtime) == spec.RUNTIME_PACKAGES
    # apt's lists never stay in a layer.
    assert all("rm -rf /var/lib/apt/lists/*" in a for k, a in build + runtime if "apt-get" in a)


def test_dockerfile_builds_the_environment_as_make_image_does(dockerfile: str) -> None:
    build, runtime = _stages(dockerfile)
    runs = " ".join(a for k, a in build if k == "RUN")
    assert f"python3 -m venv {spec.VENV}" in runs
    # The same pip lines: runtime requirements constrained by the lock, then the wheel alone.
    assert shlex.join(spec.PIP_DEPS) in runs
    assert shlex.join(spec.PIP_APP) in runs
    assert "['project']['dependencies']" in runs  # dependencies.txt as spec.dependencies()
    copies = [a for k, a in build if k == "COPY"]
    copied = {Path(p).as_posix() for a in copies for p in a.split()[:-1]}
    assert {spec.LOCK, *spec.SOURCE_FILES, spec.SOURCE_TREE} == copied
    for name in spec.DROP_DISTRIBUTIONS:
        assert re.search(rf"pip uninstall --yes [a-z ]*\b{name}\b", runs)
    for folder in spec.DROP_FOLDERS:
        assert f"-name {folder} -path '*/site-packages/*'" in runs
    assert ("COPY", f"--from=build {spec.VENV} {spec.VENV}") in runtime


def test_dockerfile_config_is_the_recipe(dockerfile: str) -> None:
    runtime = _stages(dockerfile)[1]
    last = {k: a for k, a in runtime}
    assert json.loads(last["ENTRYPOINT"]) == list(spec.ENTRYPOINT)
    assert last["USER"] == spec.USER and last["WORKDIR"] == spec.WORKDIR
    assert shlex.split(last["ENV"]) == list(spec.ENV)
    args = _args(dockerfile)
    assert args["VERSION"] == __version__
    raw = dict(pair.split("=", 1) for pair in shlex.split(last["LABEL"]))
    wanted = spec.labels(revision="${REVISION}") | {
        "org.opencontainers.image.version": "${VERSION}"
    }
    assert raw == wanted


def test_dockerignore_sends_only_the_sources() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and ln[0] != "#"]
    assert lines[0] == "*"
    assert {ln[1:] for ln in lines if ln.startswith("!")} == {
        spec.LOCK,
        *spec.SOURCE_FILES,
        spec.SOURCE_TREE,
    }


def test_labels_and_names_follow_the_project_and_the_chart() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    chart = yaml.safe_load((ROOT / "charts/ballast/Chart.yaml").read_text())
    got = spec.labels("abc")
    assert got["org.opencontainers.image.version"] == project["version"] == chart["appVersion"]
    assert got["org.opencontainers.image.source"] == chart["home"]
    assert got["org.opencontainers.image.revision"] == "abc"
    assert all("," not in v for v in got.values())  # crane's --label splits on commas
    values = yaml.safe_load((ROOT / "charts/ballast/values.yaml").read_text())
    uid = values["securityContext"]["runAsUser"]
    assert spec.USER.split(":") == [str(uid), str(uid)]
    assert spec.reference() == f"{spec.REPOSITORY}:{chart['appVersion']}"


def test_mutate_sets_every_config_fact() -> None:
    args = assemble.mutate_args("rev1")
    assert f"--entrypoint={spec.ENTRYPOINT[0]}" in args and f"--user={spec.USER}" in args
    assert f"--set-platform={spec.PLATFORM}" in args
    assert "--label=org.opencontainers.image.revision=rev1" in args
    assert {a.removeprefix("--env=") for a in args if a.startswith("--env=")} == set(spec.ENV)


def _copy_inputs(dst: Path) -> Path:
    for rel in [spec.LOCK, *map(str, spec.source_files(ROOT))]:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst / rel)
    return dst


def test_keys_follow_their_inputs_only(tmp_path: Path) -> None:
    root = _copy_inputs(tmp_path)
    base, deps = spec.base_key(), spec.deps_key(root)
    app = spec.app_key(root, deps)
    cache = root / spec.SOURCE_TREE / "__pycache__" / "x.cpython-311.pyc"
    cache.parent.mkdir(exist_ok=True)
    cache.write_bytes(b"noise")  # never an input
    assert spec.app_key(root, deps) == app
    (root / spec.SOURCE_TREE / "cli.py").write_text("# changed\n", "utf-8")
    assert spec.deps_key(root) == deps and spec.app_key(root, deps) != app
    app = spec.app_key(root, deps)
    with (root / spec.LOCK).open("a") as f:
        f.write("example==1.0\n")
    assert spec.deps_key(root) != deps and spec.base_key() == base
    one = spec.image_key(base, deps, app, "r1", "crane-a")
    assert one != spec.image_key(base, deps, app, "r2", "crane-a")
    assert one != spec.image_key(base, deps, app, "r1", "crane-b")


def test_runtime_dependencies_are_all_pinned_in_the_lock() -> None:
    pins = {
        ln.split("==")[0].lower().replace("_", "-")
        for ln in (ROOT / spec.LOCK).read_text().splitlines()
        if "==" in ln and not ln.startswith("#")
    }
    names = {
        re.split(r"[=<>!~ \[]", d)[0].lower().replace("_", "-") for d in spec.dependencies(ROOT)
    }
    assert names and names <= pins


def test_dropped_folders_are_package_test_suites_only() -> None:
    site = "opt/ballast/lib/python3.11/site-packages"
    assert spec.dropped_folder(f"{site}/numpy/_core/tests/test_x.py")
    assert not spec.dropped_folder(f"{site}/numpy/testing/utils.py")
    assert not spec.dropped_folder(f"{site}/tests.py")
    assert not spec.dropped_folder("usr/lib/python3/tests/x.py")


def test_crane_is_a_tool_keyed_apart_from_the_control_plane() -> None:
    hack = b.hack_dir()
    assert "crane" in b.tool_sections((hack / "build.sh").read_text())
    assert t.pinned_version(hack, t.CRANE).startswith("v0.")
    files = {p.relative_to(hack).as_posix() for p in t.tool_files(hack, t.CRANE)}
    assert {"build.sh", "crane/go.mod", "crane/go.sum", "crane/tools.go"} <= files
    assert not any(p.relative_to(hack).parts[0] == "crane" for p in b.hack_files(hack))
    assert b"tool crane" not in b.script_bytes(hack)
    assert t.CRANE not in t.TOOLS  # `make bins` does not build it; `make image` does


# -- layers and archives ---------------------------------------------------------------


def _member(tar: tarfile.TarFile, name: str, data: bytes = b"", **kw: object) -> None:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    info.size = len(data) if info.isreg() else 0
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def test_layer_from_tar_drops_devices_and_owns_by_root(tmp_path: Path) -> None:
    src = tmp_path / "rootfs.tar"
    with tarfile.open(src, "w") as tar:
        _member(tar, "./", type=tarfile.DIRTYPE, mode=0o755)
        _member(tar, "./dev/", type=tarfile.DIRTYPE, mode=0o755)
        _member(tar, "./dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        _member(tar, "./etc/", type=tarfile.DIRTYPE, mode=0o755, uid=5, uname="x")
        _member(tar, "./etc/os-release", b"ID=debian\n", mode=0o644, uid=5)
        _member(tar, "./bin", type=tarfile.SYMTYPE, linkname="usr/bin")
        _member(tar, "./etc/hard", type=tarfile.LNKTYPE, linkname="./etc/os-release")
        _member(tar, "./etc/skip", b"left out", mode=0o644)
    layer = tmp_path / "layer.tar.gz"
    assert layers.from_tar(src, layer, keep=lambda n: n != "etc/skip") == 5
    with tarfile.open(layer) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"dev", "etc", "etc/os-release", "bin", "etc/hard"}
    assert all(m.uid == 0 and m.uname == "root" for m in members.values())
    assert members["etc/hard"].linkname == "etc/os-release"


def test_layer_from_dir_writes_parents_first(tmp_path: Path) -> None:
    root = tmp_path / "stage"
    (root / "opt/app/bin").mkdir(parents=True)
    (root / "opt/app/bin/tool").write_text("#!/bin/sh\n")
    (root / "opt/app/bin/tool").chmod(0o755)
    (root / "opt/app/bin/py").symlink_to("/usr/bin/python3")
    layer = tmp_path / "l.tar.gz"
    assert layers.from_dir(root, layers.walk(root, "opt/app"), layer) == 5
    with tarfile.open(layer) as tar:
        names = tar.getnames()
        tool = tar.getmember("opt/app/bin/tool")
        link = tar.getmember("opt/app/bin/py")
    assert names[:3] == ["opt", "opt/app", "opt/app/bin"]
    assert tool.mode & 0o777 == 0o755 and tool.uid == 0
    assert link.issym() and link.linkname == "/usr/bin/python3"


def _layer(members: list[tuple[str, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in members:
            if data is None:
                _member(tar, name, type=tarfile.DIRTYPE, mode=0o755)
            else:
                _member(tar, name, data, mode=0o644)
    return raw.getvalue()


def _docker_archive(path: Path, layer_blobs: list[bytes], config: dict[str, object]) -> None:
    with tarfile.open(path, "w") as tar:
        names = []
        for i, blob in enumerate(layer_blobs):
            names.append(f"layer{i}.tar.gz")
            _member(tar, names[-1], blob, mode=0o644)
        _member(tar, "config.json", json.dumps(config).encode(), mode=0o644)
        manifest = [{"Config": "config.json", "RepoTags": ["localhost/x:1"], "Layers": names}]
        _member(tar, "manifest.json", json.dumps(manifest).encode(), mode=0o644)


def test_unpack_applies_layers_in_order_with_whiteouts(tmp_path: Path) -> None:
    lower = _layer([("etc/", None), ("etc/a", b"1"), ("etc/b", b"2"), ("etc/c", b"old"), ("var/", None),
                    ("var/cache/", None), ("var/cache/x", b"x"), ("var/cache/y", b"y")])  # fmt: skip
    # A whiteout hides lower layers only: etc/c written by this layer stays, whatever the order.
    upper = _layer([("etc/a", b"new"), ("etc/.wh.b", b""), ("var/cache/z", b"z"),
                    ("var/cache/.wh..wh..opq", b""), ("etc/c", b"3"), ("etc/.wh.c", b"")])  # fmt: skip
    path = tmp_path / "img.tar"
    _docker_archive(path, [lower, upper], {"config": {"User": "65532"}})
    root = tmp_path / "root"
    image = archive.unpack(path, root)
    assert image.tags == ("localhost/x:1",) and image.settings["User"] == "65532"
    assert (root / "etc/a").read_text() == "new" and not (root / "etc/b").exists()
    assert sorted(p.name for p in (root / "var/cache").iterdir()) == ["z"]
    assert (root / "etc/c").read_text() == "3"


def test_unpack_refuses_to_write_through_a_link_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        _member(tar, "etc", type=tarfile.SYMTYPE, linkname=str(outside))
        _member(tar, "etc/passwd", b"x", mode=0o644)
    path = tmp_path / "img.tar"
    _docker_archive(path, [raw.getvalue()], {"config": {}})
    with pytest.raises(ValueError, match="outside"):
        archive.unpack(path, tmp_path / "root")
    assert not (outside / "passwd").exists()


def test_read_an_oci_layout_archive(tmp_path: Path) -> None:
    import hashlib

    def blob(tar: tarfile.TarFile, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        _member(tar, f"blobs/sha256/{digest}", data, mode=0o644)
        return f"sha256:{digest}"

    path = tmp_path / "oci.tar"
    with tarfile.open(path, "w") as tar:
        layer = blob(tar, _layer([("hello", b"hi")]))
        config = blob(tar, json.dumps({"config": {"Entrypoint": ["/e"]}}).encode())
        manifest = {"config": {"digest": config}, "layers": [{"digest": layer}]}
        digest = blob(tar, json.dumps(manifest).encode())
        ref = {"org.opencontainers.image.ref.name": "1.0"}
        index = {"manifests": [{"digest": digest, "annotations": ref}]}
        _member(tar, "index.json", json.dumps(index).encode(), mode=0o644)
    image = archive.unpack(path, tmp_path / "root")
    assert image.settings["Entrypoint"] == ["/e"] and image.tags == ("1.0",)
    assert (tmp_path / "root/hello").read_text() == "hi"
