"""The kopf operator: reconciles Ballast's custom resources into Kubernetes objects."""
