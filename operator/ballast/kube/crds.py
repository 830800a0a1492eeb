"""Install Ballast's CRDs (generated from the models) and wait until they are served."""

from __future__ import annotations

import time

from ballast.api.crd import build_crd
from ballast.api.kinds import ALL_KINDS
from ballast.api.wellknown import FIELD_MANAGER
from ballast.kube.raw import CRDS, Kube


def ensure_crds(kube: Kube, timeout: float = 60.0) -> None:
    """Server-side apply every CRD, then wait for Established on each."""
    for info in ALL_KINDS:
        kube.apply(CRDS.path(info.crd_name), build_crd(info), field_manager=FIELD_MANAGER)
    deadline = time.monotonic() + timeout
    for info in ALL_KINDS:
        while True:
            crd = kube.get(CRDS.path(info.crd_name)) or {}
            conds = (crd.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {info.crd_name} not Established after {timeout}s")
            time.sleep(0.2)
