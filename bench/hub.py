"""Benchmark of the hub on PostgreSQL: 200 simulated nodes each push a night (300 measurements).

    .venv/bin/python bench/hub.py [--nodes 200] [--per-node 300] [--batch 50] [--workers 2]
                                  [--rate 2000] [--no-fsync]

PostgreSQL runs with fsync=on, as in production (``--no-fsync`` turns it off); the setting is
printed beside the figures.

A private PostgreSQL cluster (Debian's postgresql, ``PgCluster`` of tests/pgcluster.py)
and ``starnode hub serve`` (uvicorn, ``--workers`` processes) run as subprocesses on this
machine; the nodes are asyncio tasks in this process, each with its own keep-alive loopback
connection (a minimal HTTP/1.1 client, :class:`_Conn`, so the client does not starve the
server; its CPU is counted separately). Figures:

1. saturation: every node pushes its whole night as fast as it can, all at once -> sustained
   measurements/s and push latency under that (queueing) load;
2. paced: the same number of nodes push a second night at an offered ``--rate`` measurements/s
   in total (each node one batch every nodes*batch/rate seconds) -> p50/p95/p99 push latency
   at that rate;
3. cross-validation of the first night (20 targets, 10 nodes each);
4. peak RSS of the hub processes and of PostgreSQL, sampled every 0.2 s.

Bounded in count and time; it stops by itself and stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from starnode.frame.timesite import night_of
from starnode.hub import SCHEMA_VERSION
from starnode.hub.consensus import crosscheck
from starnode.hub.store import HubStore
from starnode.node.forwarder import wire_measurement

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from loopback import free_port
from pgcluster import PgCluster  # the tests' throw-away PostgreSQL

JD0 = 2460933.35
TARGETS = [f"V{400 + i} Cyg" for i in range(20)]


def _result(node: int, k: int, night: int) -> dict[str, Any]:
    target = TARGETS[node % len(TARGETS)]
    jd = JD0 + night + k / 1440.0 + (node % 7) * 2e-5
    # a star changing by up to 0.025 mag in a 15-min window, 0.02 mag of noise
    mag = 11.0 + 0.2 * math.sin(k / 120.0) + 0.01 * ((node * 7 + k) % 5 - 2)
    if node % len(TARGETS) == 3 and node // len(TARGETS) == 0:
        mag += 0.3  # one node of one target is off
    comps = [{"name": lab, "auid": f"000-BCP-{100 + i}", "label": lab,
              "catalog_mag": 10.5 + 0.4 * i, "catalog_err": 0.02,
              "instrumental_mag": -8.0 + 0.4 * i, "residual": 0.01, "used": True}
             for i, lab in enumerate(["105", "109", "113"])]
    return {"target_name": target, "auid": None, "filter": "TG", "band": "V", "jd": jd,
            "hjd": jd + 0.003, "magnitude": mag, "uncertainty": 0.02,
            "quality_flag": "good", "quality_reasons": [], "comparison_stars": 3,
            "comps": comps, "check_star": {"name": "116", "label": "116", "auid": None,
                                           "mag": 11.62, "catalog_mag": 11.6,
                                           "instrumental_mag": -6.9, "deviation": 0.02,
                                           "error": 0.02},
            "chart_id": "X41941HP", "sequence_source": "vsp", "airmass": 1.2, "exptime": 10.0,
            "instrumental_mag": -7.2, "frame_kind": "sub", "telescope": "Seestar S50",
            "file": f"Light_{node}_{night}_{k:04d}.fit", "site_longitude": 2.35,
            "night": night_of(jd, 2.35)}


def _batches(nodes: int, per_node: int, batch: int, night: int) -> list[list[bytes]]:
    out = []
    for n in range(nodes):
        items = []
        for k in range(per_node):
            sha = f"{n:016x}{night:016x}{k:032x}"
            items.append(wire_measurement(_result(n, k, night), frame_sha256=sha))
        out.append([json.dumps({"schema_version": SCHEMA_VERSION, "node": f"node{n:03d}",
                                "measurements": items[i:i + batch]}).encode()
                    for i in range(0, per_node, batch)])
    return out


class Sampler(threading.Thread):
    """Peak RSS (MiB) of process trees, sampled every 0.2 s."""

    def __init__(self, roots: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.peak = dict.fromkeys(roots, 0.0)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            for name, pid in self.roots.items():
                try:
                    p = psutil.Process(pid)
                    procs = [p] if pid == os.getpid() else [p, *p.children(recursive=True)]
                    rss = sum(x.memory_info().rss for x in procs if x.is_running())
                except psutil.Error:
                    continue
                self.peak[name] = max(self.peak[name], rss / 2**20)


class _Conn:
    """One node's keep-alive HTTP/1.1 connection, as lean as a client can be.

    Why not httpx here: with 200 connections, httpx.AsyncClient spent as much CPU per push as
    the hub itself (about 10 ms), and on 2 shared cores the client's CPU is taken from the
    server's. This writes a prepared request and reads the answer by its Content-Length:
    tens of microseconds per push, so the figures measure the hub.
    """

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = (f"POST /api/v1/measurements HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                     "Content-Length: ").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(x.split(":", 1)[1]) for x in lines[1:]
                      if x.lower().startswith("content-length:"))
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _push_all(url: str, tokens: list[str], batches: list[list[bytes]],
                    interval: float) -> tuple[list[float], int, float]:
    """Every node pushes its batches (one every ``interval`` s; 0 = back to back)."""
    lat: list[float] = []
    stored = 0
    retries = [0]
    host, port = url.split("//", 1)[1].rsplit(":", 1)

    async def node(i: int) -> None:
        nonlocal stored
        conn = _Conn(host, int(port), tokens[i])
        if interval:
            await asyncio.sleep(interval * i / len(tokens))  # staggered
        try:
            for body in batches[i]:
                t0 = time.perf_counter()
                for attempt in range(5):  # as the node's forwarder: a resend is harmless
                    try:
                        status, answer = await conn.post(body)
                        break
                    except (OSError, asyncio.IncompleteReadError):
                        conn.close()
                        retries[0] += 1
                        if attempt == 4:
                            raise
                lat.append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"push failed: {status} {answer[:200]!r}")
                stored += json.loads(answer)["stored"]
                if interval:
                    await asyncio.sleep(max(0.0, interval - (time.perf_counter() - t0)))
        finally:
            conn.close()
    t0 = time.perf_counter()
    await asyncio.gather(*(node(i) for i in range(len(tokens))))
    wall = time.perf_counter() - t0
    if retries[0]:
        print(f"   ({retries[0]} push(es) retried after a dropped connection)")
    return lat, stored, wall


def _cpu(pid: int, tree: bool = True) -> float:
    """CPU seconds (user + system) used so far by a process and, with ``tree``, its children."""
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)] if tree else [p]
        return sum(sum(x.cpu_times()[:2]) for x in procs if x.is_running())
    except psutil.Error:
        return 0.0


def _load() -> str:
    """The machine's load average (1, 5, 15 min): others share these cores."""
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--per-node", type=int, default=300)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--rate", type=float, default=2000.0, help="offered load of the paced "
                    "phase, measurements/s")
    ap.add_argument("--no-fsync", dest="fsync", action="store_false",
                    help="run PostgreSQL with fsync=off (faster, not what production does; "
                    "the default is fsync=on)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="starnode-bench-hub-"))
    print(f"building {args.nodes} x {args.per_node} measurements x 2 nights ...", flush=True)
    nights = [_batches(args.nodes, args.per_node, args.batch, n) for n in (0, 1)]
    size = sum(len(b) for node in nights[0] for b in node) / (args.nodes * args.per_node)
    with PgCluster(fsync=args.fsync) as pg:
        url = pg.create_database("bench")
        port = free_port()
        cfg = tmp / "hub.yaml"
        cfg.write_text(json.dumps({"data_dir": str(tmp / "hub"), "log_level": "WARNING",
                                   "hub": {"database_url": url, "workers": args.workers,
                                           "listen": f"127.0.0.1:{port}",
                                           "rate_limit_per_minute": 100000}}))
        store = HubStore(cfg)
        tokens = [store.add_node(f"node{n:03d}", f"OBS{n:03d}") for n in range(args.nodes)]
        hub = subprocess.Popen([sys.executable, "-m", "starnode", "--config", str(cfg),
                                "--log-level", "WARNING", "hub", "serve"],
                               stdout=(tmp / "hub.log").open("ab"), stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        sampler = Sampler({"hub": hub.pid, "postgres": pg.proc.pid if pg.proc else 0,
                           "bench client": os.getpid()})
        try:
            end = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > end or hub.poll() is not None:
                    raise RuntimeError("the hub did not start: "
                                       + (tmp / "hub.log").read_text()[-2000:])
                time.sleep(0.2)
            sampler.start()
            total = args.nodes * args.per_node
            print(f"{args.nodes} nodes x {args.per_node} measurements ({size:.0f} bytes each "
                  f"on the wire), batches of {args.batch}, hub: {args.workers} uvicorn "
                  f"worker(s), PostgreSQL {pg.bin.parent.name if pg.bin else '?'} with "
                  f"fsync={'on' if args.fsync else 'off'}; "
                  f"{os.cpu_count()} cores; {_load()} before", flush=True)

            pids = {"hub": (hub.pid, True), "postgres": (pg.proc.pid if pg.proc else 0, True),
                    "bench client": (os.getpid(), False)}
            cpu0 = {k: _cpu(*v) for k, v in pids.items()}
            lat, stored, wall = asyncio.run(_push_all(base, tokens, nights[0], 0.0))
            assert stored == total, (stored, total)
            cpu = {k: _cpu(*v) - cpu0[k] for k, v in pids.items()}
            print(f"1. saturation: {total} measurements in {wall:.1f} s = "
                  f"{total / wall:,.0f} measurements/s sustained ({len(lat)} pushes, "
                  f"{len(lat) / wall:.0f}/s); latency p50 {_pct(lat, .5):.0f} ms, "
                  f"p95 {_pct(lat, .95):.0f} ms (queueing behind {args.nodes} concurrent "
                  "pushes)", flush=True)
            print("   CPU seconds in that phase: " + ", ".join(
                f"{k} {v:.1f}" for k, v in cpu.items()) + f" (of {2 * wall:.0f} available); "
                f"{_load()}", flush=True)
            # a resend of the whole night stores nothing
            _lat, stored2, _wall = asyncio.run(_push_all(base, tokens[:20], nights[0][:20], 0.0))
            assert stored2 == 0
            interval = args.nodes * args.batch / args.rate
            cpu0 = {k: _cpu(*v) for k, v in pids.items()}
            lat, stored, wall = asyncio.run(_push_all(base, tokens, nights[1], interval))
            assert stored == total
            cpu = {k: _cpu(*v) - cpu0[k] for k, v in pids.items()}
            steady = wall - interval * (args.nodes - 1) / args.nodes  # after the stagger
            print(f"2. paced at {args.rate:,.0f} measurements/s offered (each node one batch "
                  f"every {interval:.1f} s, starts staggered over {interval:.1f} s): "
                  f"{total / steady:,.0f}/s achieved once all pushed; push latency "
                  f"p50 {_pct(lat, .5):.0f} ms, p95 {_pct(lat, .95):.0f} ms, "
                  f"p99 {_pct(lat, .99):.0f} ms, max {_pct(lat, 1.0):.0f} ms "
                  f"(PostgreSQL fsync={'on' if args.fsync else 'off'})", flush=True)
            print("   CPU seconds in that phase: " + ", ".join(
                f"{k} {v:.1f}" for k, v in cpu.items()) + f" (of {2 * wall:.0f} available); "
                f"{_load()}", flush=True)
            assert store.measurement_count() == 2 * total
            t0 = time.perf_counter()
            summary = crosscheck(store, "2025-09-14")
            cc = time.perf_counter() - t0
            print(f"3. cross-validation of night 2025-09-14: {summary['measurements']} "
                  f"measurements, {summary['targets']} targets, {summary['windows']} windows, "
                  f"{summary['outliers']} outliers, held {summary['held']}: {cc:.1f} s",
                  flush=True)
        finally:
            sampler.stop.set()
            hub.send_signal(signal.SIGTERM)
            try:
                hub.wait(30)
            except subprocess.TimeoutExpired:
                hub.kill()
                hub.wait()
            store.close()
        print("4. peak RSS: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in sampler.peak.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
