"""Assemble layers and config into an image archive with go-containerregistry's crane.

crane edits images in a registry, so a throwaway one (``crane registry serve``,
in memory, on a loopback port) holds the image between ``crane append`` (the
layers, on an empty OCI base) and ``crane mutate`` (entrypoint, user,
environment, labels, platform), which writes the result as a ``docker save``
style tarball: what ``docker load`` and ``kind load image-archive`` read.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ballast.image import spec
from ballast.image.steps import ImageError, run_logged
from ballast.logs import kv

log = logging.getLogger(__name__)

_PORT = re.compile(r"serving on port (\d+)")
REGISTRY_START_S = 30.0


@contextmanager
def registry(crane: Path, log_path: Path) -> Iterator[str]:
    """A ``crane registry serve`` on 127.0.0.1 for the duration; yields ``localhost:<port>``."""
    out = log_path.open("a")
    proc = subprocess.Popen(
        [str(crane), "registry", "serve", "--address", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    port: list[str] = []
    ready = threading.Event()

    def read() -> None:  # the port line, then the request log into the log file
        for line in stderr:
            out.write(f"[registry] {line}")
            out.flush()
            match = _PORT.search(line)
            if match and not port:
                port.append(match.group(1))
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, name="crane-registry", daemon=True)
    reader.start()
    try:
        if not ready.wait(REGISTRY_START_S) or not port:
            raise ImageError(f"crane registry serve did not start; see {log_path}")
        yield f"localhost:{port[0]}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)
        out.close()


def mutate_args(revision: str) -> list[str]:
    """``crane mutate`` flags that set the image config from :mod:`ballast.image.spec`."""
    args = [
        f"--entrypoint={','.join(spec.ENTRYPOINT)}",
        f"--user={spec.USER}",
        f"--workdir={spec.WORKDIR}",
        f"--set-platform={spec.PLATFORM}",
    ]
    args += [f"--env={e}" for e in spec.ENV]
    args += [f"--label={k}={v}" for k, v in spec.labels(revision).items()]
    return args


def assemble(
    crane: Path, layers: Sequence[Path], revision: str, out: Path, log_path: Path
) -> float:
    """Write the archive ``out`` from ``layers`` (base first); returns the seconds taken."""
    started = time.monotonic()
    with registry(crane, log_path) as host:
        staged = f"{host}/ballast:staged"
        append = [str(crane), "append", "--oci-empty-base", "--new_tag", staged]
        append += [f"--new_layer={p}" for p in layers]
        run_logged(
            append, log_path, "layers into the image (crane append)", progress=lambda _: None
        )
        mutate = [str(crane), "mutate", staged, *mutate_args(revision)]
        mutate += ["--tag", spec.reference(), "--output", str(out)]
        run_logged(mutate, log_path, "config and archive (crane mutate)", progress=lambda _: None)
    seconds = time.monotonic() - started
    log.info("image assembled", extra=kv(archive=out, seconds=round(seconds, 1)))
    return seconds
