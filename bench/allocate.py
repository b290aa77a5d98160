"""Benchmark of the hub's nightly allocation into PostgreSQL: 50 nodes at real-world sites
(:mod:`starnode.hub.simnet`), 497 candidate targets and 3 alerts, one night.

    .venv/bin/python bench/allocate.py [--night 2025-09-14] [--repeat 3] [--sqlite]

A private PostgreSQL cluster (tests/pgcluster.py) is started and stopped
by the script (``--sqlite``: a temporary SQLite file instead). It prints, per run, the time of
the whole allocation (reading the inputs, the visibility of 50 x 500 x 145 node-target-time
samples, the share-out, writing the assignments: ``plan_night(force=True)``), its parts, and
the share of covered targets doubled up on more than one node. Target: <= 5 s on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from starnode.hub.nightplans import add_wanted, plan_night
from starnode.hub.simnet import ALERTS, candidate_targets, register_network
from starnode.hub.store import HubStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pgcluster import PgCluster, PgUnavailable  # the tests' throw-away PostgreSQL


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--night", default="2025-09-14")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="starnode-bench-alloc-"))
    cluster = None
    if args.sqlite:
        url = f"sqlite:///{tmp / 'hub.sqlite3'}"
    else:
        try:
            cluster = PgCluster().start()
        except PgUnavailable as exc:
            print(f"no PostgreSQL here ({exc}); try --sqlite", file=sys.stderr)
            return 2
        url = cluster.create_database("bench_alloc")
    try:
        store = HubStore({"data_dir": str(tmp), "hub": {"database_url": url,
                                                         "plan_interval": 0}})
        d = dt.date.fromisoformat(args.night)
        before = dt.datetime(d.year, d.month, d.day, 6, tzinfo=dt.UTC).timestamp()
        register_network(store)
        for t in candidate_targets():
            add_wanted(store, t["name"], ra=t["ra"], dec=t["dec"], brightest=t["brightest"],
                       faintest=t["faintest"], cadence_days=t["cadence_days"], now=before)
        for name, ra, dec in ALERTS:
            add_wanted(store, name, kind="alert", ra=ra, dec=dec, now=before)
        print(f"{store.engine.dialect.name}: 50 nodes, {len(candidate_targets()) + 3} targets "
              f"(3 alerts), night {args.night}; {os.cpu_count()} CPU(s), load average "
              f"{os.getloadavg()[0]:.1f}")
        totals = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            out = plan_night(store, args.night, now=before, force=True)
            total = time.perf_counter() - t0
            totals.append(total)
            s = out["stats"]
            print(f"run {i + 1}: {total:.2f} s in all (allocation {s['seconds']:.2f} s, "
                  f"writing {s['write_seconds']:.2f} s, {s['nodes_changed']} node(s) "
                  f"rewritten); {s['items']} assignments, {s['targets']} targets covered, "
                  f"{s['doubled']} doubled up ({100 * s['doubled_share']:.1f} %), "
                  f"{s['unassigned']} unassigned; alerts on "
                  + ", ".join(f"{k}: {len(v)} nodes" for k, v in s["alerts"].items()))
        print(f"allocation time: median {statistics.median(totals):.2f} s, max "
              f"{max(totals):.2f} s (target <= 5 s)")
        store.close()
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
