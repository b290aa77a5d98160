"""Build tests/data/datadir-0.1.0 with starnode 0.1.0 (commit 0a44280), its own code only.

Run from a checkout of 0.1.0::

    git -C /work/main archive 0a44280 | tar -x -C /tmp/v010
    PYTHONPATH=/tmp/v010/src python tests/data/make_datadir_010.py tests/data/datadir-0.1.0

Three good synthetic SS Cyg subs of one night and one dark frame go through 0.1.0's real
``starnode process``; a VSX answer goes into 0.1.0's catalogue cache; the frames are deleted
afterwards, only the data_dir is kept.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

from starnode.synthetic import DEMO_SEQUENCE_FILE, make_sub

SITE = (48.85, 2.35)
TIMES = ("2025-08-01T21:00:00", "2025-08-01T21:05:00", "2025-08-01T21:10:00")


def sub(seed: int, date_obs: str, **opts: object) -> bytes:
    hdul, _ = make_sub(target_mag=11.5, seed=seed, date_obs=date_obs, site=SITE, exptime=10.0,
                       **opts)
    buf = io.BytesIO()
    hdul.writeto(buf)
    return buf.getvalue()


def main(out: Path) -> None:
    work = out.parent / "frames-0.1.0"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for i, t in enumerate(TIMES):
        name = "Light_SS Cyg_10.0s_IRCUT_" + t.replace("-", "").replace(":", "").replace(
            "T", "-") + ".fit"
        (work / name).write_bytes(sub(i + 1, t))
    (work / "Light_SS Cyg_10.0s_IRCUT_20250801-211500.fit").write_bytes(
        sub(9, "2025-08-01T21:15:00", imagetyp="Dark"))
    cfg = out.parent / "config-0.1.0.yaml"
    cfg.write_text(f"data_dir: {out}\nworkers: 1\n"
                   f"photometry:\n  sequence_file: {DEMO_SEQUENCE_FILE}\n  offline: true\n"
                   "aavso:\n  observer_code: DEMO\n  mode: outbox\n")
    subprocess.run([sys.executable, "-m", "starnode", "--config", str(cfg), "process",
                    str(work)], check=False)
    # a cached VSX answer, written by 0.1.0's own cache code (offline runs never ask VSX)
    from starnode.catalogs import _cache_put
    from starnode.config import Config

    _cache_put(Config.load(cfg), "vsx", "ss cyg", "https://vsx.aavso.org/index.php?view=api",
               {"Name": "SS Cyg", "RA2000": "325.67860", "Declination2000": "43.58615",
                "VariabilityType": "UGSS", "MaxMag": "7.7 V", "MinMag": "12.4 V"})
    shutil.rmtree(work)
    cfg.unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
