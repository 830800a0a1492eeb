"""Telemetry sources: NVML on the node (``nvml``), Prometheus for the scheduler."""
