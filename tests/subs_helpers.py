"""Real-looking synthetic Seestar subs written into a folder, as a telescope writes them (shared by
the node report tests and the report scenarios)."""

from __future__ import annotations

from pathlib import Path

from astropy.time import Time, TimeDelta

from starnode.synthetic import DEMO_SEQUENCE_FILE, make_sub

SITE = (48.85, 2.35)
def _write_subs(folder: Path, start: str, n: int, cadence_s: float, mag: float, *,
                synthetic: bool = True) -> list[Time]:
    folder.mkdir(parents=True, exist_ok=True)
    mids = []
    t0 = Time(start, scale="utc")
    for i in range(n):
        t = t0 + TimeDelta(i * cadence_s, format="sec")
        iso = t.isot[:19]
        hdul, truth = make_sub(target_mag=mag, seed=100 + i, date_obs=iso, site=SITE,
                               exptime=10.0)
        if not synthetic:  # as a real telescope writes it
            hdul[0].header.remove("SYNTHET")
        name = "Light_SS Cyg_10.0s_IRCUT_" + iso.replace("-", "").replace(":", "").replace(
            "T", "-") + ".fit"
        hdul.writeto(folder / name)
        mids.append(truth.mid_time)
    return mids


def config_file(tmp_path: Path, aavso: str) -> Path:
    """``tmp_path/config.yaml``: data in ``tmp_path/data``, the demo sequence offline, and the
    ``aavso`` section's lines (``key: value``, one a line)."""
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        f"photometry:\n  sequence_file: {DEMO_SEQUENCE_FILE}\n  offline: true\n"
        "aavso:\n" + "".join(f"  {line}\n" for line in aavso.splitlines()))
    return cfg_file
