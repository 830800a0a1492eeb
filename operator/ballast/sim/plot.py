"""The report's picture: fragmentation curve, cache hits, queue wait per tier.

Matplotlib with the Agg backend (no display); imported only when a PNG is
asked for, so that the rest of the simulator does not pay for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TIERS = ("Interactive", "Nearline", "Offline")
COLORS = {
    "ballast": "#1b7837",
    "kube-default": "#2166ac",
    "kube-gpu-binpack": "#67a9cf",
    "fgd": "#b2182b",
    "best-fit": "#e08214",
    "random": "#8c8c8c",
    "ballast-no-locality": "#a6dba0",
}


def _color(policy: str) -> str:
    return COLORS.get(policy, "#5e3c99")


def _empty(ax: Any, title: str, text: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_report(doc: Mapping[str, Any], path: str | Path) -> None:
    """Draw the three panels from a report document and save a PNG."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2), constrained_layout=True)
    fill = doc.get("fragmentation")
    ax = axes[0]
    if fill:
        top = 0.0
        for policy, fig_ in fill["policies"].items():
            pts = fig_["curve"]
            xs = [p[0] for p in pts]
            ys = [p[1] for p in pts]
            top = max(top, max((y for x, y in pts if x >= 70), default=0.0))
            where = "at 100" if fill.get("setup") == "paper" else "avg 90-100"
            label = f"{policy} ({fig_['unallocated_gpu_pct']:.1f}% {where})"
            ax.step(xs, ys, where="post", color=_color(policy), label=label, lw=1.6)
        xmax = max(max(p[0] for p in f["curve"]) for f in fill["policies"].values())
        ax.plot([70, 100, xmax], [30, 0, 0], ls=":", color="k", lw=1, label="nothing left over")
        ax.axvspan(90, 100, color="#eee", zorder=0)
        ax.set_xlim(70, xmax)
        ax.set_ylim(0, max(top * 1.1, 5))
        ax.set_xlabel("arrived GPU demand (% of capacity)")
        ax.set_ylabel("unallocated GPU (% of capacity)")
        ax.set_title(f"Fragmentation: {fill['trace']}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    else:
        _empty(ax, "Fragmentation", "openb fill not run")
    genai = doc.get("genai")
    for ax, panel in ((axes[1], "hits"), (axes[2], "waits")):
        if not genai:
            _empty(ax, "Cache hits" if panel == "hits" else "Queue wait", "GenAI replay not run")
            continue
        policies = list(genai["policies"])
        if panel == "hits":
            for i, policy in enumerate(policies):
                f = genai["policies"][policy]
                rate = f["cache_hit_rate"]["serving"] or 0.0
                ax.bar(i, rate * 100, color=_color(policy))
                cold = f["cold_start_seconds"]["serving"]
                ax.text(
                    i, rate * 100 + 1, f"{rate:.0%}\n{cold:,.0f}s cold", ha="center", fontsize=8
                )
            ax.set_xticks(range(len(policies)), policies, rotation=15)
            ax.set_ylim(0, 110)
            ax.set_ylabel("serving replicas started on a warm node (%)")
            ax.set_title("Model cache hits (GenAI serving)")
        else:
            width = 0.8 / max(1, len(policies))
            for i, policy in enumerate(policies):
                waits = genai["policies"][policy]["queue_wait"]
                vals = [waits[t]["p95_s"] or 0.0 for t in TIERS]
                xs = [j + (i - (len(policies) - 1) / 2) * width for j in range(len(TIERS))]
                ax.bar(xs, vals, width, color=_color(policy), label=policy)
                for x, v in zip(xs, vals, strict=True):
                    ax.text(x, v, f"{v:,.0f}s", ha="center", va="bottom", fontsize=7)
            ax.set_xticks(range(len(TIERS)), TIERS)
            ax.set_ylabel("p95 queue wait (s)")
            ax.set_title("Queue wait per tier (p95)")
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.savefig(path, dpi=110)
    plt.close(fig)
