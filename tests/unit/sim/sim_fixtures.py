"""Tiny trace files in the real formats, written with a fixed seed."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path


def write_openb(tmp: Path, pods: int = 80, seed: int = 0) -> tuple[Path, Path]:
    rng = random.Random(seed)
    nodes = tmp / "nodes.csv"
    rows = ["sn,cpu_milli,memory_mib,gpu,model"]
    for i, (cpu, gpu, model) in enumerate(
        [(96000, 8, "G2")] * 3 + [(104000, 2, "T4")] * 3 + [(32000, 0, "")]
    ):
        rows.append(f"node-{i},{cpu},{cpu * 4},{gpu},{model}")
    nodes.write_text("\n".join(rows) + "\n")
    trace = tmp / "pods.csv"
    rows = [
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time"
    ]
    for i in range(pods):
        kind = rng.random()
        num, milli = (
            (0, 0)
            if kind < 0.1
            else (1, rng.choice((250, 500, 810)))
            if kind < 0.5
            else (rng.choice((1, 1, 2, 4)), 1000)
        )
        spec = rng.choice(("", "", "T4", "G2|T4", "nan"))
        rows.append(
            f"p{i},{rng.choice((2000, 8000))},{4096},{num},{milli},{spec},LS,Running,{i * 10},{i * 10 + 5000},{i * 10}"
        )
    trace.write_text("\n".join(rows) + "\n")
    return nodes, trace


def write_genai(tmp: Path, seed: int = 0) -> tuple[Path, Path]:
    rng = random.Random(seed)
    req = tmp / "requests.csv"
    rows = [
        "gmt_create,predict_type,predict_status,exec_time_seconds,groupId,prompt_length,negative_prompt_length,"
        "num_images_per_prompt,num_inference_steps,checkpoint_model_version_id,num_lora"
    ]
    t0 = dt.datetime(2024, 11, 15, 0, 0, 0)
    for i in range(300):
        t = t0 + dt.timedelta(seconds=int(i * 280 + rng.random() * 100))
        tenant = "G0001" if i % 5 == 0 else f"G{rng.randrange(2, 30):04d}"
        model = rng.choice(("M0001", "M0001", "M0002", "M0003", f"M{rng.randrange(4, 12):04d}"))
        rows.append(
            f"{t:%Y-%m-%d %H:%M:%S},TXT_2_IMG,SUCCEED,{rng.randint(5, 60)}.0,{tenant},10.0,,1.0,30.0,{model},0"
        )
        if i % 40 == 0:  # a tenant burst: becomes a batch job
            for j in range(5):
                tb = t + dt.timedelta(seconds=j * 20)
                rows.append(
                    f"{tb:%Y-%m-%d %H:%M:%S},TXT_2_IMG,SUCCEED,30.0,G0001,10.0,,1.0,30.0,M0002,0"
                )
    req.write_text("\n".join(rows) + "\n")
    lat = tmp / "latency.csv"
    lat.write_text(
        "timestamp_anon,value,container_ip\n"
        + "".join(f"{i}.0,{rng.randint(2000, 45000)}.0,x\n" for i in range(50))
    )
    return req, lat
