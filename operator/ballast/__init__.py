"""Ballast: a Kubernetes operator and GPU-aware scheduler for AI workloads."""

__version__ = "0.1.0"
