"""Write image layers: gzip'd tar files owned by root, from a root filesystem tar or a folder.

A layer never carries device nodes (the container runtime provides ``/dev``)
nor anything the :data:`Filter` drops; members keep their modes and
modification times, and their owner becomes ``root:root``.
"""

from __future__ import annotations

import gzip
import os
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

Filter = Callable[[str], bool]  # keep this archive path (no leading "./" or "/")?

GZIP_LEVEL = 6


def _normalise(info: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    info.name = name
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.pax_headers = {}
    return info


def _clean(name: str) -> str:
    """``./etc/``, ``/etc`` -> ``etc``; the root itself (``.``, ``./``) -> ``""``."""
    name = name.lstrip("/").rstrip("/")
    return "" if name == "." else name.removeprefix("./")


def from_tar(source: Path, layer: Path, keep: Filter) -> int:
    """Copy ``source`` (a root filesystem tar) into the gzip'd ``layer``; returns members kept.

    Device nodes and FIFOs are left out; so is every path ``keep`` rejects.
    """
    kept = 0
    with (
        tarfile.open(source, "r:*") as src,
        gzip.open(layer, "wb", compresslevel=GZIP_LEVEL) as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as out,
    ):
        for info in src:
            name = _clean(info.name)
            if not name or info.ischr() or info.isblk() or info.isfifo() or not keep(name):
                continue
            if info.islnk():
                info.linkname = _clean(info.linkname)
            data = src.extractfile(info) if info.isreg() else None
            out.addfile(_normalise(info, name), data)
            kept += 1
    return kept


def _parents(paths: Iterable[PurePosixPath]) -> list[PurePosixPath]:
    found: set[PurePosixPath] = set()
    for p in paths:
        found.update(q for q in p.parents if str(q) != ".")
    return sorted(found, key=str)


def from_dir(root: Path, paths: Iterable[str], layer: Path) -> int:
    """Write the given paths under ``root`` (relative, files or symlinks) into ``layer``.

    Their parent folders come first, with the modes they have under ``root``.
    Returns the number of members written.
    """
    files = sorted({PurePosixPath(_clean(p)) for p in paths}, key=str)
    written = 0
    with (
        gzip.open(layer, "wb", compresslevel=GZIP_LEVEL) as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as out,
    ):
        for rel in [*_parents(files), *files]:
            path = root / rel
            info = out.gettarinfo(str(path), arcname=str(rel))
            if info.isdir() and rel in files:
                continue  # folders are written as parents only
            _normalise(info, str(rel))
            if info.isreg():
                with path.open("rb") as data:
                    out.addfile(info, data)
            else:
                out.addfile(info)
            written += 1
    return written


def walk(root: Path, under: str) -> list[str]:
    """Every file and symlink below ``root/under``, as paths relative to ``root``."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root / under):
        base = Path(dirpath)
        for name in filenames:
            found.append((base / name).relative_to(root).as_posix())
        for name in dirnames:
            if (base / name).is_symlink():
                found.append((base / name).relative_to(root).as_posix())
    return found
