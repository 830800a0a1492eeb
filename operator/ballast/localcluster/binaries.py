"""Build, key and find the control-plane binaries (etcd, kube-*, kubectl, kwok, helm).

The binaries are built from the pinned Go wrapper modules in ``hack/`` by
``hack/build.sh`` into ``<cache>/bin/<key>/``. The key is the Kubernetes
version plus a short sha256 over everything that decides what gets built
(``{go.mod,go.sum,*.go}`` of the :data:`CONTROL_PLANE_MODULES` wrappers and the
selected ``hack/k8s*``, ``hack/build.sh`` and ``go version``), so a change to a
pin or to the Go toolchain gives a new directory and an old one is never reused
by mistake. A complete directory holds all of :data:`BINARIES` and a
``ballast-bins.json`` manifest.

Tools (Prometheus, promtool) are built by the same script but keyed and cached
apart (:mod:`ballast.localcluster.tools`): their wrapper folders are not
inputs here, and their sections of ``build.sh`` (between ``# >>> tool NAME``
and ``# <<< tool NAME``) are cut out before ``build.sh`` is hashed, so adding
or changing a tool never rebuilds Kubernetes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import orjson

from ballast.localcluster.buildprogress import (
    DEFAULT_COMPONENTS,
    BuildProgress,
    go_cache_dir,
    previous_steps,
)
from ballast.localcluster.errors import BuildError, GoMissingError, MissingBinariesError
from ballast.localcluster.processes import tail
from ballast.logs import kv

log = logging.getLogger(__name__)

BINARIES: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
)
# The wrapper folders (beside the selected hack/k8s*) whose files key the control plane.
CONTROL_PLANE_MODULES: tuple[str, ...] = ("etcd", "helm", "kwok")
MANIFEST = "ballast-bins.json"
PROGRESS_EVERY_S = 30.0  # a "still building" line this often during a build
ENV_CACHE = "BALLAST_CACHE"
ENV_BIN_DIR = "BALLAST_BIN_DIR"
ENV_HACK_DIR = "BALLAST_HACK_DIR"
# Selects another Kubernetes minor than the newest one: its wrapper module is
# hack/k8s-<minor>/ (e.g. BALLAST_K8S_VERSION=1.35 -> hack/k8s-1.35).
ENV_K8S_VERSION = "BALLAST_K8S_VERSION"

_K8S_REQUIRE = re.compile(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\d+\.\d+\.\d+\S*)", re.M)
_GO_DIRECTIVE = re.compile(r"^go\s+(\d+\.\d+(?:\.\d+)?)", re.M)
# A tool's own lines in build.sh (the marker lines included).
_TOOL_SECTION = re.compile(r"^[ \t]*# >>> tool (\S+)\n.*?^[ \t]*# <<< tool \1\n", re.M | re.S)


def cache_dir() -> Path:
    """``$BALLAST_CACHE``, or ``~/.cache/ballast``."""
    return Path(os.environ.get(ENV_CACHE) or "~/.cache/ballast").expanduser()


def hack_dir() -> Path:
    """The repository's ``hack/`` folder (``$BALLAST_HACK_DIR`` overrides it)."""
    env = os.environ.get(ENV_HACK_DIR)
    # operator/ballast/localcluster/binaries.py -> the repository root is three levels up.
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "hack"
    if not (path / "build.sh").is_file():
        raise MissingBinariesError(
            f"no hack/build.sh at {path}: run from a checkout of the Ballast repository, "
            f"or set {ENV_HACK_DIR} to its hack/ folder (or {ENV_BIN_DIR} to built binaries)"
        )
    return path


def k8s_module(hack: Path) -> str:
    """The wrapper module folder (under ``hack/``) of the selected Kubernetes version.

    ``hack/k8s`` pins the newest supported minor; ``$BALLAST_K8S_VERSION``
    (``1.35``, or ``v1.35.4`` whose minor is used) selects ``hack/k8s-1.35``.
    """
    want = os.environ.get(ENV_K8S_VERSION, "").strip().lstrip("v")
    if not want:
        return "k8s"
    minor = ".".join(want.split(".")[:2])
    if minor == ".".join(kubernetes_version(hack, "k8s").lstrip("v").split(".")[:2]):
        return "k8s"
    folder = f"k8s-{minor}"
    if not (hack / folder / "go.mod").is_file():
        known = sorted(p.parent.name.removeprefix("k8s-") for p in hack.glob("k8s-*/go.mod"))
        newest = kubernetes_version(hack, "k8s")
        raise BuildError(
            f"{ENV_K8S_VERSION}={want}: no wrapper module hack/{folder}; "
            f"available: {', '.join([newest, *known])}"
        )
    return folder


def kubernetes_version(hack: Path, module: str | None = None) -> str:
    """The ``k8s.io/kubernetes`` version pinned in the selected wrapper (e.g. ``v1.37.2``)."""
    gomod = hack / (module or k8s_module(hack)) / "go.mod"
    match = _K8S_REQUIRE.search(gomod.read_text())
    if not match:
        raise BuildError(f"no k8s.io/kubernetes requirement in {gomod}")
    return match.group(1)


def minimum_go(hack: Path) -> str:
    """The highest ``go`` directive among the wrapper modules: the oldest Go that builds them."""
    found = [_GO_DIRECTIVE.search(p.read_text()) for p in sorted(hack.glob("*/go.mod"))]
    versions = [tuple(int(x) for x in m.group(1).split(".")) for m in found if m]
    return ".".join(str(x) for x in max(versions)) if versions else "1.24"


def module_files(hack: Path, *modules: str) -> list[Path]:
    """``{go.mod,go.sum,*.go}`` under the named wrapper folders of ``hack/``."""
    files: set[Path] = set()
    for module in modules:
        for pattern in ("go.mod", "go.sum", "*.go"):
            files.update((hack / module).rglob(pattern))
    return sorted(files, key=lambda p: p.relative_to(hack).as_posix())


def hack_files(hack: Path) -> list[Path]:
    """Every file whose content decides what the control-plane build produces, stably ordered.

    ``build.sh`` is one of them, hashed without its tool sections (:func:`script_bytes`).
    """
    # Only the selected Kubernetes wrapper decides this build; tool folders never do.
    files = [hack / "build.sh", *module_files(hack, *CONTROL_PLANE_MODULES, k8s_module(hack))]
    return sorted(files, key=lambda p: p.relative_to(hack).as_posix())


def tool_sections(script: str) -> dict[str, str]:
    """The ``# >>> tool NAME`` ... ``# <<< tool NAME`` blocks of ``build.sh``, joined per name."""
    found: dict[str, str] = {}
    for match in _TOOL_SECTION.finditer(script):
        found[match.group(1)] = found.get(match.group(1), "") + match.group(0)
    return found


def script_bytes(hack: Path, keep_tool: str | None = None) -> bytes:
    """``build.sh`` with every tool section cut out, except ``keep_tool``'s."""
    text = (hack / "build.sh").read_text()

    def cut(match: re.Match[str]) -> str:
        return match.group(0) if match.group(1) == keep_tool else ""

    return _TOOL_SECTION.sub(cut, text).encode()


def digest_files(hack: Path, files: list[Path], keep_tool: str | None = None) -> str:
    """sha256 (hex) over the relative paths and contents of ``files`` (build.sh: its cut)."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(hack).as_posix().encode() + b"\0")
        data = script_bytes(hack, keep_tool) if path == hack / "build.sh" else path.read_bytes()
        h.update(data + b"\0")
    return h.hexdigest()


def hack_digest(hack: Path) -> str:
    """sha256 (hex) over the relative paths and contents of :func:`hack_files`."""
    return digest_files(hack, hack_files(hack))


def go_version(hack: Path) -> str:
    """The output of ``go version`` as the build will see it (local toolchain only)."""
    go = shutil.which("go")
    if go is None:
        raise GoMissingError(
            f"`go` is not on PATH. Building the control-plane binaries needs Go "
            f">= {minimum_go(hack)} (https://go.dev/dl/); or point {ENV_BIN_DIR} at a folder "
            f"that already holds {', '.join(BINARIES)}."
        )
    env = {**os.environ, "GOTOOLCHAIN": "local"}
    out = subprocess.run(
        [go, "version"], cwd=hack, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise GoMissingError(f"`go version` failed: {out.stderr.strip()}")
    return out.stdout.strip()


def build_key(hack: Path, go: str | None = None) -> str:
    """``<kubernetes version>-<12 hex of sha256(hack digest, go version)>``."""
    go = go if go is not None else go_version(hack)
    digest = hashlib.sha256(f"{hack_digest(hack)}\n{go}\n".encode()).hexdigest()[:12]
    return f"{kubernetes_version(hack)}-{digest}"


def missing_binaries(directory: Path) -> list[str]:
    """The names of :data:`BINARIES` not present (as executables) in ``directory``."""
    return [b for b in BINARIES if not os.access(directory / b, os.X_OK)]


def _from_manifest(cache: Path, digest: str) -> Path | None:
    """Without Go, the newest complete build of the same hack/ files (any Go version)."""
    candidates: list[tuple[float, Path]] = []
    for manifest in (cache / "bin").glob(f"*/{MANIFEST}"):
        try:
            doc = orjson.loads(manifest.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if doc.get("hackDigest") == digest and not missing_binaries(manifest.parent):
            candidates.append((manifest.stat().st_mtime, manifest.parent))
    return max(candidates)[1] if candidates else None


def resolve_bin_dir(cache: Path | None = None) -> Path:
    """The folder holding all :data:`BINARIES`, or an error that says how to get them.

    ``$BALLAST_BIN_DIR`` wins. Otherwise the keyed cache folder; when ``go``
    is missing, a cached build of the same ``hack/`` files is used instead.
    """
    env = os.environ.get(ENV_BIN_DIR)
    if env:
        directory = Path(env).expanduser()
        missing = missing_binaries(directory)
        if missing:
            raise MissingBinariesError(
                f"{ENV_BIN_DIR}={directory} lacks {', '.join(missing)}; "
                f"unset it and run `ballast cluster build` (or `make bins`)"
            )
        return directory
    cache = cache or cache_dir()
    hack = hack_dir()
    try:
        directory = cache / "bin" / build_key(hack)
    except GoMissingError:
        found = _from_manifest(cache, hack_digest(hack))
        if found is None:
            raise
        log.warning("go not found; using a cached build", extra=kv(bin_dir=found))
        return found
    missing = missing_binaries(directory)
    if missing:
        raise MissingBinariesError(
            f"control-plane binaries not built ({', '.join(missing)} missing in {directory}): "
            f"run `ballast cluster build` (or `make bins`); a cold build takes minutes, once"
        )
    return directory


def _write_manifest(
    directory: Path,
    key: str,
    hack: Path,
    go: str,
    seconds: float,
    steps: dict[str, dict[str, float]] | None = None,
) -> None:
    doc = {
        "key": key,
        "kubernetesVersion": kubernetes_version(hack),
        "hackDigest": hack_digest(hack),
        "goVersion": go,
        "builtAt": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "buildSeconds": round(seconds, 1),
    }
    if steps:
        doc["steps"] = steps  # per component: seconds, packages (the next build's yardstick)
    (directory / MANIFEST).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def install_dir(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final`` atomically, replacing an older ``final`` if any."""
    old = final.with_name(f".old-{final.name}-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def adopt(source: Path, cache: Path | None = None, seconds: float = 0.0) -> Path:
    """Move a folder built by ``hack/build.sh`` outside this module into its keyed place."""
    hack = hack_dir()
    go = go_version(hack)
    key = build_key(hack, go)
    missing = missing_binaries(source)
    if missing:
        raise MissingBinariesError(f"{source} lacks {', '.join(missing)}")
    final = (cache or cache_dir()) / "bin" / key
    final.parent.mkdir(parents=True, exist_ok=True)
    _write_manifest(source, key, hack, go, seconds)
    install_dir(source, final)
    log.info("adopted binaries", extra=kv(source=source, bin_dir=final))
    return final


def run_script(
    hack: Path,
    out_dir: Path,
    components: list[str],
    log_path: Path,
    env: dict[str, str],
    progress: BuildProgress | None = None,
) -> tuple[int, float]:
    """Run ``hack/build.sh out_dir components...`` with its output in ``log_path``.

    Each ``==>`` step is logged as it starts with its place among the
    components, and every :data:`PROGRESS_EVERY_S` while it runs a line says
    how far it is (:class:`~ballast.localcluster.buildprogress.BuildProgress`:
    seconds, packages compiled, modules downloaded, share of the last build).
    Returns the exit status and the seconds taken.
    """
    started = time.monotonic()
    progress = progress or BuildProgress(tuple(components) or DEFAULT_COMPONENTS)
    if progress.gocache is None:
        progress.gocache = go_cache_dir()
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            ["bash", str(hack / "build.sh"), str(out_dir), *components],
            cwd=hack,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        done = threading.Event()

        def heartbeat() -> None:
            # A cold Kubernetes build is many silent minutes: say how far it is.
            while not done.wait(PROGRESS_EVERY_S):
                msg, fields = progress.status()
                log.info(msg, extra=kv(**fields))

        beat = threading.Thread(target=heartbeat, name="build-progress", daemon=True)
        beat.start()
        try:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                began = progress.feed(line)
                if began:
                    log.info(began, extra=kv(elapsed_s=round(time.monotonic() - started)))
            rc = proc.wait()
        finally:
            done.set()
    return rc, time.monotonic() - started


def build(cache: Path | None = None, force: bool = False) -> Path:
    """Build all :data:`BINARIES` into the keyed cache folder (reused when complete)."""
    cache = cache or cache_dir()
    hack = hack_dir()
    go = go_version(hack)
    key = build_key(hack, go)
    final = cache / "bin" / key
    if not force and not missing_binaries(final):
        log.info("binaries cached", extra=kv(bin_dir=final))
        return final
    (cache / "logs").mkdir(parents=True, exist_ok=True)
    log_path = cache / "logs" / f"build-{key}.log"
    # Same filesystem as the final folder, so the closing rename is atomic.
    tmp = cache / "bin" / f".build-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log.info("building binaries", extra=kv(key=key, log=log_path, go=go))
    progress = BuildProgress(DEFAULT_COMPONENTS, previous_steps(cache, MANIFEST))
    env = {"BALLAST_K8S_MODULE": k8s_module(hack)}
    rc, seconds = run_script(hack, tmp, [], log_path, env, progress)
    missing = missing_binaries(tmp)
    if rc != 0 or missing:
        shutil.rmtree(tmp, ignore_errors=True)
        why = f"exit status {rc}" if rc != 0 else f"{', '.join(missing)} not produced"
        raise BuildError(
            f"hack/build.sh failed ({why}); full log: {log_path}\n"
            f"--- last lines of {log_path.name} ---\n{tail(log_path)}"
        )
    _write_manifest(tmp, key, hack, go, seconds, progress.finish())
    install_dir(tmp, final)
    log.info("binaries built", extra=kv(bin_dir=final, seconds=round(seconds)))
    return final
