"""The CRD kopf's peering needs, so that ``ballast operator --peering NAME`` can run as HA.

kopf 1.45 coordinates replicas through a cluster-scoped ``ClusterKopfPeering``
object (group ``kopf.dev``): every replica writes a keep-alive with its
priority into the object's status, and a replica that sees a live peer with a
higher priority pauses all its handlers until that peer's record expires. The
definition matches kopf's own ``peering.yaml``; it is generated next to
Ballast's CRDs so that ``kubectl apply -f crds/`` and the Helm chart install it.
"""

from __future__ import annotations

from typing import Any

PEERING_GROUP = "kopf.dev"
PEERING_VERSION = "v1"
PEERING_PLURAL = "clusterkopfpeerings"
PEERING_CRD_NAME = f"{PEERING_PLURAL}.{PEERING_GROUP}"


def build_peering_crd() -> dict[str, Any]:
    """The ``ClusterKopfPeering`` CustomResourceDefinition."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": PEERING_CRD_NAME,
            "labels": {"app.kubernetes.io/name": "ballast", "app.kubernetes.io/part-of": "ballast"},
        },
        "spec": {
            "scope": "Cluster",
            "group": PEERING_GROUP,
            "names": {
                "kind": "ClusterKopfPeering",
                "plural": PEERING_PLURAL,
                "singular": "clusterkopfpeering",
            },
            "versions": [
                {
                    "name": PEERING_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "Keep-alives of kopf operator replicas "
                            "(ballast operator --peering NAME).",
                            "properties": {
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
