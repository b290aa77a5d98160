"""Benchmark of the ImageWatcher (events and poll mode) on a real local filesystem.

1. Latency beyond the debounce: one complete frame at a time; seconds from the writer closing
   the file to the callback, minus ``debounce_delay`` (median, p95).
2. Idle CPU: process CPU time over N idle seconds while watching a folder of 1,000 frames.
3. Bursts of 1,000 and 10,000 small frames written as fast as possible by another process (the
   watcher runs in a fresh process each time):
   time to drain after the debounce (last callback - last write - debounce), peak threads, peak
   RSS (and RSS just after start), exactly-once count, inotify overflows recovered by a rescan.
4. Slow writers: concurrent cameras writing full-size S50 subs chunk by chunk, with stalls
   longer than the debounce, some preallocated: % reported complete (and exactly once).

The frames are generated without astropy (plain header cards + random uint16 data) so the RSS
measured is the watcher's, not astropy's.

    .venv/bin/python bench/watcher.py [--quick]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import psutil

from starnode.watcher import ImageWatcher

BLOCK = 2880


def frame_bytes(nx: int, ny: int, rng: random.Random) -> bytes:
    """A valid FITS file like a Seestar sub: BITPIX 16, BZERO 32768, random pixels."""
    cards = [("SIMPLE", "T"), ("BITPIX", "16"), ("NAXIS", "2"), ("NAXIS1", str(nx)),
             ("NAXIS2", str(ny)), ("BZERO", "32768"), ("BSCALE", "1"),
             ("OBJECT", "'SS Cyg  '"), ("EXPTIME", "10.0"), ("IMAGETYP", "'Light   '")]
    head = "".join(f"{k:<8}= {v:>20}".ljust(80) for k, v in cards) + "END".ljust(80)
    head += " " * (-len(head) % BLOCK)
    data = rng.randbytes(nx * ny * 2)
    return head.encode() + data + b"\0" * (-len(data) % BLOCK)


class Sink:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.cond = threading.Condition()
        self.count = 0
        self.complete: dict[str, bool] = {}
        self.expected: dict[str, bytes] = {}

    def __call__(self, event: dict) -> None:
        t = time.monotonic()
        path = event["path"]
        if path in self.expected:
            with open(path, "rb") as f:
                self.complete[path] = f.read() == self.expected[path]
        with self.cond:
            self.times.setdefault(path, []).append(t)
            self.count += 1
            self.cond.notify_all()

    def wait(self, n: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= n, timeout)


class Sampler(threading.Thread):
    """Samples thread count (excluding main and itself) and RSS every 10 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process()
        self.peak_threads = 0
        self.peak_rss = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak_threads = max(self.peak_threads, threading.active_count() - 2)
            self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def latency(mode: str, n: int, debounce: float, poll: float) -> dict[str, float]:
    rng = random.Random(1)
    data = frame_bytes(1080, 1920, rng)
    with tempfile.TemporaryDirectory() as tmp:
        sink = Sink()
        w = ImageWatcher(tmp, sink, debounce, mode=mode, poll_interval=poll)
        w.start()
        lat = []
        try:
            for i in range(n):
                path = os.path.join(tmp, f"Light_{i:04d}.fit")
                with open(path, "wb") as f:
                    f.write(data)
                done = time.monotonic()
                if not sink.wait(i + 1, 30):
                    raise RuntimeError(f"frame {i} never reported")
                lat.append(sink.times[path][0] - done - debounce)
                time.sleep(rng.uniform(0, 0.05))  # decorrelate from the poll phase
        finally:
            w.stop()
    return {"median": statistics.median(lat), "p95": pct(lat, 0.95)}


def idle_cpu(mode: str, seconds: float, poll: float) -> float:
    rng = random.Random(2)
    data = frame_bytes(32, 32, rng)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(1000):
            with open(os.path.join(tmp, f"old_{i:04d}.fit"), "wb") as f:
                f.write(data)
        w = ImageWatcher(tmp, Sink(), 2.0, mode=mode, poll_interval=poll)
        w.start()
        time.sleep(0.5)
        t0 = time.process_time()
        time.sleep(seconds)
        used = time.process_time() - t0
        w.stop()
    return 100.0 * used / seconds


def burst_in_fresh_process(mode: str, n: int, debounce: float, poll: float) -> dict[str, Any]:
    """Run :func:`burst` in a new interpreter so its RSS is the watcher's alone."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(burst, (mode, n, debounce, poll))


def burst(mode: str, n: int, debounce: float, poll: float) -> dict[str, Any]:
    rng = random.Random(3)
    data = frame_bytes(32, 32, rng)
    with tempfile.TemporaryDirectory() as tmp:
        sink = Sink()
        overflow = _OverflowCounter()
        logging.getLogger("starnode.watcher").addHandler(overflow)
        sampler = Sampler()
        sampler.start()
        w = ImageWatcher(tmp, sink, debounce, mode=mode, poll_interval=poll)
        w.start()
        rss0 = psutil.Process().memory_info().rss
        # the "camera" is another process, as in real life: no GIL shared with the watcher
        src = os.path.join(tmp, "frame.bin")
        with open(src, "wb") as f:
            f.write(data)
        writer = subprocess.run(
            [sys.executable, "-c", _BURST_WRITER, src, tmp, str(n)],
            capture_output=True, text=True, check=True)
        t0_write, last_write_wall = (float(x) for x in writer.stdout.split())
        # convert the writer's wall-clock end time to this process's monotonic clock
        last_write = time.monotonic() - (time.time() - last_write_wall)
        ok = sink.wait(n, 120)
        drained = max(t[0] for t in sink.times.values()) if sink.times else float("nan")
        time.sleep(max(3 * debounce, 2 * poll))  # anything reported twice would show now
        sampler.stop()
        w.stop()
        logging.getLogger("starnode.watcher").removeHandler(overflow)
    counts = [len(v) for v in sink.times.values()]
    return {
        "write_s": last_write_wall - t0_write,
        "drain_s": drained - last_write - debounce if ok else float("inf"),
        "threads": sampler.peak_threads,
        "rss_mb": sampler.peak_rss / 2**20,
        "rss0_mb": rss0 / 2**20,
        "unique": len(sink.times),
        "dups": sum(c - 1 for c in counts),
        "n": n,
        "overflows": overflow.count,
    }


_BURST_WRITER = """
import os, sys, time
src, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
t0 = time.time()
for i in range(n):
    with open(os.path.join(folder, f"Light_{i:05d}.fit"), "wb") as f:
        f.write(data)
print(t0, time.time())
"""


class _OverflowCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage():
            self.count += 1


def slow_writers(mode: str, n: int, debounce: float, poll: float, nx: int,
                 ny: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        sink = Sink()
        w = ImageWatcher(tmp, sink, debounce, mode=mode, poll_interval=poll, max_wait=120)
        w.start()
        threads = []

        def camera(i: int) -> None:
            r = random.Random(100 + i)
            data = frame_bytes(nx, ny, r)
            path = os.path.join(tmp, f"Light_slow_{i:03d}.fit")
            sink.expected[path] = data
            pre = i % 3 == 0
            chunk = r.choice([2880, 16384, 65536, 262144])
            stall_at = r.uniform(0.0, 0.95)
            stall = r.uniform(1.2, 3.0) * debounce if i % 2 == 0 else 0.0
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            with open(fd, "r+b") as f:
                if pre:
                    f.truncate(len(data))  # preallocated: full size, zeros
                stalled = False
                for off in range(0, len(data), chunk):
                    f.write(data[off:off + chunk])
                    f.flush()
                    if not stalled and off >= stall_at * len(data):
                        stalled = True
                        time.sleep(stall)
                    else:
                        time.sleep(r.uniform(0, 0.01))

        for i in range(n):
            t = threading.Thread(target=camera, args=(i,))
            t.start()
            threads.append(t)
            time.sleep(0.05)
        for t in threads:
            t.join()
        sink.wait(n, 60)
        time.sleep(3 * debounce)
        w.stop()
    complete = sum(1 for v in sink.complete.values() if v)
    counts = [len(v) for v in sink.times.values()]
    return {"n": n, "reported": len(sink.times), "complete": complete,
            "pct": 100.0 * complete / n, "dups": sum(c - 1 for c in counts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples, shorter idle time")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    q = args.quick
    debounce = 0.3
    poll = 0.5
    n_lat = 15 if q else 50
    idle_s = 3.0 if q else 10.0
    n_slow = 8 if q else 24
    res: dict[str, Any] = {}
    for mode in ("events", "poll"):
        print(f"[{mode}] latency ...", flush=True)
        res[mode, "lat"] = latency(mode, n_lat, debounce, poll)
        print(f"[{mode}] idle CPU ...", flush=True)
        res[mode, "idle"] = idle_cpu(mode, idle_s, 2.0)
        for n in (1000, 10000):
            print(f"[{mode}] burst of {n} ...", flush=True)
            res[mode, n] = burst_in_fresh_process(mode, n, debounce, poll)
        print(f"[{mode}] slow writers ...", flush=True)
        res[mode, "slow"] = slow_writers(mode, n_slow, debounce, poll, 1080, 1920)

    def row(metric: str, fmt: Any, target: str, ok: Any = None) -> str:
        cells = [fmt(m) for m in ("events", "poll")]
        verdict = "" if ok is None else ("pass" if ok else "FAIL")
        return f"| {metric} | {cells[0]} | {cells[1]} | {target} | {verdict} |"

    ms = 1000.0
    b10e = res["events", 10000]
    lines = [
        f"debounce_delay={debounce} s, poll_interval={poll} s (latency/bursts), 2.0 s (idle); "
        f"{os.cpu_count()} CPUs; {'quick' if q else 'full'} run",
        "",
        "| metric | events | poll | target | |",
        "|---|---|---|---|---|",
        row("latency beyond debounce, median (ms)",
            lambda m: f"{res[m, 'lat']['median'] * ms:.1f}", "≤ 10 (events)",
            res["events", "lat"]["median"] * ms <= 10),
        row("latency beyond debounce, p95 (ms)",
            lambda m: f"{res[m, 'lat']['p95'] * ms:.1f}", "(poll: ≤ poll_interval)"),
        row(f"idle CPU, {idle_s:.0f} s, 1,000 files present (% of a core)",
            lambda m: f"{res[m, 'idle']:.3f}", "≈ 0 (events)", res["events", "idle"] < 0.5),
    ]
    for n in (1000, 10000):
        tgt = n == 10000
        lines += [
            row(f"burst {n:,}: write time (s)", lambda m, n=n: f"{res[m, n]['write_s']:.2f}", ""),
            row(f"burst {n:,}: drained after debounce (s)",
                lambda m, n=n: f"{res[m, n]['drain_s']:.2f}", "≤ 30" if tgt else "",
                b10e["drain_s"] <= 30 and res["poll", n]["drain_s"] <= 30 if tgt else None),
            row(f"burst {n:,}: peak threads (besides main)",
                lambda m, n=n: f"{res[m, n]['threads']}", "≤ 8" if tgt else "",
                max(res[m, n]["threads"] for m in ("events", "poll")) <= 8 if tgt else None),
            row(f"burst {n:,}: peak RSS, MB (at start)",
                lambda m, n=n: f"{res[m, n]['rss_mb']:.0f} ({res[m, n]['rss0_mb']:.0f})",
                "≤ 100" if tgt else "",
                max(res[m, n]["rss_mb"] for m in ("events", "poll")) <= 100 if tgt else None),
            row(f"burst {n:,}: reported once / duplicates",
                lambda m, n=n: f"{res[m, n]['unique']:,} / {res[m, n]['dups']}",
                f"{n:,} / 0",
                all(res[m, n]["unique"] == n and res[m, n]["dups"] == 0
                    for m in ("events", "poll"))),
            row(f"burst {n:,}: inotify overflows recovered by rescan",
                lambda m, n=n: f"{res[m, n]['overflows']}", ""),
        ]
    lines.append(row(
        f"slow writers ({n_slow} S50 subs, stalls > debounce, 1/3 preallocated): "
        "reported complete",
        lambda m: f"{res[m, 'slow']['pct']:.0f} % ({res[m, 'slow']['complete']}/"
                  f"{res[m, 'slow']['n']}, dups {res[m, 'slow']['dups']})",
        "100 %", all(res[m, "slow"]["pct"] == 100 and res[m, "slow"]["dups"] == 0
                     for m in ("events", "poll"))))
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
