"""Cache roots and their layouts: which entries of a root are items, and under what name.

A root is ``KIND=PATH[:LAYOUT]`` (the agent's ``--cache-root``). In the ``hf``
layout (the Hugging Face hub cache) ``models--<org>--<name>`` is the model
``<org>/<name>`` and ``models--<name>`` the model ``<name>`` (``datasets--``
for datasets; other kinds and ``.locks`` are ignored); in the ``plain``
layout every directory ``<name>`` is the item ``<name>``. A name must be
usable as a cache key (``valid_name``); one that is not is a problem the
scanner counts. :class:`FileSystem` is the seam tests use to inject faults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

KINDS = ("model", "dataset")
LAYOUTS = ("hf", "plain")
HF_PREFIX = {"model": "models--", "dataset": "datasets--"}
MAX_NAME = 253  # the record's maxLength for an item name
SKIP = frozenset({"lost+found"})  # a file system's root holds one; never an item

DIR, FILE, LINK, OTHER = "dir", "file", "link", "other"


@dataclass(frozen=True, slots=True)
class CacheRoot:
    """One configured cache directory."""

    kind: str  # model | dataset
    path: str
    layout: str = "plain"  # hf | plain


def parse_root(text: str) -> CacheRoot:
    """``KIND=PATH[:LAYOUT]`` (the ``--cache-root`` flag); raises ValueError when malformed.

    ``:hf`` or ``:plain`` at the end is the layout (default ``plain``); any
    other colon belongs to the path.
    """
    kind, sep, rest = text.partition("=")
    if not sep or kind not in KINDS:
        raise ValueError(f"{text!r}: expected KIND=PATH[:LAYOUT], KIND one of {', '.join(KINDS)}")
    path, layout = rest, "plain"
    head, colon, tail = rest.rpartition(":")
    if colon and tail in LAYOUTS:
        path, layout = head, tail
    if not path:
        raise ValueError(f"{text!r}: the path is empty")
    return CacheRoot(kind, os.path.abspath(path), layout)


def item_name(root: CacheRoot, entry: str) -> tuple[str | None, bool]:
    """The item an entry of ``root`` is, and whether the entry is a problem (a bad name).

    ``(None, False)``: not an item of this root, silently (hidden entries,
    ``lost+found``, the other kind in a hub cache, its ``.locks``).
    """
    if entry.startswith(".") or entry in SKIP:
        return None, False
    name = entry
    if root.layout == "hf":
        prefix = HF_PREFIX[root.kind]
        if not entry.startswith(prefix):
            return None, False
        parts = entry[len(prefix) :].split("--")
        if len(parts) > 2 or not all(parts):
            return None, True
        name = "/".join(parts)
    return (name, False) if valid_name(name) else (None, True)


def valid_name(name: str) -> bool:
    """Whether ``name`` can be matched from a pod's ``ballast.dev/models`` list.

    Printable (an undecodable byte is a surrogate, not printable), no
    whitespace, no comma (the list separator), at most ``MAX_NAME`` characters.
    """
    return (
        0 < len(name) <= MAX_NAME
        and name.isprintable()
        and "," not in name
        and not any(c.isspace() for c in name)
    )


class FileSystem(Protocol):
    """The calls the scanner makes (tests inject faults and count calls)."""

    def lstat(self, path: str) -> os.stat_result:
        """``os.lstat``."""
        ...

    def stat(self, path: str) -> os.stat_result:
        """``os.stat`` (follows symlinks)."""
        ...

    def listdir(self, path: str) -> list[tuple[str, str]]:
        """Names in ``path`` with their type (``DIR``, ``FILE``, ``LINK``, ``OTHER``)."""
        ...

    def capacity(self, path: str) -> int:
        """The size in bytes of the file system holding ``path``."""
        ...


class OsFileSystem:
    """The real file system; types come from ``readdir``'s d_type, without a stat."""

    def lstat(self, path: str) -> os.stat_result:
        """``os.lstat``."""
        return os.lstat(path)

    def stat(self, path: str) -> os.stat_result:
        """``os.stat``."""
        return os.stat(path)

    def listdir(self, path: str) -> list[tuple[str, str]]:
        """``os.scandir`` with each entry's type."""
        out = []
        with os.scandir(path) as it:
            for e in it:
                if e.is_symlink():
                    kind = LINK
                elif e.is_dir(follow_symlinks=False):
                    kind = DIR
                elif e.is_file(follow_symlinks=False):
                    kind = FILE
                else:
                    kind = OTHER
                out.append((e.name, kind))
        return out

    def capacity(self, path: str) -> int:
        """``statvfs``: total blocks times fragment size."""
        st = os.statvfs(path)
        return st.f_blocks * st.f_frsize
