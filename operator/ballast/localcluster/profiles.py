"""Fleet profiles and the model/dataset catalogue for fake GPU nodes (data only).

A profile is a list of node classes, each with its share of the fleet.
Shapes follow common cloud instances (AWS p5.48xlarge, p4d.24xlarge,
g6.12xlarge, g6.2xlarge, g4dn.2xlarge); GPU memory is what NVIDIA's GPU
feature discovery puts in ``nvidia.com/gpu.memory`` (MiB). Sizes in the
catalogue are the bytes of the published weights (bf16/fp16 safetensors,
fp8 where named) or dataset archives.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ballast.api.wellknown import CacheItem

REGION = "us-central1"
ZONES: tuple[str, ...] = ("us-central1-a", "us-central1-b", "us-central1-c")
GB = 10**9


@dataclass(frozen=True, slots=True)
class NodeClass:
    """One kind of GPU node in a profile."""

    key: str  # short name, used in node names: ``<prefix>-<key>-<n>``
    product: str  # ``nvidia.com/gpu.product``
    gpus: int
    gpu_memory_mib: int
    cpu: int  # cores
    memory_gib: int
    cache_bytes: int  # local NVMe set aside for the model/dataset cache
    idle_power_w: float  # per GPU, for the synthetic telemetry
    share: float  # fraction of the fleet
    instance_type: str = ""
    zones: tuple[str, ...] = ZONES


H100 = NodeClass(
    "h100", "NVIDIA-H100-80GB-HBM3", 8, 81559, 192, 2048, 2000 * GB, 70.0, 1.0, "p5.48xlarge"
)
A100 = NodeClass(
    "a100", "NVIDIA-A100-SXM4-40GB", 8, 40960, 96, 1152, 1000 * GB, 55.0, 1.0, "p4d.24xlarge"
)
L4X4 = NodeClass("l4", "NVIDIA-L4", 4, 23034, 48, 192, 500 * GB, 16.0, 1.0, "g6.12xlarge")
L4X1 = NodeClass("l4x1", "NVIDIA-L4", 1, 23034, 8, 32, 200 * GB, 16.0, 0.5, "g6.2xlarge")
T4X1 = NodeClass("t4", "Tesla-T4", 1, 15360, 8, 32, 200 * GB, 10.0, 0.5, "g4dn.2xlarge")


PROFILES: dict[str, tuple[NodeClass, ...]] = {
    "h100": (H100,),
    "a100": (A100,),
    "l4": (L4X4,),
    "small": (L4X1, T4X1),
    # A typical shared inference/training cluster: a few big nodes, many small ones.
    "mixed": (replace(H100, share=0.25), replace(A100, share=0.25), replace(L4X4, share=0.5)),
}


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """A model or dataset that may sit in a node's cache, with how popular it is."""

    item: CacheItem
    popularity: float  # relative weight when filling caches


def _m(name: str, size: float, popularity: float) -> CatalogueEntry:
    return CatalogueEntry(CacheItem("model", name, round(size * GB)), popularity)


def _d(name: str, size: float, popularity: float) -> CatalogueEntry:
    return CatalogueEntry(CacheItem("dataset", name, round(size * GB)), popularity)


CATALOGUE: tuple[CatalogueEntry, ...] = (
    _m("llama-3-8b", 16.06, 10),
    _m("llama-3-70b", 141.1, 5),
    _m("llama-3.1-405b-fp8", 410.0, 1),
    _m("mistral-7b", 14.48, 6),
    _m("mixtral-8x7b", 93.4, 3),
    _m("qwen2.5-7b", 15.23, 6),
    _m("qwen2.5-32b", 65.53, 3),
    _m("qwen2.5-72b", 145.4, 2),
    _m("gemma-2-9b", 18.48, 4),
    _m("gemma-2-27b", 54.45, 2),
    _m("phi-3-mini", 7.64, 4),
    _m("deepseek-coder-v2-lite", 31.4, 2),
    _m("bge-large-en", 1.34, 5),
    _m("whisper-large-v3", 3.09, 3),
    _m("stable-diffusion-xl", 6.94, 3),
    _d("wiki-2024", 20.3, 6),
    _d("openwebtext", 38.0, 3),
    _d("c4-en", 305.0, 1),
    _d("imagenet-1k", 147.0, 2),
    _d("coco-2017", 19.3, 3),
    _d("librispeech-960h", 57.0, 2),
    _d("ultrachat-200k", 1.6, 4),
    _d("squad-v2", 0.046, 3),
)

# GPU models of Alibaba's openb trace (gpu_model column) and their memory in MiB.
# G2 and G3 are anonymised in the trace; 16 GiB is an assumption, not data.
OPENB_GPU_MEMORY_MIB: dict[str, int] = {
    "P100": 16384,
    "T4": 15360,
    "V100M16": 16384,
    "V100M32": 32768,
    "A10": 23028,
    "G2": 16384,
    "G3": 16384,
}
OPENB_DEFAULT_GPU_MEMORY_MIB = 16384
OPENB_IDLE_POWER_W = 30.0
OPENB_CACHE_BYTES_PER_GPU = 125 * GB
