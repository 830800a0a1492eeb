"""The README's kind quick start: its helm values run every container from `make image`'s image.

kind and a container runtime are not here; what is checked is that the
commands name the archive `make image` prints and that the chart, rendered
with the quick start's own ``--set`` values, points every container at the
archive's reference with a pull policy that uses the loaded image.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from ballast.image import spec
from ballast.localcluster.binaries import hack_dir, kubernetes_version, resolve_bin_dir
from ballast.localcluster.errors import MissingBinariesError

ROOT = Path(__file__).resolve().parents[2]


def _quickstart() -> list[list[str]]:
    """The shell commands of the README block that loads the image into kind."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    block = next(b for b in blocks if "kind load image-archive" in b)
    joined = block.replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in joined.splitlines() if line.strip()]


def test_quickstart_loads_the_archive_make_image_prints() -> None:
    load = next(c for c in _quickstart() if c[:3] == ["kind", "load", "image-archive"])
    assert load[3] == "$(make -s image)"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^image: .*\n\t\$\(BALLAST\) image build$", makefile, re.M)


def test_quickstart_values_point_every_container_at_the_image() -> None:
    try:
        helm = resolve_bin_dir() / "helm"
    except MissingBinariesError as exc:
        pytest.skip(f"helm not built: {exc}")
    install = next(c for c in _quickstart() if c[:2] == ["helm", "install"])
    args = ["template", *install[2:]]
    version = kubernetes_version(hack_dir()).lstrip("v")
    out = subprocess.run(
        [str(helm), *args, "--kube-version", version],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    containers = []
    for doc in yaml.safe_load_all(out):
        pod = ((doc or {}).get("spec") or {}).get("template", {}).get("spec")
        if pod:
            containers += pod.get("containers", []) + pod.get("initContainers", [])
    assert len(containers) >= 3  # operator, scheduler, agent
    assert {c["image"] for c in containers} == {spec.reference()}
    assert {c.get("imagePullPolicy") for c in containers} == {"IfNotPresent"}
    # The chart passes the command as arguments: the image's entrypoint is `ballast`.
    assert all("command" not in c for c in containers)
