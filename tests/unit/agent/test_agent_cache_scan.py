"""The cache inventory scanner on real temporary directories: layouts, sizes, problems, rescans."""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballast.agent.cache import CacheScan, CacheScanner, ScannedItem
from ballast.agent.cache_layout import CacheRoot, OsFileSystem, parse_root
from ballast.clock import FakeClock, SystemClock


def later_clock() -> FakeClock:
    """An hour ahead: nothing the test just wrote is within the racy window."""
    return FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def hf_model(root: Path, repo: str, files: dict[str, int], *, prefix: str = "models") -> Path:
    """A hub-cache entry: blobs, one snapshot whose files link into the blobs, a ref."""
    item = root / f"{prefix}--{repo.replace('/', '--')}"
    (item / "refs").mkdir(parents=True)
    (item / "refs" / "main").write_text("abc123")
    for n, (name, size) in enumerate(files.items()):
        write(item / "blobs" / f"sha{n}", size)
        link = item / "snapshots" / "abc123" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(item / "blobs" / f"sha{n}", link.parent))
    return item


def by_key(scan: CacheScan) -> dict[str, ScannedItem]:
    return {i.key: i for i in scan.items}


class CountingFS(OsFileSystem):
    """The real file system, counting calls; ``deny`` paths refuse listing like mode 000."""

    def __init__(self, deny: tuple[str, ...] = ()) -> None:
        self.deny = set(deny)
        self.calls: Counter[str] = Counter()

    def lstat(self, path: str) -> os.stat_result:
        self.calls["lstat"] += 1
        return super().lstat(path)

    def listdir(self, path: str) -> list[tuple[str, str]]:
        self.calls["listdir"] += 1
        if path in self.deny:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return super().listdir(path)


def test_hf_layout_counts_blobs_once_and_names_org_slash_name(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    llama = {"model.safetensors": 5000, "config.json": 70}
    hf_model(hub, "meta-llama/Llama-3-8B", llama)
    hf_model(hub, "gpt2", {"model.bin": 300})
    hf_model(hub, "org/wiki", {"data.parquet": 900}, prefix="datasets")
    (hub / "models--org--partial" / "blobs").mkdir(parents=True)  # no snapshot yet
    write(hub / "models--org--partial" / "blobs" / "x.incomplete", 10)
    (hub / ".locks" / "models--gpt2").mkdir(parents=True)
    (hub / "version.txt").write_text("1")
    (hub / "models--a--b--c").mkdir()  # not a hub repo id
    scanner = CacheScanner(
        [CacheRoot("model", str(hub), "hf"), CacheRoot("dataset", str(hub), "hf")], later_clock()
    )
    scan = scanner.scan()
    items = by_key(scan)
    assert sorted(items) == ["dataset/org/wiki", "model/gpt2", "model/meta-llama/Llama-3-8B"]
    # The blobs once (not again through the snapshot's links), plus the ref file.
    assert items["model/meta-llama/Llama-3-8B"].bytes == sum(llama.values()) + len("abc123")
    assert items["dataset/org/wiki"].bytes == 900 + len("abc123")
    assert scan.problems == {"invalid_name": 1}  # seen by the model root only
    assert scan.inventory().items[0].key == "dataset/org/wiki"


def test_plain_layout_nested_hard_links_once_hidden_and_files_ignored(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write(root / "llama-70b" / "shard-1", 1000)
    write(root / "llama-70b" / "sub" / "deeper" / "shard-2", 2000)
    os.link(root / "llama-70b" / "shard-1", root / "llama-70b" / "sub" / "same-inode")
    write(root / "mistral" / "w.bin", 7)
    write(root / ".tmp-download" / "w.bin", 99)
    write(root / "README", 5)
    (root / "lost+found").mkdir()
    scan = CacheScanner([parse_root(f"model={root}")], later_clock()).scan()
    assert {k: i.bytes for k, i in by_key(scan).items()} == {
        "model/llama-70b": 3000,
        "model/mistral": 7,
    }
    assert scan.problems == {}


def test_symlinks_top_level_followed_inside_never_loops_and_dangling_reported(
    tmp_path: Path,
) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "other-disk"
    write(elsewhere / "big-model" / "w", 400)
    write(root / "real" / "w", 10)
    root.joinpath("linked").symlink_to(elsewhere / "big-model")
    root.joinpath("self").symlink_to(root)  # walking it would count every item again
    root.joinpath("parent").symlink_to(tmp_path)
    root.joinpath("gone").symlink_to(tmp_path / "nothing")
    (root / "real" / "loop").symlink_to("loop")  # ELOOP when followed
    (root / "real" / "up").symlink_to("..")  # inside an item: never followed
    (root / "real" / "broken").symlink_to("missing")
    scan = CacheScanner([CacheRoot("model", str(root))], later_clock()).scan()
    assert {k: i.bytes for k, i in by_key(scan).items()} == {"model/linked": 400, "model/real": 10}
    assert scan.problems == {"symlink_loop": 3, "dangling_link": 2}


def test_invalid_names_are_counted_and_skipped(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for name in ("ok", "has space", "a,b", "x" * 254, "tab\there"):
        write(root / name / "f", 1)
    os.makedirs(os.path.join(os.fsencode(root), b"latin1-\xe9"))  # not UTF-8: a surrogate
    scan = CacheScanner([CacheRoot("dataset", str(root))], later_clock()).scan()
    assert [i.name for i in scan.items] == ["ok"]
    assert scan.problems == {"invalid_name": 5}


def test_unreadable_directory_is_a_problem_and_the_rest_is_counted(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write(root / "m" / "ok" / "w", 100)
    write(root / "m" / "locked" / "w", 50)
    write(root / "n" / "w", 1)
    fs = CountingFS(deny=(str(root / "m" / "locked"), str(root / "n")))
    scanner = CacheScanner([CacheRoot("model", str(root))], later_clock(), fs=fs)
    for _ in range(2):  # retried every scan, counted every scan
        scan = scanner.scan()
        assert {k: i.bytes for k, i in by_key(scan).items()} == {"model/m": 100}
        assert scan.problems == {"unreadable": 2}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 directory; see the fault test")
def test_mode_000_directory_is_unreadable(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write(root / "m" / "locked" / "w", 50)
    (root / "m" / "locked").chmod(0)
    try:
        scan = CacheScanner([CacheRoot("model", str(root))], later_clock()).scan()
    finally:
        (root / "m" / "locked").chmod(0o755)
    assert scan.problems == {"unreadable": 1}
    assert by_key(scan)["model/m"].bytes == 0


def test_missing_root_and_file_vanishing_mid_scan(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write(root / "m" / "keep", 10)
    doomed = write(root / "m" / "doomed", 20)

    class Racing(OsFileSystem):
        def listdir(self, path: str) -> list[tuple[str, str]]:
            out = super().listdir(path)
            if path == str(root / "m") and doomed.exists():
                doomed.unlink()  # deleted between readdir and its lstat
            return out

    roots = [CacheRoot("model", str(root)), CacheRoot("model", str(tmp_path / "absent"))]
    scan = CacheScanner(roots, later_clock(), fs=Racing()).scan()
    assert by_key(scan)["model/m"].bytes == 10
    assert scan.problems == {"vanished": 1, "root_missing": 1}


def test_steady_rescan_lists_nothing_and_a_change_lists_only_its_directory(
    tmp_path: Path,
) -> None:
    hub, plain = tmp_path / "hub", tmp_path / "plain"
    hf_model(hub, "org/a", {f"f{i}": 10 for i in range(20)})
    for d in range(5):
        for f in range(10):
            write(plain / "ds" / f"part{d}" / f"{f}.bin", 3)
    fs = CountingFS()
    clock = later_clock()
    roots = [CacheRoot("model", str(hub), "hf"), CacheRoot("dataset", str(plain))]
    scanner = CacheScanner(roots, clock, fs=fs, full_every=1000)
    first = scanner.scan()
    dirs = sum(1 for _ in os.walk(tmp_path)) - 1  # every directory below the roots' parent
    assert first.stats.full and first.stats.dirs_listed == dirs
    assert first.stats.files_statted == 20 * 2 + 1 + 50  # blobs, links, ref, dataset files
    fs.calls.clear()
    steady = scanner.scan()
    assert (steady.stats.dirs_listed, steady.stats.files_statted) == (0, 0)
    assert fs.calls == {"lstat": dirs}  # one lstat per known directory, nothing else
    assert steady.items == first.items
    write(plain / "ds" / "part3" / "new.bin", 1000)
    clock.advance(60)
    changed = scanner.scan()
    assert (changed.stats.dirs_listed, changed.stats.files_statted) == (1, 11)
    assert by_key(changed)["dataset/ds"].bytes == by_key(first)["dataset/ds"].bytes + 1000
    shutil.rmtree(hub / "models--org--a")
    gone = scanner.scan()
    assert [i.key for i in gone.items] == ["dataset/ds"]
    assert gone.stats.dirs_listed == 1  # the hub root itself


def test_in_place_growth_waits_for_the_full_scan(tmp_path: Path) -> None:
    root = tmp_path / "models"
    f = write(root / "m" / "w", 10)
    scanner = CacheScanner([CacheRoot("model", str(root))], later_clock(), full_every=3)
    assert scanner.scan().items[0].bytes == 10
    with f.open("ab") as out:  # no directory changes: invisible to the cheap rescan
        out.write(b"y" * 90)
    second = scanner.scan()
    assert (second.stats.full, second.items[0].bytes) == (False, 10)
    scanner.scan()
    full = scanner.scan()
    assert (full.stats.full, full.items[0].bytes) == (True, 100)


def test_directory_changed_within_the_racy_window_is_listed_again(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write(root / "m" / "w", 10)
    scanner = CacheScanner([CacheRoot("model", str(root))], SystemClock())
    scanner.scan()
    # Just written: a change in the same timestamp tick would not move the mtime.
    assert scanner.scan().stats.dirs_listed == 2
    old = time.time() - 60
    for d in (root, root / "m"):
        os.utime(d, (old, old))
    scanner.scan()
    assert scanner.scan().stats.dirs_listed == 0


def test_last_used_is_newest_file_atime_or_mtime(tmp_path: Path) -> None:
    root = tmp_path / "models"
    a, b = write(root / "m" / "a", 1), write(root / "m" / "sub" / "b", 1)
    t0 = time.time()
    os.utime(a, (t0 - 100, t0 - 500))  # read 100 s ago
    os.utime(b, (t0 - 700, t0 - 600))
    for d in (root / "m" / "sub", root / "m"):
        os.utime(d, (t0 - 5, t0 - 1000))  # a directory's atime does not count
    [item] = CacheScanner([CacheRoot("model", str(root))], later_clock()).scan().items
    assert item.last_used == pytest.approx(t0 - 100, abs=1e-3)


def test_capacity_is_the_file_system_or_the_configured_size(tmp_path: Path) -> None:
    write(tmp_path / "a" / "m" / "w", 1)
    write(tmp_path / "b" / "m" / "w", 1)
    roots = [CacheRoot("model", str(tmp_path / "a")), CacheRoot("dataset", str(tmp_path / "b"))]
    vfs = os.statvfs(tmp_path)
    assert CacheScanner(roots, later_clock()).scan().capacity_bytes == vfs.f_blocks * vfs.f_frsize
    assert CacheScanner(roots, later_clock(), capacity_bytes=123).scan().capacity_bytes == 123


def test_same_item_in_two_roots_is_one_item(tmp_path: Path) -> None:
    write(tmp_path / "a" / "m" / "w", 10)
    write(tmp_path / "b" / "m" / "w", 30)
    roots = [CacheRoot("model", str(tmp_path / "a")), CacheRoot("model", str(tmp_path / "b"))]
    assert [(i.name, i.bytes) for i in CacheScanner(roots, later_clock()).scan().items] == [
        ("m", 30)
    ]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("model=/models", CacheRoot("model", "/models", "plain")),
        ("model=/root/.cache/huggingface/hub:hf", CacheRoot("model", "/root/.cache/huggingface/hub", "hf")),
        ("dataset=/data:plain", CacheRoot("dataset", "/data", "plain")),
        ("dataset=/mnt/a:b", CacheRoot("dataset", "/mnt/a:b", "plain")),
        ("model", None),
        ("weights=/models", None),
        ("model=:hf", None),
    ],
)  # fmt: skip
def test_parse_root(text: str, want: CacheRoot | None) -> None:
    if want is None:
        with pytest.raises(ValueError):
            parse_root(text)
    else:
        assert parse_root(text) == want


files = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 4000), st.booleans()), min_size=1, max_size=25
)
mutations = st.lists(st.tuples(st.sampled_from(["add", "remove", "replace", "mkdir"]),
                               st.integers(0, 1000)), max_size=8)  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=files, changes=mutations)
def test_sizes_add_up_and_a_rescan_matches_a_fresh_full_scan(
    files: list[tuple[int, int, bool]], changes: list[tuple[str, int]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        made: list[Path] = []
        for n, (d, size, link) in enumerate(files):
            if link and made:  # a hard link to an earlier file: the same bytes
                target = Path(root / f"item{d % 2}" / f"d{d}" / f"h{n}")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(made[size % len(made)], target)
            else:
                made.append(write(root / f"item{d % 2}" / f"d{d}" / f"f{n}", size))
        scanner = CacheScanner([CacheRoot("model", str(root))], SystemClock())
        old = time.time() - 60
        for dirpath, _, _ in os.walk(root):
            os.utime(dirpath, (old, old))
        for item in scanner.scan().items:
            tree = root / item.name
            inodes = {(p.stat().st_ino, p.stat().st_size) for p in tree.rglob("*") if p.is_file()}
            assert item.bytes == sum(size for _, size in inodes)
        for op, k in changes:
            victim = made[k % len(made)]
            if op == "add":
                write(victim.parent / f"new{k}", k)
            elif op == "remove" and victim.exists():
                victim.unlink()
            elif op == "replace" and victim.exists():
                write(victim.parent / ".tmp", k)
                os.replace(victim.parent / ".tmp", victim)
            elif op == "mkdir":
                write(victim.parent / f"sub{k}" / "x", k)
        fresh = CacheScanner([CacheRoot("model", str(root))], SystemClock()).scan()
        assert [(i.key, i.bytes) for i in scanner.scan().items] == [
            (i.key, i.bytes) for i in fresh.items
        ]
