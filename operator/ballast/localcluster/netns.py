"""A network namespace and veth pair that give a local cluster one non-loopback address.

The API server reaches an aggregated API (KEDA's metrics API server) at the
address in its Service's endpoints, and the API rejects loopback addresses
there. So ``up --keda`` makes, per cluster (we are root):

- a network namespace ``ballast-<cluster>``,
- a veth pair: ``bh<hash>`` in the host's namespace, ``bn<hash>`` inside it,
- a /30 from :data:`RANGE` on the pair: the host end takes the first
  address (the aggregated server listens there), the other end the second.

Traffic to the host-end address stays on this machine: it is one of the
host's own addresses. ``down`` removes the namespace, which removes the pair.
Every name and address derives from the cluster's name and what is free, so
nothing needs recording.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import subprocess
from dataclasses import dataclass

from ballast.localcluster.errors import ClusterError
from ballast.logs import kv

log = logging.getLogger(__name__)

# A small private range, used only on the veth pairs made here: 64 /30s.
RANGE = ipaddress.ip_network("192.168.231.0/24")
PREFIX = 30


@dataclass(frozen=True, slots=True)
class VethPair:
    """One cluster's namespace, interfaces and addresses."""

    netns: str
    host_if: str
    peer_if: str
    host_ip: str
    peer_ip: str


def names(cluster: str) -> tuple[str, str, str]:
    """(netns, host interface, peer interface) for ``cluster``; interface names fit 15 bytes."""
    h = hashlib.sha256(cluster.encode()).hexdigest()[:10]
    return f"ballast-{cluster}", f"bh{h}", f"bn{h}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise ClusterError(
            "`ip` (iproute2) is needed for --keda: apt-get install iproute2"
        ) from exc
    except subprocess.CalledProcessError as exc:
        raise ClusterError(f"ip {' '.join(args)}: {exc.stderr.strip() or exc}") from exc


def _used_subnets() -> set[ipaddress.IPv4Network]:
    out = _ip("-o", "-4", "addr", "show").stdout
    used = set()
    for m in re.finditer(r"inet (\d+\.\d+\.\d+\.\d+)/(\d+)", out):
        net = ipaddress.ip_network(f"{m.group(1)}/{m.group(2)}", strict=False)
        if isinstance(net, ipaddress.IPv4Network):
            used.add(net)
    return used


def _host_address(host_if: str) -> str | None:
    out = _ip("-o", "-4", "addr", "show", "dev", host_if, check=False).stdout
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    return m.group(1) if m else None


def ensure(cluster: str) -> VethPair:
    """Make (or find) the cluster's namespace and veth pair; returns its addresses."""
    netns, host_if, peer_if = names(cluster)
    existing = _host_address(host_if)
    if existing is not None:
        host = ipaddress.ip_address(existing)
        return VethPair(netns, host_if, peer_if, str(host), str(host + 1))
    remove(cluster)  # half-made by a crashed run
    used = _used_subnets()
    subnet = next(
        (s for s in RANGE.subnets(new_prefix=PREFIX) if not any(s.overlaps(u) for u in used)),
        None,
    )
    if subnet is None:
        raise ClusterError(f"no free /{PREFIX} left in {RANGE} for the veth pair")
    host_ip, peer_ip = (str(a) for a in list(subnet.hosts())[:2])
    try:
        _ip("netns", "add", netns)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", netns)
        _ip("addr", "add", f"{host_ip}/{PREFIX}", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", netns, "addr", "add", f"{peer_ip}/{PREFIX}", "dev", peer_if)
        _ip("-n", netns, "link", "set", peer_if, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
    except ClusterError:
        remove(cluster)
        raise
    log.info("veth pair up", extra=kv(netns=netns, host=f"{host_if}={host_ip}", peer=peer_ip))
    return VethPair(netns, host_if, peer_if, host_ip, peer_ip)


def remove(cluster: str) -> None:
    """Delete the cluster's namespace and veth pair, if present (idempotent)."""
    netns, host_if, _ = names(cluster)
    try:
        _ip("link", "del", host_if, check=False)  # takes the peer with it
        _ip("netns", "del", netns, check=False)
    except ClusterError:
        return  # no `ip`: nothing was ever made
