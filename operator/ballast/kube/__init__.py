"""Kubernetes I/O shared by the operator, the scheduler and the tools."""
