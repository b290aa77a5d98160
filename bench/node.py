"""Benchmark of the whole node on a synthetic night (real pipeline, real outbox).

1. Throughput: ``Node.process`` over an archive of N synthetic S50 subs of SS Cyg, with 1 and 2
   workers: frames per second from start (worker start-up included), time to the first result
   and worker time per frame.
2. Latency: ``Node.run`` (the ``starnode run`` code path) on a folder a "telescope" thread writes
   into slowly (in place, chunk by chunk, one frame every few seconds): seconds from a frame's
   last byte (its mtime) to its row in the AAVSO outbox, with the default debounce_delay (3 s)
   and with 0.5 s.

    .venv/bin/python bench/node.py [--frames 16] [--latency-frames 6]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from starnode.config import Config
from starnode.demo import write_slowly
from starnode.node import Node
from starnode.synthetic import DEMO_SEQUENCE_FILE, make_sub


def frames(n: int, seed0: int = 0) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        t = f"2025-09-14T{21 + i // 60:02d}:{i % 60:02d}:00"
        hdul, _ = make_sub(target_mag=11.8 - 0.02 * i, seed=seed0 + i, date_obs=t,
                           site=(48.85, 2.35))
        buf = io.BytesIO()
        hdul.writeto(buf)
        name = "Light_SS Cyg_10.0s_IRCUT_" + t.replace("-", "").replace(":", "").replace(
            "T", "-") + ".fit"
        out.append((name, buf.getvalue()))
    return out


def config(root: Path, workers: int, debounce: float = 3.0) -> Config:
    return Config({
        "data_dir": str(root / "data"), "workers": workers,
        "watch": {"path": str(root / "MyWorks"), "debounce_delay": debounce},
        "photometry": {"sequence_file": str(DEMO_SEQUENCE_FILE), "offline": True},
        "aavso": {"observer_code": "DEMO", "mode": "outbox"},
    })


def throughput(night: list[tuple[str, bytes]], workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "archive" / "SS Cyg_sub"
        folder.mkdir(parents=True)
        for name, data in night:
            (folder / name).write_bytes(data)
        stamps: list[float] = []
        node = Node(config(root, workers), progress=lambda n: stamps.append(time.monotonic()))
        t0 = time.monotonic()
        summary = node.process([root / "archive"])
        total = time.monotonic() - t0
        per_frame = statistics.fmean(node.frame_seconds)
        node.close()
    return {"workers": workers, "frames": len(night), "seconds": total,
            "fps": len(night) / total, "first": stamps[0] - t0, "per_frame": per_frame,
            "reported": summary.get("reported", 0)}


def latency(night: list[tuple[str, bytes]], workers: int, debounce: float,
            interval: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sub = root / "MyWorks" / "SS Cyg_sub"
        sub.mkdir(parents=True)
        node = Node(config(root, workers, debounce))
        done = threading.Event()

        def telescope() -> None:
            time.sleep(6.0)  # let the workers start
            for name, data in night:
                write_slowly(sub / name, data, chunks=6, pause=0.05)
                time.sleep(interval)
            done.set()

        t = threading.Thread(target=telescope, daemon=True)
        t.start()

        def until(n: Node) -> bool:
            return done.is_set() and n.counts.get("reported", 0) + n.counts.get(
                "skipped", 0) + n.counts.get("failed", 0) >= len(night)

        node.run(until=until)
        lat = list(node.latencies)
    return {"workers": workers, "debounce": debounce, "n": len(lat),
            "median": statistics.median(lat) if lat else float("nan"),
            "max": max(lat) if lat else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--latency-frames", type=int, default=6)
    ap.add_argument("--interval", type=float, default=2.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {os.cpu_count()} CPU core(s); synthetic S50 subs (1080x1920 GRBG, 4.2 MB)")
    night = frames(args.frames)
    for w in (1, 2):
        r = throughput(night, w)
        print(f"process, {w} worker(s): {r['frames']} frames in {r['seconds']:.1f} s = "
              f"{r['fps']:.2f} frames/s overall; first result after {r['first']:.1f} s "
              f"(worker start-up); {r['per_frame']:.2f} s of worker time per frame; "
              f"{r['reported']} reported")
    late = frames(args.latency_frames, seed0=500)
    for w, deb in ((1, 3.0), (2, 3.0), (1, 0.5)):
        r = latency(late, w, deb, args.interval)
        print(f"run, {w} worker(s), debounce_delay {deb:g} s: frame complete -> outbox row: "
              f"median {r['median']:.2f} s, max {r['max']:.2f} s over {r['n']} frames")


if __name__ == "__main__":
    main()
