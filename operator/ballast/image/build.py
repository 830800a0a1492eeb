"""``make image``: three cached layers and the assembled archive.

Layers, base first, each in ``<cache>/image/<stage>-<key>/`` (key: :mod:`spec`):

* ``base``: the runtime root filesystem (Debian ``minbase``, python3, CA certificates);
* ``deps``: :data:`spec.VENV` with the pinned runtime dependencies (pip and
  setuptools left out); the build stage folder it came from is kept beside it;
* ``app``: the project wheel's files in that environment.

The archive is ``<cache>/image/<key>/ballast-image.tar`` with ``image.json``
beside it; its key adds the config, labels (source revision) and crane's
build. A warm run finds it and returns at once; a change to the source
rebuilds only the ``app`` layer, to the lock only ``deps`` and ``app``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from ballast.image import assemble, layers, rootfs, spec
from ballast.image.steps import ImageError, run_logged
from ballast.localcluster import tools
from ballast.localcluster.binaries import cache_dir
from ballast.localcluster.errors import ClusterError
from ballast.logs import kv

log = logging.getLogger(__name__)

ARCHIVE = "ballast-image.tar"
MANIFEST = "image.json"
STAGE_MANIFEST = "stage.json"
LAYER = "layer.tar.gz"
KEEP = {"image": 3, "app": 3, "deps": 2, "base": 2}  # newest folders kept per kind


def repo_root() -> Path:
    """The checkout the image is built from (operator/ballast/image/build.py -> four up)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / spec.LOCK).is_file() or not (root / "pyproject.toml").is_file():
        raise ImageError(f"no {spec.LOCK} and pyproject.toml at {root}: run from a checkout")
    return root


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def _locked(images: Path) -> Iterator[None]:
    images.mkdir(parents=True, exist_ok=True)
    with (images / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # one build at a time per cache
        yield


def _stage(images: Path, name: str, key: str, force: bool, make: Callable[[Path], None]) -> Path:
    """The folder of a complete stage, made by ``make(tmp)`` unless cached."""
    final = images / f"{name}-{key}"
    if not force and (final / STAGE_MANIFEST).is_file():
        log.info("layer cached", extra=kv(stage=name, dir=final))
        os.utime(final)  # in use: the newest are kept by _prune
        return final
    tmp = images / f".{name}-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    started = time.monotonic()
    try:
        make(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = round(time.monotonic() - started, 1)
    size = (tmp / LAYER).stat().st_size
    doc = {"stage": name, "key": key, "seconds": seconds, "layerBytes": size, "builtAt": _now()}
    (tmp / STAGE_MANIFEST).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    log.info("layer built", extra=kv(stage=name, seconds=seconds, mib=round(size / 2**20, 1)))
    return final


def _base(tmp: Path, log_path: Path) -> None:
    tar = tmp / "rootfs.tar"
    rootfs.runtime_tar(tar, log_path)
    log.info("writing layer", extra=kv(stage="base"))
    layers.from_tar(tar, tmp / LAYER, keep=lambda name: not name.startswith(spec.BASE_DROP))
    tar.unlink()


def _deps(tmp: Path, root: Path, log_path: Path) -> None:
    context = tmp / "context"
    context.mkdir()
    shutil.copy2(root / spec.LOCK, context / spec.LOCK)
    (context / "dependencies.txt").write_text("\n".join(spec.dependencies(root)) + "\n")
    stage = tmp / "stage"
    rootfs.build_stage(stage, context, log_path)
    shutil.rmtree(context)
    dropped = {p for d in spec.DROP_DISTRIBUTIONS for p in rootfs.record(stage, d)}
    venv = spec.VENV.lstrip("/")
    dropped |= {p for p in layers.walk(stage, f"{venv}/bin") if "/activate" in p.lower()}
    keep = [p for p in layers.walk(stage, venv) if p not in dropped and not spec.dropped_folder(p)]
    log.info("writing layer", extra=kv(stage="deps", files=len(keep), dropped=len(dropped)))
    layers.from_dir(stage, keep, tmp / LAYER)


def build_wheel(root: Path, out: Path, log_path: Path) -> Path:
    """The project wheel, built with pip from a copy of :func:`spec.source_files`."""
    src = out / "src"
    for rel in spec.source_files(root):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, src / rel)
    argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"]
    argv += ["--no-deps", "--wheel-dir", str(out), str(src)]
    run_logged(argv, log_path, "project wheel (pip wheel)", progress=lambda _: None)
    wheels = sorted(out.glob("ballast-*.whl"))
    if len(wheels) != 1:
        raise ImageError(f"pip wheel made {len(wheels)} wheels in {out}; see {log_path}")
    return wheels[0]


def _app(tmp: Path, root: Path, deps: Path, log_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir=tmp) as work:
        wheel = build_wheel(root, Path(work), log_path)
        stage = deps / "stage"
        rootfs.install_wheel(stage, wheel, log_path)
    files = rootfs.record(stage, "ballast")
    log.info("writing layer", extra=kv(stage="app", files=len(files)))
    layers.from_dir(stage, files, tmp / LAYER)


def _prune(images: Path, kind: str, keep: int) -> None:
    pattern = "[0-9a-f]" * 12 if kind == "image" else f"{kind}-*"
    found = sorted(images.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in found[keep:]:
        log.info("removing old cache entry", extra=kv(dir=old))
        shutil.rmtree(old, ignore_errors=True)


def _keys(root: Path, crane: Path) -> tuple[dict[str, str], str, str]:
    """The stage keys, the source revision and the archive's key."""
    revision = spec.revision(root)
    keys = {"base": spec.base_key(), "deps": spec.deps_key(root)}
    keys["app"] = spec.app_key(root, keys["deps"])
    key = spec.image_key(keys["base"], keys["deps"], keys["app"], revision, crane.name)
    return keys, revision, key


def find(cache: Path | None = None) -> Path | None:
    """The archive of this checkout when it is already built (nothing is built here)."""
    images = (cache or cache_dir()) / "image"
    try:
        crane = tools.resolve(tools.CRANE, cache)
    except ClusterError:
        return None
    _, _, key = _keys(repo_root(), crane)
    return images / key / ARCHIVE if (images / key / MANIFEST).is_file() else None


def build(cache: Path | None = None, force: bool = False) -> Path:
    """The image archive, from the cache or built now; returns its path."""
    started = time.monotonic()
    root = repo_root()
    cache = cache or cache_dir()
    images = cache / "image"
    crane = tools.build(tools.CRANE, cache)
    keys, revision, key = _keys(root, crane)
    archive = images / key / ARCHIVE
    if not force and (images / key / MANIFEST).is_file():
        log.info("image cached", extra=kv(archive=archive, ref=spec.reference()))
        return archive
    rootfs.require_tools()
    with _locked(images):
        (cache / "logs").mkdir(parents=True, exist_ok=True)
        log_path = cache / "logs" / f"image-{key}.log"
        log_path.write_text("")
        log.info("building image", extra=kv(key=key, revision=revision, log=log_path))
        base = _stage(images, "base", keys["base"], force, lambda t: _base(t, log_path))
        deps = _stage(images, "deps", keys["deps"], force, lambda t: _deps(t, root, log_path))
        app = _stage(images, "app", keys["app"], force, lambda t: _app(t, root, deps, log_path))
        tmp = images / f".{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        stages = [base, deps, app]
        assemble.assemble(
            crane / "crane", [s / LAYER for s in stages], revision, tmp / ARCHIVE, log_path
        )
        doc: dict[str, Any] = {
            "key": key,
            "ref": spec.reference(),
            "revision": revision,
            "archiveBytes": (tmp / ARCHIVE).stat().st_size,
            "layers": [orjson.loads((s / STAGE_MANIFEST).read_bytes()) for s in stages],
            "crane": crane.name,
            "buildSeconds": round(time.monotonic() - started, 1),
            "builtAt": _now(),
        }
        (tmp / MANIFEST).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        shutil.rmtree(images / key, ignore_errors=True)
        tmp.rename(images / key)
        for kind, keep in KEEP.items():
            _prune(images, kind, keep)
    mib = round(doc["archiveBytes"] / 2**20, 1)
    log.info(
        "image built",
        extra=kv(archive=archive, ref=doc["ref"], mib=mib, seconds=doc["buildSeconds"]),
    )
    return archive
