"""Issue 16 / issue 17 item 5: a node whose catalogues cannot be reached says so once per
catalogue, not twice per frame: real worker processes (2), real synthetic frames, nothing
listening where VSX and VSP should be (the bundled SS Cyg chart is the fallback)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from starnode.cli import main
from starnode.synthetic import make_sub

pytestmark = pytest.mark.slow

SITE = (48.85, 2.35)


def test_offline_node_warns_once_per_catalogue(tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "MyWorks" / "SS Cyg_sub"
    folder.mkdir(parents=True)
    for i in range(4):
        stamp = f"2025-09-14T2{i}:30:00"
        hdul, _ = make_sub(target_mag=11.5, seed=500 + i, date_obs=stamp, site=SITE,
                           exptime=10.0)
        buf = io.BytesIO()
        hdul.writeto(buf)
        name = "Light_SS Cyg_10.0s_IRCUT_" + stamp.replace("-", "").replace(":", "").replace(
            "T", "-") + ".fit"
        (folder / name).write_bytes(buf.getvalue())
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"data_dir: {tmp_path / 'data'}\nworkers: 2\n"
        "photometry:\n  vsx_url: http://127.0.0.1:9/vsx\n  vsp_url: http://127.0.0.1:9/vsp\n"
        "  gaia_tap_url: http://127.0.0.1:9/tap\n  http_retries: 1\n  http_backoff: 0\n"
        "  http_quiet_minutes: 5\n"
        "aavso:\n  observer_code: DEMO\n  mode: outbox\n")
    assert main(["process", str(tmp_path / "MyWorks"), "--config", str(cfg), "--quiet"]) == 0
    err = capfd.readouterr().err
    warnings = [ln for ln in err.splitlines() if " WARNING " in ln]
    vsx = [ln for ln in warnings if "VSX not available" in ln]
    vsp = [ln for ln in warnings if "VSP not available" in ln]
    assert len(vsx) == 1 and len(vsp) == 1, "\n".join(warnings)
    assert "4 reported" in err  # measured all the same, from the bundled chart
