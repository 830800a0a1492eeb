"""The image archive of this checkout: its config, and the entrypoint run in its root filesystem.

The archive is ``make image``'s (``ballast.image.build.find``). When it is not
built yet, the module builds it only if asked (``BALLAST_BUILD_IMAGE=1``, or
``CI`` set: a cold build takes a few minutes), and skips otherwise, saying
how to build it. Running the entrypoint needs root (chroot); so does the build
(mmdebstrap), which is skipped with the reason where root or mmdebstrap is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ballast import __version__
from ballast.image import archive, build, spec
from ballast.image.archive import Image

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 120


def _wanted() -> bool:
    return os.environ.get("BALLAST_BUILD_IMAGE") == "1" or bool(os.environ.get("CI"))


@pytest.fixture(scope="module")
def image_archive() -> Path:
    if os.geteuid() != 0 or shutil.which("chroot") is None:
        pytest.skip("running the image's entrypoint needs root and chroot")
    found = build.find()
    if found is not None:
        return found
    if not _wanted():
        pytest.skip("no image archive for this checkout: `make image` (or BALLAST_BUILD_IMAGE=1)")
    if shutil.which("mmdebstrap") is None or shutil.which("go") is None:
        pytest.skip("building the image needs mmdebstrap (apt-get install mmdebstrap) and Go")
    return build.build()


@pytest.fixture(scope="module")
def unpacked(
    image_archive: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Image, Path]]:
    root = tmp_path_factory.mktemp("image") / "rootfs"
    image = archive.unpack(image_archive, root)
    yield image, root
    shutil.rmtree(root, ignore_errors=True)  # ~0.5 GB


def _run(image: Image, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The entrypoint with ``args``, as the image's user, with the image's environment only."""
    settings = image.settings
    user = settings["User"]
    argv = ["chroot", f"--userspec={user}", str(root), "env", "-i", *settings["Env"]]
    argv += [*settings["Entrypoint"], *args]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False, cwd="/"
    )


def test_config_user_entrypoint_labels(image_archive: Path) -> None:
    image = archive.read(image_archive)
    settings = image.settings
    assert image.tags == (spec.reference(),)
    assert settings["User"] == spec.USER and int(settings["User"].split(":")[0]) != 0
    assert settings["Entrypoint"] == list(spec.ENTRYPOINT)
    assert settings["Entrypoint"][0].endswith("/bin/ballast")
    assert settings["Env"] == list(spec.ENV) and settings["WorkingDir"] == spec.WORKDIR
    assert (image.config["os"], image.config["architecture"]) == tuple(spec.PLATFORM.split("/"))
    labels = settings["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.revision"] == spec.revision(ROOT)
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", labels["org.opencontainers.image.revision"])
    assert labels["org.opencontainers.image.source"] == spec.SOURCE_URL
    assert len(image.layers) == 3  # base, pinned dependencies, the project


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (("--version",), rf"^ballast {re.escape(__version__)}$"),
        (("scheduler", "--help"), r"^usage: ballast scheduler "),
        (("agent", "--help"), r"^usage: ballast agent "),
        (("operator", "--help"), r"^usage: ballast operator "),
    ],
)
def test_entrypoint_runs_in_the_root_filesystem(
    unpacked: tuple[Image, Path], args: tuple[str, ...], expect: str
) -> None:
    image, root = unpacked
    done = _run(image, root, *args)
    assert done.returncode == 0, done.stderr
    assert re.search(expect, done.stdout, re.M), done.stdout[:500]


def test_environment_is_exactly_the_locked_runtime(unpacked: tuple[Image, Path]) -> None:
    _, root = unpacked
    pins = {}
    for line in (ROOT / spec.LOCK).read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    site = next((root / spec.VENV.lstrip("/") / "lib").glob("python3*/site-packages"))
    installed = {}
    for info in site.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert installed.pop("ballast") == __version__
    assert not set(spec.DROP_DISTRIBUTIONS) & set(installed)  # no installer in the image
    assert {n: v for n, v in installed.items() if pins.get(n) != v} == {}
    for requirement in spec.dependencies(ROOT):
        assert re.split(r"[=<>!~ \[]", requirement)[0].lower().replace("_", "-") in installed
    # The environment's interpreter is the image's own python3.
    cfg = (root / spec.VENV.lstrip("/") / "pyvenv.cfg").read_text()
    assert re.search(r"^home = /usr/bin$", cfg, re.M)
    assert (root / "usr/bin/python3").exists()


def test_image_is_lean(unpacked: tuple[Image, Path], image_archive: Path) -> None:
    _, root = unpacked
    compilers = [p for p in ("usr/bin/gcc", "usr/bin/cc", "usr/bin/c++", "usr/bin/make")]
    assert not [p for p in compilers if (root / p).exists()]
    lists = root / "var/lib/apt/lists"
    assert not [p for p in lists.rglob("*") if p.is_file() and p.name != "lock"]
    assert not list((root / "var/cache/apt").glob("*.bin"))
    docs = [p for p in (root / "usr/share/doc").rglob("*") if p.is_file()]
    assert all(p.name == "copyright" for p in docs)
    assert not list((root / "usr/share/man").rglob("*.gz"))
    assert not [p for p in (root / "dev").iterdir()]  # the runtime provides /dev
    site = next((root / spec.VENV.lstrip("/") / "lib").glob("python3*/site-packages"))
    assert not list(site.glob("*/tests"))
    size = sum(p.lstat().st_size for p in root.rglob("*"))
    print(
        f"\nimage archive {image_archive.stat().st_size / 2**20:.1f} MiB, "
        f"unpacked {size / 2**20:.1f} MiB"
    )
