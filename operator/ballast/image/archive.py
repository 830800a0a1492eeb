"""Read an image archive (``docker save`` tarball or OCI layout tar) and unpack its layers.

Used by the tests and by anyone who wants to look inside ``make image``'s
output without a container runtime: :func:`read` gives the config and the
layer members, :func:`unpack` applies the layers in order into a folder,
whiteouts included (``.wh.<name>`` removes ``<name>``, ``.wh..wh..opq``
empties its folder of what lower layers put there).
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True, slots=True)
class Image:
    """One image in an archive: its tags, config document and layer member names."""

    tags: tuple[str, ...]
    config: dict[str, Any]
    layers: tuple[str, ...]

    @property
    def settings(self) -> dict[str, Any]:
        """The config's ``config`` block (Entrypoint, User, Env, Labels, ...)."""
        block = self.config.get("config") or {}
        return dict(block)


def _json(tar: tarfile.TarFile, name: str) -> Any:
    member = tar.extractfile(name.removeprefix("./"))
    if member is None:
        raise ValueError(f"{name} is not a file in the archive")
    return orjson.loads(member.read())


def _blob(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def read(path: Path) -> Image:
    """The (first) image in the archive at ``path``."""
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        if "manifest.json" in names:  # docker save
            entry = _json(tar, "manifest.json")[0]
            return Image(
                tags=tuple(entry.get("RepoTags") or ()),
                config=_json(tar, entry["Config"]),
                layers=tuple(entry["Layers"]),
            )
        if "index.json" in names:  # OCI image layout
            descriptor = _json(tar, "index.json")["manifests"][0]
            manifest = _json(tar, _blob(descriptor["digest"]))
            tag = (descriptor.get("annotations") or {}).get("org.opencontainers.image.ref.name")
            return Image(
                tags=(tag,) if tag else (),
                config=_json(tar, _blob(manifest["config"]["digest"])),
                layers=tuple(_blob(layer["digest"]) for layer in manifest["layers"]),
            )
    raise ValueError(f"{path} has neither manifest.json nor index.json")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _inside(root: Path, name: str) -> Path:
    rel = PurePosixPath(name.removeprefix("./").lstrip("/"))
    if ".." in rel.parts:
        raise ValueError(f"layer member {name!r} leaves the root")
    return root / rel


class _Layer:
    """One layer being applied: what it wrote so far, and which folders are known safe."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: set[Path] = set()
        self.safe: set[Path] = {root}  # folders that resolve inside the root

    def check_parent(self, target: Path) -> None:
        """Refuse a member whose folder resolves outside the root (through an absolute link)."""
        folder = target.parent
        if folder in self.safe:
            return
        real = Path(os.path.realpath(folder))
        if real != self.root and self.root not in real.parents:
            raise ValueError(f"{target} would be written outside {self.root} (through {real})")
        self.safe.add(folder)

    def whiteout(self, target: Path) -> None:
        """``.wh.<name>`` removes what lower layers put at ``<name>``; the opaque marker, in
        its folder, everything lower layers put there."""
        if target.name == OPAQUE:
            children = list(target.parent.iterdir()) if target.parent.is_dir() else []
            for child in children:
                if child not in self.written:
                    self.forget(child)
                    _remove(child)
            return
        lower = target.with_name(target.name[len(WHITEOUT) :])
        if lower not in self.written:
            self.forget(lower)
            _remove(lower)

    def forget(self, path: Path) -> None:
        """Folders at or under ``path`` are no longer known (it is removed or replaced)."""
        self.safe -= {f for f in self.safe if f == path or path in f.parents}


def apply_layer(layer: tarfile.TarFile, root: Path) -> None:
    """Apply one layer onto ``root`` in a single pass over its members (a stream will do).

    Owners, modes and links are kept as they are (a root filesystem has absolute
    links, which the ``tar`` and ``data`` extraction filters refuse); no member
    may name a path outside ``root`` or be written through a link that leaves it.
    Whiteouts apply to lower layers only, never to what this layer wrote.
    """
    state = _Layer(Path(os.path.realpath(root)))
    for info in layer:
        target = _inside(state.root, info.name)
        if target == state.root:
            continue
        state.check_parent(target)
        if target.name.startswith(WHITEOUT):
            state.whiteout(target)
            continue
        keep_folder = info.isdir() and target.is_dir() and not target.is_symlink()
        if not keep_folder and os.path.lexists(target):
            state.forget(target)
            _remove(target)  # a lower layer's file, folder or link is replaced
        layer.extract(info, state.root, set_attrs=True, numeric_owner=True, filter="fully_trusted")
        state.written.add(target)


def unpack(path: Path, root: Path) -> Image:
    """Unpack every layer of the archive at ``path`` into ``root``; returns the image."""
    image = read(path)
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path) as tar:
        for name in image.layers:
            blob = tar.extractfile(name.removeprefix("./"))
            if blob is None:
                raise ValueError(f"layer {name} is not a file in {path}")
            with tarfile.open(fileobj=blob, mode="r|*") as layer:  # gzip'd or plain, one pass
                apply_layer(layer, root)
    return image
