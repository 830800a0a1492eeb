"""The trust boundary for ``resource.k8s.io/v1`` objects: ResourceSlice, DeviceClass, ResourceClaim.

Every object from the API is untrusted: these functions check each field's
type and return plain values with the problems found, never raising. What
Ballast reads:

- ResourceSlice: ``spec.driver``, ``spec.pool.name``, ``spec.nodeName``,
  ``spec.devices[].name``, ``attributes`` (``int``, ``bool``, ``string``,
  ``version``) and ``capacity[].value``. A slice that is not node-local
  (``allNodes``/``nodeSelector``) is ignored; ``sharedCounters`` and
  ``consumesCounters`` are not read (MIG overlaps come from the
  ``memorySlice<i>`` capacities).
- DeviceClass: ``spec.selectors[].cel.expression``.
- ResourceClaim: ``spec.devices.requests[].exactly`` (``deviceClassName``,
  ``selectors[].cel.expression``, ``allocationMode: ExactCount``, ``count``),
  ``status.allocation.devices.results`` and ``status.allocation.nodeSelector``,
  ``status.reservedFor``.
- Pod: ``spec.resourceClaims[]`` and ``status.resourceClaimStatuses[]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ballast.placement.cel import AttrValue, Version, parse_quantity, semver_key
from ballast.placement.dra import Device
from ballast.scheduler.mapping import Mapped

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$")
MAX_DEVICES = 128  # per slice, as the API allows
_LIST_KINDS = {"ints", "bools", "strings", "versions"}


def _m(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _s(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _qualify(driver: str, name: str) -> str:
    return name if "/" in name else f"{driver}/{name}"


def _attr(raw: Any) -> AttrValue | Version | None:
    a = _m(raw)
    kinds = [k for k in ("int", "bool", "string", "version") if k in a]
    if len(kinds) != 1:
        return None
    v = a[kinds[0]]
    if kinds[0] == "int":
        return v if isinstance(v, int) and not isinstance(v, bool) else None
    if kinds[0] == "bool":
        return v if isinstance(v, bool) else None
    if kinds[0] == "string":
        return v if isinstance(v, str) and len(v) <= 64 else None
    return Version(v) if isinstance(v, str) and semver_key(v) is not None else None


def resource_slice(obj: Mapping[str, Any]) -> Mapped:
    """``(node, devices)`` of a node-local slice; problems make the whole slice ignored."""
    spec = _m(obj.get("spec"))
    driver, node = _s(spec.get("driver")), _s(spec.get("nodeName"))
    pool = _s(_m(spec.get("pool")).get("name"))
    problems: list[str] = []
    if not driver or not _NAME.match(driver):
        problems.append(f"spec.driver {spec.get('driver')!r} is not a driver name")
    if not pool:
        problems.append("spec.pool.name is missing")
    if not node:
        return Mapped(("", ()), problems)  # not node-local: not GPUs Ballast places
    devices: list[Device] = []
    raw_devices = spec.get("devices", [])  # a counters-only slice has none
    if not isinstance(raw_devices, list) or len(raw_devices) > MAX_DEVICES:
        problems.append("spec.devices is not a list of at most 128 devices")
        raw_devices = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_devices):
        d = _m(raw)
        name = _s(d.get("name"))
        if not name or not _NAME.match(name) or name in seen:
            problems.append(f"devices[{i}].name {d.get('name')!r} is missing, invalid or repeated")
            continue
        seen.add(name)
        attrs: dict[str, AttrValue | Version] = {}
        for key, value in _m(d.get("attributes")).items():
            if isinstance(value, Mapping) and value and set(value) <= _LIST_KINDS:
                continue  # list attributes (alpha, DRAListTypeAttributes): not read
            v = _attr(value)
            if not isinstance(key, str) or not key or v is None:
                problems.append(f"device {name}: attribute {key!r} has no valid value")
                continue
            attrs[_qualify(driver, key)] = v
        caps: dict[str, int] = {}
        for key, value in _m(d.get("capacity")).items():
            q = parse_quantity(_m(value).get("value"))
            if not isinstance(key, str) or not key or q is None:
                problems.append(f"device {name}: capacity {key!r} has no valid quantity")
                continue
            caps[_qualify(driver, key)] = q
        devices.append(Device(driver, pool, name, node, attrs, caps))
    if problems:
        return Mapped((node, ()), problems)
    return Mapped((node, tuple(devices)), [])


def device_class(obj: Mapping[str, Any]) -> Mapped:
    """The class's CEL selector expressions (a selector that is not CEL is a problem)."""
    selectors, problems = [], []
    for i, sel in enumerate(_list(_m(obj.get("spec")).get("selectors"))):
        expr = _s(_m(_m(sel).get("cel")).get("expression"))
        if not expr:
            problems.append(f"spec.selectors[{i}] has no cel.expression")
            continue
        selectors.append(expr)
    return Mapped(tuple(selectors), problems)


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One ``exactly`` request of a claim."""

    name: str
    device_class: str
    selectors: tuple[str, ...]
    count: int


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """One ``status.allocation.devices.results`` entry."""

    request: str
    driver: str
    pool: str
    device: str

    @property
    def key(self) -> str:
        """``driver/pool/device``."""
        return f"{self.driver}/{self.pool}/{self.device}"


@dataclass(frozen=True, slots=True)
class Claim:
    """A ResourceClaim as the scheduler reads it."""

    namespace: str
    name: str
    uid: str
    resource_version: str = ""
    requests: tuple[ClaimRequest, ...] = ()
    results: tuple[AllocationResult, ...] = ()
    node: str = ""  # from the allocation's node selector (metadata.name / hostname)
    allocated: bool = False
    reserved_for: tuple[str, ...] = ()  # pod uids
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


def _node_of(selector: Any) -> str:
    for term in _list(_m(selector).get("nodeSelectorTerms")):
        for part in ("matchFields", "matchExpressions"):
            for req in _list(_m(term).get(part)):
                r = _m(req)
                values = _list(r.get("values"))
                if (
                    r.get("key") in ("metadata.name", "kubernetes.io/hostname")
                    and r.get("operator") == "In"
                    and len(values) == 1
                ):
                    return _s(values[0])
    return ""


def claim(obj: Mapping[str, Any]) -> Claim:
    """A ResourceClaim; what Ballast cannot allocate is listed in ``problems``."""
    meta = _m(obj.get("metadata"))
    spec_devices = _m(_m(obj.get("spec")).get("devices"))
    problems: list[str] = []
    requests: list[ClaimRequest] = []
    for i, raw in enumerate(_list(spec_devices.get("requests"))):
        r = _m(raw)
        name = _s(r.get("name"))
        ex = _m(r.get("exactly"))
        if not ex:
            what = "firstAvailable" if "firstAvailable" in r else "no exactly"
            problems.append(f"request {name or i}: {what} is not supported by Ballast")
            continue
        mode = _s(ex.get("allocationMode")) or "ExactCount"
        count = ex.get("count", 1)
        if mode != "ExactCount" or not isinstance(count, int) or isinstance(count, bool):
            problems.append(f"request {name}: allocationMode {mode} is not supported by Ballast")
            continue
        if ex.get("adminAccess") is True:
            problems.append(f"request {name}: adminAccess is not supported by Ballast")
        if not 1 <= count <= 64:
            problems.append(f"request {name}: count {count} is out of range")
            continue
        sels = []
        for j, sel in enumerate(_list(ex.get("selectors"))):
            expr = _s(_m(_m(sel).get("cel")).get("expression"))
            if not expr:
                problems.append(f"request {name}: selectors[{j}] has no cel.expression")
            sels.append(expr)
        requests.append(ClaimRequest(name, _s(ex.get("deviceClassName")), tuple(sels), count))
    if _list(spec_devices.get("constraints")):
        problems.append("spec.devices.constraints are not supported by Ballast")
    status = _m(obj.get("status"))
    alloc = _m(status.get("allocation"))
    results = tuple(
        AllocationResult(
            _s(x.get("request")), _s(x.get("driver")), _s(x.get("pool")), _s(x.get("device"))
        )
        for x in map(_m, _list(_m(alloc.get("devices")).get("results")))
    )
    reserved = tuple(
        _s(_m(x).get("uid")) for x in _list(status.get("reservedFor")) if _s(_m(x).get("uid"))
    )
    return Claim(
        _s(meta.get("namespace")), _s(meta.get("name")), _s(meta.get("uid")),
        _s(meta.get("resourceVersion")), tuple(requests), results,
        _node_of(alloc.get("nodeSelector")), bool(alloc), reserved, tuple(problems),
    )  # fmt: skip


def pod_claims(spec: Any, status: Any) -> list[dict[str, str]]:
    """``[{name, claim, template}]`` of a pod: the claim's name when known (template: generated)."""
    generated = {
        _s(_m(x).get("name")): _s(_m(x).get("resourceClaimName"))
        for x in _list(_m(status).get("resourceClaimStatuses"))
    }
    out = []
    for raw in _list(_m(spec).get("resourceClaims"))[:32]:
        r = _m(raw)
        name = _s(r.get("name"))
        direct, template = _s(r.get("resourceClaimName")), _s(r.get("resourceClaimTemplateName"))
        if not name or not (direct or template):
            continue
        out.append({"name": name, "claim": direct or generated.get(name, ""), "template": template})
    return out
