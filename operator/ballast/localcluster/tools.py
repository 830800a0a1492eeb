"""Build, key and find the tools beside the control plane (Prometheus, promtool, KEDA, crane).

A tool is built by ``hack/build.sh OUT <tool>`` from its own pinned wrapper
module (``hack/<tool>/``) into ``<cache>/tools/<tool>-<version>-<key>/``. Its
key is a short sha256 over exactly its own inputs: the wrapper's
``{go.mod,go.sum,*.go}``, ``build.sh`` without the other tools' sections, and
``go version``. The control-plane key (:mod:`ballast.localcluster.binaries`)
excludes both the wrapper folder and the tool's section of ``build.sh``, so
adding or changing a tool never rebuilds Kubernetes, while a change to the
shared part of ``build.sh`` rebuilds both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import orjson

from ballast.localcluster.binaries import (
    ENV_CACHE,
    cache_dir,
    digest_files,
    go_version,
    hack_dir,
    install_dir,
    module_files,
    run_script,
    tool_sections,
)
from ballast.localcluster.errors import BuildError, GoMissingError, MissingBinariesError
from ballast.localcluster.processes import tail
from ballast.logs import kv

log = logging.getLogger(__name__)

MANIFEST = "ballast-tool.json"


@dataclass(frozen=True, slots=True)
class Tool:
    """One separately keyed build: its ``build.sh`` component, wrapper folder and outputs."""

    name: str  # the build.sh component and the name of its ``# >>> tool`` section
    module: str  # its wrapper folder under hack/
    require: str  # the Go module whose pinned version names the cache folder
    binaries: tuple[str, ...]

    @property
    def env_dir(self) -> str:
        """The variable that points at a folder of already built binaries instead."""
        return f"BALLAST_{self.name.upper()}_DIR"


PROMETHEUS = Tool(
    name="prometheus",
    module="prometheus",
    require="github.com/prometheus/prometheus",
    binaries=("prometheus", "promtool"),
)
KEDA = Tool(
    name="keda",
    module="keda",
    require="github.com/kedacore/keda/v2",
    binaries=("keda", "keda-adapter"),  # cmd/operator and cmd/adapter; CRDs in crds/
)
CRANE = Tool(
    name="crane",
    module="crane",
    require="github.com/google/go-containerregistry",
    binaries=("crane",),  # `make image` assembles the image archive with it (ballast.image)
)
# What `ballast cluster build` builds beside the control plane; crane is built by `make image`.
TOOLS: tuple[Tool, ...] = (PROMETHEUS, KEDA)


def tool_files(hack: Path, tool: Tool) -> list[Path]:
    """The files whose content decides what ``tool``'s build produces, in a stable order."""
    if tool.name not in tool_sections((hack / "build.sh").read_text()):
        raise BuildError(f"hack/build.sh has no `# >>> tool {tool.name}` section")
    files = [hack / "build.sh", *module_files(hack, tool.module)]
    return sorted(files, key=lambda p: p.relative_to(hack).as_posix())


def pinned_version(hack: Path, tool: Tool) -> str:
    """The version of ``tool.require`` pinned in its wrapper's go.mod (e.g. ``v0.316.0``)."""
    gomod = hack / tool.module / "go.mod"
    pattern = rf"^\s*(?:require\s+)?{re.escape(tool.require)}\s+(v\d+\.\d+\.\d+\S*)"
    match = re.search(pattern, gomod.read_text(), re.M)
    if not match:
        raise BuildError(f"no {tool.require} requirement in {gomod}")
    return match.group(1)


def tool_digest(hack: Path, tool: Tool) -> str:
    """sha256 (hex) over :func:`tool_files`, ``build.sh`` cut to the shared part and this tool."""
    return digest_files(hack, tool_files(hack, tool), keep_tool=tool.name)


def tool_key(hack: Path, tool: Tool, go: str | None = None) -> str:
    """``<tool>-<pinned version>-<12 hex of sha256(tool digest, go version)>``."""
    go = go if go is not None else go_version(hack)
    digest = hashlib.sha256(f"{tool_digest(hack, tool)}\n{go}\n".encode()).hexdigest()[:12]
    return f"{tool.name}-{pinned_version(hack, tool)}-{digest}"


def missing(tool: Tool, directory: Path) -> list[str]:
    """The names of ``tool.binaries`` not present (as executables) in ``directory``."""
    return [b for b in tool.binaries if not os.access(directory / b, os.X_OK)]


def _from_manifest(cache: Path, tool: Tool, digest: str) -> Path | None:
    """Without Go, the newest complete build of the same inputs (any Go version)."""
    found: list[tuple[float, Path]] = []
    for manifest in (cache / "tools").glob(f"{tool.name}-*/{MANIFEST}"):
        try:
            doc = orjson.loads(manifest.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if doc.get("digest") == digest and not missing(tool, manifest.parent):
            found.append((manifest.stat().st_mtime, manifest.parent))
    return max(found)[1] if found else None


def resolve(tool: Tool, cache: Path | None = None) -> Path:
    """The folder holding ``tool.binaries``, or an error that says how to build them.

    ``$BALLAST_<TOOL>_DIR`` wins; then the keyed cache folder; when ``go`` is
    missing, a cached build of the same inputs.
    """
    env = os.environ.get(tool.env_dir)
    if env:
        directory = Path(env).expanduser()
        lacking = missing(tool, directory)
        if lacking:
            raise MissingBinariesError(
                f"{tool.env_dir}={directory} lacks {', '.join(lacking)}; "
                f"unset it and run `ballast cluster build` (or `make bins`)"
            )
        return directory
    cache = cache or cache_dir()
    hack = hack_dir()
    try:
        directory = cache / "tools" / tool_key(hack, tool)
    except GoMissingError:
        found = _from_manifest(cache, tool, tool_digest(hack, tool))
        if found is None:
            raise
        log.warning("go not found; using a cached build", extra=kv(tool=tool.name, dir=found))
        return found
    lacking = missing(tool, directory)
    if lacking:
        raise MissingBinariesError(
            f"{tool.name} not built ({', '.join(lacking)} missing in {directory}): "
            f"run `ballast cluster build` (or `make bins`; ${ENV_CACHE} picks the cache)"
        )
    return directory


def build(tool: Tool, cache: Path | None = None, force: bool = False) -> Path:
    """Build ``tool`` into its keyed cache folder (reused when complete); returns the folder."""
    cache = cache or cache_dir()
    hack = hack_dir()
    go = go_version(hack)
    key = tool_key(hack, tool, go)
    final = cache / "tools" / key
    if not force and not missing(tool, final):
        log.info("tool cached", extra=kv(tool=tool.name, dir=final))
        return final
    (cache / "logs").mkdir(parents=True, exist_ok=True)
    log_path = cache / "logs" / f"build-{key}.log"
    tmp = cache / "tools" / f".build-{key}-{os.getpid()}"  # same filesystem: atomic rename
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log.info("building tool", extra=kv(tool=tool.name, key=key, log=log_path, go=go))
    rc, seconds = run_script(hack, tmp, [tool.name], log_path, {})
    lacking = missing(tool, tmp)
    if rc != 0 or lacking:
        shutil.rmtree(tmp, ignore_errors=True)
        why = f"exit status {rc}" if rc != 0 else f"{', '.join(lacking)} not produced"
        raise BuildError(
            f"hack/build.sh {tool.name} failed ({why}); full log: {log_path}\n"
            f"--- last lines of {log_path.name} ---\n{tail(log_path)}"
        )
    doc = {
        "key": key,
        "tool": tool.name,
        "version": pinned_version(hack, tool),
        "digest": tool_digest(hack, tool),
        "goVersion": go,
        "builtAt": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "buildSeconds": round(seconds, 1),
    }
    (tmp / MANIFEST).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    install_dir(tmp, final)
    log.info("tool built", extra=kv(tool=tool.name, dir=final, seconds=round(seconds)))
    return final


def binary(tool: Tool, name: str, cache: Path | None = None) -> Path:
    """The path of one of ``tool``'s binaries (see :func:`resolve`)."""
    if name not in tool.binaries:
        raise ValueError(f"{tool.name} builds {', '.join(tool.binaries)}, not {name}")
    return resolve(tool, cache) / name
