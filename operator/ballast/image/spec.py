"""What the image is: base, packages, virtual environment, user, entrypoint, labels, inputs.

The repository's ``Dockerfile`` states the same facts for users with Docker (a
unit test parses it and compares). Each stage's cache key hashes its
parameters below and its input files, so a change to a package list, a pip
command line, ``requirements.lock`` or the source gives a new layer.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ballast import __version__

SUITE = "bookworm"  # Debian 12: its python3 is 3.11, the oldest Python Ballast supports
VARIANT = "minbase"  # Priority: required, as the Debian "slim" images start from
DOCKER_BASE = f"debian:{SUITE}-slim"  # the Dockerfile's FROM, both stages
BUILD_PACKAGES = ("python3", "python3-venv", "ca-certificates")
RUNTIME_PACKAGES = ("python3", "ca-certificates")
# dpkg never unpacks documentation, manuals or translations (licences stay), as in slim images,
# and does not fsync every file it unpacks (a build is redone, not repaired, after a crash).
DPKG_OPTIONS = (
    "force-unsafe-io",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/groff/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/locale/*",
)
# Left out of the base layer: the container runtime mounts its own /dev.
BASE_DROP = ("dev/",)
VENV = "/opt/ballast"  # the pinned virtual environment, built against the image's python3
ENTRYPOINT = (f"{VENV}/bin/ballast",)
USER = "65532:65532"  # the chart's securityContext.runAsUser (non-root, no passwd entry needed)
ENV = (
    f"PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONUNBUFFERED=1",
    "PYTHONDONTWRITEBYTECODE=1",  # the root filesystem is read-only; the .pyc files are built in
)
WORKDIR = "/"
PLATFORM = "linux/amd64"
REPOSITORY = "localhost/ballast"  # a local name: `kind load` then `--set image.repository`
SOURCE_URL = "https://github.com/ballast-dev/ballast"  # Chart.yaml's home
LOCK = "requirements.lock"

# The pip command lines run in the build stage (the Dockerfile runs the same ones).
# Runtime dependencies: pyproject's [project].dependencies, every version from the lock.
PIP_DEPS = (
    f"{VENV}/bin/pip", "install", "--no-cache-dir", "--disable-pip-version-check",
    "--constraint", f"/src/{LOCK}", "--requirement", "/src/dependencies.txt",
)  # fmt: skip
# The project itself, as a wheel built from the same source (no dependencies).
PIP_APP = (
    f"{VENV}/bin/pip", "install", "--no-cache-dir", "--disable-pip-version-check",
    "--no-deps", "--no-index",
)  # fmt: skip
# Installer files the image leaves out (pip stays in the build stage only).
DROP_DISTRIBUTIONS = ("pip", "setuptools")
# Test suites that dependencies ship inside their packages (numpy, matplotlib, ...): ~25 MB.
DROP_FOLDERS = ("tests",)

# The project source the wheel is built from (the Dockerfile copies the same).
SOURCE_FILES = ("pyproject.toml", "README.md")
SOURCE_TREE = "operator/ballast"
_SKIP = re.compile(r"(^|/)(__pycache__|[^/]*\.egg-info)(/|$)|\.py[co]$")


def dropped_folder(path: str) -> bool:
    """Whether a path in the environment lies in a :data:`DROP_FOLDERS` folder of a package."""
    parts = path.split("/")
    if "site-packages" not in parts:
        return False
    inside = parts[parts.index("site-packages") + 1 : -1]
    return any(p in DROP_FOLDERS for p in inside)


def labels(revision: str) -> dict[str, str]:
    """The OCI annotations set as image labels (``org.opencontainers.image.*``)."""
    return {
        "org.opencontainers.image.title": "ballast",
        # No commas: crane's --label flag splits on them.
        "org.opencontainers.image.description": (
            "Ballast: the operator; the GPU-aware scheduler and the node agent"
        ),
        "org.opencontainers.image.version": __version__,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.source": SOURCE_URL,
        "org.opencontainers.image.licenses": "Apache-2.0",
    }


def reference(version: str = __version__) -> str:
    """The name the archive carries (``localhost/ballast:<version>``)."""
    return f"{REPOSITORY}:{version}"


def dependencies(root: Path) -> list[str]:
    """pyproject's ``[project].dependencies`` (the runtime requirements, no dev extras)."""
    doc = tomllib.loads((root / "pyproject.toml").read_text())
    return [str(d) for d in doc["project"]["dependencies"]]


def source_files(root: Path) -> list[Path]:
    """The files the wheel is built from, relative to ``root``, in a stable order."""
    tree = [
        p.relative_to(root)
        for p in (root / SOURCE_TREE).rglob("*")
        if p.is_file() and not _SKIP.search(p.relative_to(root).as_posix())
    ]
    return sorted([Path(f) for f in SOURCE_FILES] + tree, key=lambda p: p.as_posix())


def _digest(params: dict[str, Any], files: Iterable[tuple[str, bytes]] = ()) -> str:
    h = hashlib.sha256(orjson.dumps(params, option=orjson.OPT_SORT_KEYS))
    for name, data in files:
        h.update(b"\0" + name.encode() + b"\0" + data)
    return h.hexdigest()[:12]


def base_key() -> str:
    """The runtime root filesystem: suite, variant, packages, dpkg options."""
    return _digest(
        {
            "suite": SUITE,
            "variant": VARIANT,
            "packages": RUNTIME_PACKAGES,
            "dpkg": DPKG_OPTIONS,
            "drop": BASE_DROP,
        }
    )


def deps_key(root: Path) -> str:
    """The build stage and the pinned dependencies: lock, runtime requirements, pip line."""
    params = {
        "suite": SUITE,
        "variant": VARIANT,
        "packages": BUILD_PACKAGES,
        "dpkg": DPKG_OPTIONS,
        "venv": VENV,
        "pip": PIP_DEPS,
        "drop": DROP_DISTRIBUTIONS,
        "dropFolders": DROP_FOLDERS,
        "dependencies": dependencies(root),
    }
    return _digest(params, [(LOCK, (root / LOCK).read_bytes())])


def app_key(root: Path, deps: str) -> str:
    """The project wheel installed on a given dependency stage."""
    files = [(p.as_posix(), (root / p).read_bytes()) for p in source_files(root)]
    return _digest({"deps": deps, "pip": PIP_APP}, files)


def image_key(base: str, deps: str, app: str, revision: str, crane: str) -> str:
    """The assembled archive: its layers, config, labels and the crane that wrote it."""
    config = {
        "entrypoint": ENTRYPOINT,
        "user": USER,
        "env": ENV,
        "workdir": WORKDIR,
        "platform": PLATFORM,
        "ref": reference(),
        "labels": labels(revision),
    }
    return _digest({"layers": [base, deps, app], "config": config, "crane": crane})


def revision(root: Path) -> str:
    """The source revision: the commit, ``-dirty`` when the image's inputs differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        paths = [LOCK, *SOURCE_FILES, SOURCE_TREE]
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", *paths],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if changed else head
