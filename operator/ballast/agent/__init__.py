"""The node agent: NVML sampling, GPU health, dcgm-compatible metrics, the node record."""
