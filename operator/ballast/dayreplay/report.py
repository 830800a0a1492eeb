"""The side-by-side report: a table for the terminal, ``report.json`` and ``index.html``."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from ballast.dayreplay.metrics import TIERS


def _f(x: Any, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.2f}{unit}"
    return f"{x}{unit}"


def rows(doc: Mapping[str, Any]) -> list[list[str]]:
    """The table's rows: one per figure, one column per scheduler."""
    names = list(doc["schedulers"])
    s = [doc["schedulers"][n] for n in names]
    out = [["", *names]]
    for tier in TIERS:
        for q in ("p50", "p95", "p99"):
            out.append(
                [
                    f"{tier} queue wait {q}",
                    *(_f(x["tiers"][tier][f"queue_wait_{q}_s"], " s") for x in s),
                ]
            )
    for tier in TIERS:
        out.append(
            [
                f"{tier} placed / pods",
                *(f"{x['tiers'][tier]['placed']} / {x['tiers'][tier]['pods']}" for x in s),
            ]
        )
    out.append(["pods never placed", *(_f(x["never_placed"]) for x in s)])
    for tier in TIERS:
        out.append([f"preemptions of {tier}", *(_f(x["tiers"][tier]["preempted"]) for x in s)])
    early = "preempted_before_min_runtime"
    out.append(["preemptions before the minimum runtime", *(_f(x.get(early)) for x in s)])
    out.append(["GPU allocation, mean", *(_f(x["gpu_allocation_mean_pct"], " %") for x in s)])
    out.append(["GPU work served, mean", *(_f(x.get("gpu_work_served_mean_pct"), " %") for x in s)])
    after = "gpu_work_served_after_window_opens_mean_pct"
    out.append(["  after the window opens", *(_f(x.get(after), " %") for x in s)])
    out.append(
        [
            "unallocated GPUs at peak demand",
            *(
                f"{_f(x['peak']['unallocated_gpus'])} of {x['gpu_capacity']} "
                f"(demand {_f(x['peak']['demand_gpus'])})"
                for x in s
            ),
        ]
    )
    out.append(
        [
            "cache-hit placements",
            *(f"{x['cache_hits']} / {x['model_placements']}" for x in s),
        ]
    )
    out.append(["cold-start seconds (trace)", *(_f(x["cold_start_s"]) for x in s)])
    out.append(["pods that waited on quota", *(_f(x["quota_waits"]) for x in s)])
    out.append(["pods held by the batch window", *(_f(x["window_holds"]) for x in s)])
    return out


def table(doc: Mapping[str, Any]) -> str:
    """The rows as aligned text."""
    r = rows(doc)
    widths = [max(len(row[i]) for row in r) for i in range(len(r[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in r
    )


def document(
    config: Mapping[str, Any], workload: Mapping[str, Any], sides: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """``report.json``: the replay's setup and every scheduler's figures."""
    return {
        "config": dict(config),
        "workload": dict(workload),
        "schedulers": {name: dict(summary) for name, summary in sides.items()},
        "queue_wait_p99_s": {
            name: {t: summary["tiers"][t]["queue_wait_p99_s"] for t in TIERS}
            for name, summary in sides.items()
        },
    }


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plots(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(title, base64 PNG) for GPU allocation over time and queue waits per tier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []
    names = list(doc["schedulers"])
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for name in names:
        series = doc["schedulers"][name]["series"]
        ax.plot(series["t_s"], series["allocated_gpus"], label=f"{name}: allocated")
        if "served_gpus" in series:
            ax.plot(series["t_s"], series["served_gpus"], "--", label=f"{name}: work served")
    first = doc["schedulers"][names[0]]["series"]
    ax.plot(first["t_s"], first["demand_gpus"], ":", color="grey", label=f"{names[0]}: demand")
    ax.axhline(doc["schedulers"][names[0]]["gpu_capacity"], color="black", lw=0.8, label="capacity")
    ax.set_xlabel("replay seconds")
    ax.set_ylabel("GPUs")
    ax.legend(fontsize=8)
    out.append(("GPU allocation over time", _png(fig)))
    plt.close(fig)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    for ax, q in zip(axes, ("p50", "p95", "p99"), strict=True):
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            vals = [doc["schedulers"][name]["tiers"][t][f"queue_wait_{q}_s"] or 0 for t in TIERS]
            ax.bar([j + i * width for j in range(len(TIERS))], vals, width, label=name)
        ax.set_xticks(
            [j + width * (len(names) - 1) / 2 for j in range(len(TIERS))], TIERS, fontsize=8
        )
        ax.set_title(f"queue wait {q} (s)", fontsize=9)
    axes[0].legend(fontsize=7)
    out.append(("Queue wait per tier", _png(fig)))
    plt.close(fig)
    return out


def write(doc: Mapping[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``index.html`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    js = folder / "report.json"
    js.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    page = folder / "index.html"
    page.write_text(render(doc, plots(doc)))
    return js, page


def render(doc: Mapping[str, Any], images: Sequence[tuple[str, str]]) -> str:
    """The HTML page."""
    r = rows(doc)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in r[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in r[1:]
    )
    figs = "".join(
        f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
        for t, b in images
    )
    cfg = html.escape(orjson.dumps(doc["config"]).decode())
    work = html.escape(orjson.dumps(doc["workload"]).decode())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Ballast day replay</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
        "td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}</style></head><body>"
        "<h1>A day of mixed GPU work: Ballast and kube-scheduler on the same cluster</h1>"
        f"<p>Setup: <code>{cfg}</code></p><p>Workload: <code>{work}</code></p>"
        "<p>Measured from the API server by one watch for both schedulers: queue wait is "
        "bind minus creation (pods never placed count their wait until removal or the end); "
        "a deletion the replay did not ask for is a preemption. kube-scheduler has no "
        "GPUQuota, batch window or GPU share, so its quota and window figures are 0 and a "
        "GPU share asks it for a whole GPU.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{figs}</body></html>"
    )
