"""The node's model and dataset cache inventory: what lies under the configured cache roots.

Each root has a kind (``model`` or ``dataset``) and a layout:

- ``hf``: the Hugging Face hub cache. ``<root>/models--<org>--<name>/`` is the
  model ``<org>/<name>`` (``models--<name>``: ``<name>``; ``datasets--`` for
  datasets); its ``snapshots/<rev>/`` files are symlinks into ``blobs/``. An
  entry without a ``snapshots/`` directory is a download that has not
  finished a file yet and is not an item.
- ``plain``: every directory ``<root>/<name>/`` is the item ``<name>``.

An item's size is the sum of ``st_size`` of the regular files in its tree,
each inode once; symlinks inside an item are never followed (a snapshot link
costs nothing, its blob is counted under ``blobs/``), so there are no loops to
fall into. Only a top-level entry that is a symlink to a directory is
followed, and one that points at the root or above it is a ``symlink_loop``.
Its last use is the newest atime or mtime of its files (and mtime of its
directories; their atime is set by the scanner's own listing): a read sets
atime, a download sets mtime. Under ``relatime`` (Linux's default) atime moves
on the first read after a write and then at most once a day, under
``noatime`` never, so the value is a day-granular "used since", not a
per-read stamp; that is also why refreshing it at each full scan loses nothing.

Scans are incremental. Every directory seen is kept with its inode and mtime
and what listing it found. A directory's mtime changes when an entry is
added, removed or renamed in it, so a rescan ``lstat``s each known directory
and lists only those whose (inode, mtime) moved; an item whose directories
are all unchanged keeps its cached size. A file rewritten in place changes no
directory, and atimes change nothing at all: every ``full_every`` scans a full
scan lists and stats everything again. A directory whose mtime is within
``RACY_S`` of now when listed is listed again at the next scan (it may change
again within the file system's timestamp granularity, after the listing).

Nothing here raises on what it finds: an unreadable directory, a file that
vanishes mid-scan, a symlink loop, a dangling link, a name that cannot be a
cache key are counted by reason in the scan's ``problems`` and skipped.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ballast.agent.cache_layout import (
    DIR,
    FILE,
    LINK,
    CacheRoot,
    FileSystem,
    OsFileSystem,
    item_name,
)
from ballast.api.wellknown import CacheInventory, CacheItem
from ballast.clock import Clock
from ballast.logs import kv

log = logging.getLogger(__name__)

MAX_DEPTH = 64  # below an item's directory; deeper trees are cut (``too_deep``)
RACY_S = 2.0


@dataclass(frozen=True, slots=True)
class ScannedItem:
    """One model or dataset found in a cache root."""

    kind: str
    name: str
    bytes: int
    last_used: float  # seconds since the epoch: newest atime/mtime in its tree

    @property
    def key(self) -> str:
        """``kind/name``, as the scheduler matches it."""
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class ScanStats:
    """What one scan cost: the proof that a steady-state rescan is cheap."""

    dirs_checked: int = 0  # lstat of a directory
    dirs_listed: int = 0  # readdir of a directory
    files_statted: int = 0  # lstat of a file or stat of a link's target
    full: bool = False


@dataclass(frozen=True, slots=True)
class CacheScan:
    """One scan's result: items by (kind, name), capacity, problems by reason."""

    items: tuple[ScannedItem, ...] = ()
    capacity_bytes: int = 0
    problems: Mapping[str, int] = field(default_factory=dict)
    stats: ScanStats = ScanStats()
    seconds: float = 0.0

    def inventory(self) -> CacheInventory:
        """The scheduler's view (``ballast.api.wellknown.CacheInventory``)."""
        return CacheInventory(
            self.capacity_bytes, tuple(CacheItem(i.kind, i.name, i.bytes) for i in self.items)
        )


_File = tuple[int, int, int, int]  # dev, inode, size, newest of atime/mtime (ns)


@dataclass(frozen=True, slots=True)
class _Dir:
    """What listing a directory found, valid while its (inode, mtime) stays ``key``."""

    key: tuple[int, int] | None  # None: list it again next scan (racy)
    subdirs: tuple[str, ...]
    links: tuple[str, ...]
    files: tuple[_File, ...]
    problems: tuple[str, ...]


@dataclass(slots=True)
class _Pass:
    """The state of one scan in progress."""

    full: bool
    now_ns: int
    seen: set[str] = field(default_factory=set)
    problems: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    dirs_checked: int = 0
    dirs_listed: int = 0
    files_statted: int = 0

    def problem(self, reason: str, path: str, n: int = 1) -> None:
        self.problems[reason] += n
        self.examples.setdefault(reason, path)


def _reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "vanished"
    if exc.errno == errno.ELOOP:
        return "symlink_loop"
    return "unreadable"


class CacheScanner:
    """Scans ``roots`` incrementally; one instance keeps the state between scans.

    ``scan()`` is synchronous (the agent runs it on a worker thread) and never
    raises on what it finds. ``capacity_bytes`` overrides the roots' file
    system sizes (0: the sum of ``statvfs`` over the distinct file systems).
    """

    def __init__(
        self,
        roots: Iterable[CacheRoot],
        clock: Clock,
        *,
        fs: FileSystem | None = None,
        capacity_bytes: int = 0,
        full_every: int = 60,
    ) -> None:
        self.roots = tuple(roots)
        self.clock = clock
        self.fs: FileSystem = fs or OsFileSystem()
        self.capacity_bytes = capacity_bytes
        self.full_every = max(1, full_every)
        self.scans = 0
        self._dirs: dict[str, _Dir] = {}
        self._items: dict[str, tuple[int, int]] = {}  # item dir -> (bytes, files' newest ns)
        self._reported: dict[str, int] = {}

    def scan(self) -> CacheScan:
        """Scan every root once (fully every ``full_every`` scans, the first included)."""
        started = self.clock.monotonic()
        p = _Pass(self.scans % self.full_every == 0, int(self.clock.now().timestamp() * 1e9))
        self.scans += 1
        found: dict[tuple[str, str], ScannedItem] = {}
        item_dirs: set[str] = set()
        for root in self.roots:
            for item, path in self._root(p, root):
                item_dirs.add(path)
                old = found.get((item.kind, item.name))
                if old is not None:  # the same item in two roots: one copy serves the pod
                    item = ScannedItem(item.kind, item.name, max(old.bytes, item.bytes),
                                       max(old.last_used, item.last_used))  # fmt: skip
                found[(item.kind, item.name)] = item
        self._dirs = {k: v for k, v in self._dirs.items() if k in p.seen}
        self._items = {k: v for k, v in self._items.items() if k in item_dirs}
        result = CacheScan(
            items=tuple(found[k] for k in sorted(found)),
            capacity_bytes=self.capacity_bytes or self._capacity(),
            problems=dict(p.problems),
            stats=ScanStats(p.dirs_checked, p.dirs_listed, p.files_statted, p.full),
            seconds=self.clock.monotonic() - started,
        )
        if result.problems != self._reported:  # log when the picture changes, not every scan
            self._reported = dict(result.problems)
            if result.problems:
                log.warning("cache scan problems",
                            extra=kv(problems=result.problems, examples=p.examples))  # fmt: skip
            else:
                log.info("cache scan problems cleared")
        return result

    def _capacity(self) -> int:
        total, devices = 0, set()
        for root in self.roots:
            try:
                dev = self.fs.stat(root.path).st_dev
                if dev not in devices:
                    devices.add(dev)
                    total += self.fs.capacity(root.path)
            except OSError:
                pass  # a missing root is already counted by the scan
        return total

    def _root(self, p: _Pass, root: CacheRoot) -> Iterable[tuple[ScannedItem, str]]:
        got = self._dir(p, root.path, missing="root_missing")
        if got is None:
            return
        top = got[0]
        real_root = os.path.realpath(root.path)
        for entry in sorted((*top.subdirs, *top.links)):
            name, bad = item_name(root, entry)
            if bad:
                p.problem("invalid_name", os.path.join(root.path, entry))
            if name is None:
                continue
            path = os.path.join(root.path, entry)
            if entry in top.links:
                resolved = self._follow(p, path, real_root)
                if resolved is None:
                    continue
                path = resolved
            walked = self._item(p, path)
            if walked is None:
                continue
            if root.layout == "hf" and "snapshots" not in self._dirs[path].subdirs:
                continue  # no file of it has finished downloading yet
            size, newest_ns = walked
            yield ScannedItem(root.kind, name, size, newest_ns / 1e9), path

    def _follow(self, p: _Pass, link: str, real_root: str) -> str | None:
        """A top-level symlink's directory, or None (counted when it is a problem)."""
        try:
            real = os.path.realpath(link, strict=True)
            is_dir = stat.S_ISDIR(self.fs.stat(real).st_mode)
        except OSError as exc:
            p.problem("dangling_link" if isinstance(exc, FileNotFoundError) else _reason(exc), link)
            return None
        if real == real_root or real_root.startswith(real.rstrip(os.sep) + os.sep):
            p.problem("symlink_loop", link)
            return None
        return real if is_dir else None

    def _item(self, p: _Pass, path: str) -> tuple[int, int] | None:
        """(bytes, newest time in ns) of the tree at ``path``; None if unreadable.

        Newest of the files' atime and mtime and the directories' mtime; not the
        directories' atime, which the scanner's own listing sets.
        """
        changed, dirs_newest, nodes = False, 0, []
        stack = [(path, 0)]
        while stack:
            d, depth = stack.pop()
            if depth > MAX_DEPTH:
                p.problem("too_deep", d)
                continue
            got = self._dir(p, d)
            if got is None:
                if d == path:
                    return None
                changed = True
                continue
            node, relisted, newest = got
            changed |= relisted
            dirs_newest = max(dirs_newest, newest)
            nodes.append(node)
            stack.extend((os.path.join(d, s), depth + 1) for s in node.subdirs)
        if changed or path not in self._items:
            inodes: set[tuple[int, int]] = set()
            size, files_newest = 0, 0
            for node in nodes:
                for dev, ino, n, t in node.files:
                    if (dev, ino) not in inodes:
                        inodes.add((dev, ino))
                        size += n
                        files_newest = max(files_newest, t)
            self._items[path] = (size, files_newest)
        size, files_newest = self._items[path]
        return size, max(files_newest, dirs_newest)

    def _dir(self, p: _Pass, path: str, missing: str = "vanished") -> tuple[_Dir, bool, int] | None:
        """The directory's listing (fresh or cached), whether it was listed now, its mtime."""
        p.dirs_checked += 1
        try:
            st = self.fs.lstat(path)
        except OSError as exc:
            p.problem(missing if isinstance(exc, FileNotFoundError) else _reason(exc), path)
            return None
        if not stat.S_ISDIR(st.st_mode):
            p.problem("vanished", path)  # replaced by something else since its parent was listed
            return None
        p.seen.add(path)
        newest = st.st_mtime_ns
        key = (st.st_ino, st.st_mtime_ns)
        node = self._dirs.get(path)
        if node is not None and node.key == key and not p.full:
            for reason in node.problems:
                p.problem(reason, path)
            return node, False, newest
        racy = p.now_ns - st.st_mtime_ns < RACY_S * 1e9
        listed = self._list(p, path, None if racy else key)
        if listed is None:
            self._dirs.pop(path, None)
            return None
        self._dirs[path] = listed
        return listed, True, newest

    def _list(self, p: _Pass, path: str, key: tuple[int, int] | None) -> _Dir | None:
        p.dirs_listed += 1
        try:
            entries = self.fs.listdir(path)
        except OSError as exc:
            p.problem(_reason(exc), path)
            return None
        subdirs, links, files, problems = [], [], [], []
        for name, kind in entries:
            full = os.path.join(path, name)
            if kind == DIR:
                subdirs.append(name)
            elif kind in (FILE, LINK):
                p.files_statted += 1
                try:
                    st = self.fs.lstat(full) if kind == FILE else self.fs.stat(full)
                except OSError as exc:
                    reason = _reason(exc)
                    problems.append("dangling_link" if kind == LINK and reason == "vanished"
                                    else reason)  # fmt: skip
                    continue
                if kind == LINK:
                    links.append(name)
                elif stat.S_ISREG(st.st_mode):
                    files.append((st.st_dev, st.st_ino, st.st_size,
                                  max(st.st_atime_ns, st.st_mtime_ns)))  # fmt: skip
        for reason in problems:
            p.problem(reason, path)
        return _Dir(key, tuple(subdirs), tuple(links), tuple(files), tuple(problems))
