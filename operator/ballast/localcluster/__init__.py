"""The local control plane: real etcd, kube-apiserver, kube-controller-manager, kwok (+ scheduler).

Built once from the Go modules pinned in ``hack/`` (:mod:`.binaries`), run as
detached loopback processes (:mod:`.cluster`), populated with fake GPU nodes
(:mod:`.nodes`, :mod:`.kube`). See docs/local-cluster.md.
"""

from __future__ import annotations

from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.errors import (
    BuildError,
    ClusterError,
    ComponentError,
    GoMissingError,
    MissingBinariesError,
    PortInUseError,
)
from ballast.localcluster.nodes import NodeSpec, build_node, openb_nodes, profile_nodes
from ballast.localcluster.state import ClusterStatus, ComponentStatus

__all__ = [
    "BuildError",
    "ClusterError",
    "ClusterStatus",
    "ComponentError",
    "ComponentStatus",
    "GoMissingError",
    "LocalCluster",
    "MissingBinariesError",
    "NodeSpec",
    "PortInUseError",
    "build_node",
    "openb_nodes",
    "profile_nodes",
]
