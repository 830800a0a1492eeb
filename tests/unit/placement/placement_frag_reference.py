"""A plain-Python reading of the FGD fragmentation definition, to check the vectorised one."""

from __future__ import annotations

from ballast.placement.fragmentation import MixArrays


def node_frag(free: list[int], cpu: int, mem: int, product: int, mix: MixArrays) -> float:
    total = sum(free)
    out = 0.0
    for t in range(mix.d.shape[0]):
        d, k = int(mix.d[t]), int(mix.k[t])
        usable = sum(1 for f in free if f >= d)
        hostable = (
            bool(mix.compat[t, product])
            and usable >= k
            and cpu >= int(mix.cpu[t])
            and mem >= int(mix.mem[t])
        )
        frag = sum(f for f in free if f < d) if hostable else total
        out += float(mix.pop[t]) * frag
    return out + mix.cpu_only * total  # CPU-only types: every free GPU is a fragment
