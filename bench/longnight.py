"""The long-night figure (issue 10, item 15): ms per AAVSO row at the start and at the end of a
night of one target.

An 8-hour night of 10 s subs is ~2,900 rows in one report file. Each ``submit`` adds one row;
its cost must not grow with the file (0.1.0 rebuilt, re-validated and rewrote the whole night
for every row). This submits ``--rows`` measurements of one target, 10 s apart, in outbox mode,
into a fresh data folder, and prints the mean ms per row over the first and the last
``--window`` rows, and their ratio.

    .venv/bin/python bench/longnight.py --rows 3000
    .venv/bin/python bench/longnight.py --rows 3000 --swap-every 10

``--swap-every N`` submits every N-th pair of rows in swapped order, as two workers do (issue 17:
"2 of 13, 3 of 40, 5 of 30"), and prints the ms of those out-of-order rows near the start and
near the end of the night too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from starnode.aavso import submit, validate_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from aavso_helpers import at, make_config  # the tests' measurement


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--swap-every", type=int, default=0, metavar="N",
                    help="submit every N-th pair of rows in swapped order (out-of-order rows)")
    args = ap.parse_args()
    order = list(range(args.rows))
    late: set[int] = set()  # positions of rows that arrive after a later one
    if args.swap_every:
        for i in range(0, args.rows - 1, 2 * args.swap_every):
            order[i], order[i + 1] = order[i + 1], order[i]
            late.add(i + 1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(Path(tmp))
        ms: list[float] = []
        report = ""
        for i in order:
            t0 = time.perf_counter()
            answer = submit(at(i * 10 / 60), cfg)
            ms.append((time.perf_counter() - t0) * 1000)
            if answer["status"] != "queued":
                print(f"row {i + 1}: {answer['status']}: {answer['message']}", file=sys.stderr)
                return 1
            report = answer["report_path"]
        w = min(args.window, args.rows // 2)
        first, last = sum(ms[:w]) / w, sum(ms[-w:]) / w
        ok = validate_file(report).ok
        print(f"rows={args.rows} first {w}: {first:.2f} ms/row, last {w}: {last:.2f} ms/row, "
              f"ratio {last / first:.2f}; row 1: {ms[0]:.2f} ms, row {args.rows}: "
              f"{ms[-1]:.2f} ms; total {sum(ms) / 1000:.1f} s; file valid: {ok}")
        if late:
            pos = sorted(late)
            k = max(1, min(5, len(pos) // 2))
            early_ms = sum(ms[p] for p in pos[:k]) / k
            late_ms = sum(ms[p] for p in pos[-k:]) / k
            print(f"out-of-order rows ({len(pos)}): first {k}: {early_ms:.2f} ms/row, last "
                  f"{k} (around row {pos[-1] + 1}): {late_ms:.2f} ms/row, ratio to the first "
                  f"{w} rows {late_ms / first:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
