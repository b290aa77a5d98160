"""The seed document's usage example runs as written against the installed project.

The code is the text of /work/shared/seed/image-watcher.md ("Usage Example" to the end) when
../shared is present (and must equal the copy below), else the copy below. The only change is
the watch path string; the infinite loop is ended as a user would: SIGINT (Ctrl+C ->
KeyboardInterrupt -> ``watcher.stop()``). It runs in a subprocess whose working folder holds the
``config.yaml`` that ``starnode run`` uses too.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import shared_dir
from starnode.synthetic import DEMO_SEQUENCE_FILE, make_sub

pytestmark = pytest.mark.slow

SEED_PATH = "/mnt/seestar/output"

#: A copy of the seed's usage example, for a clone without ../shared.
VENDORED = """\
import logging
from image_watcher import ImageWatcher
from photometry import run_pipeline
from aavso_submission import submit

logging.basicConfig(level=logging.INFO)

# Load your config (e.g. from config.yaml)
import yaml
with open("config.yaml") as f:
    config = yaml.safe_load(f)


def on_new_image(event: dict) -> None:
    path   = event["path"]
    header = event["header"]
    size   = event["size_kb"]

    print(f"New FITS: {path}  ({size:.1f} KB)  OBJECT={header.get('OBJECT', '?')}")

    result = run_pipeline(path, config)
    if result is None:
        print("  Pipeline returned None — skipping submission")
        return

    print(f"  mag={result['magnitude']:.3f} ± {result['uncertainty']:.3f}  "
          f"quality={result['quality_flag']}")

    sub = submit(result, config)
    print(f"  Submission status: {sub['status']}  message: {sub['message']}")


watcher = ImageWatcher(
    watch_path="/mnt/seestar/output",
    callback=on_new_image,
    debounce_delay=3.0,   # wait 3 s after the last event before firing
)

watcher.start()
print("Watching for new FITS files. Press Ctrl+C to stop.")

try:
    import time
    while True:
        time.sleep(1)
except KeyboardInterrupt:
    pass
finally:
    watcher.stop()
    print("Watcher stopped.")
"""


def seed_example() -> str:
    shared = shared_dir()
    if shared is None:
        return VENDORED
    text = (shared / "seed" / "image-watcher.md").read_text(encoding="utf-8")
    code = text.split("\nUsage Example\n", 1)[1].lstrip("\n")
    assert code == VENDORED, "the seed document changed: update VENDORED"
    return code


class _Reader(threading.Thread):
    """Collects the example's output lines (stdout and stderr)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.lines: list[str] = []

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, needle: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(needle in ln for ln in list(self.lines)):
                return
            if not self.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"no line with {needle!r}; got:\n" + "\n".join(self.lines))


def test_seed_usage_example_runs_verbatim(tmp_path: Path) -> None:
    code = seed_example()
    assert code.count(f'"{SEED_PATH}"') == 1
    watch = tmp_path / "output"
    watch.mkdir()
    script = code.replace(f'"{SEED_PATH}"', repr(str(watch)))
    (tmp_path / "seed_example.py").write_text(script)
    (tmp_path / "config.yaml").write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        f"watch:\n  path: {watch}\n"
        f"photometry:\n  sequence_file: {DEMO_SEQUENCE_FILE}\n  offline: true\n"
        "aavso:\n  observer_code: DEMO\n  mode: outbox\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "seed_example.py"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reader = _Reader(proc)
    reader.start()
    try:
        reader.wait_for("Watching for new FITS files", 60)
        hdul, _truth = make_sub(target_mag=11.3, seed=5, date_obs="2025-09-14T21:00:00",
                               site=(48.85, 2.35))
        buf = io.BytesIO()
        hdul.writeto(buf)
        frame = watch / "Light_SS Cyg_10.0s_IRCUT_20250914-210014.fit"
        frame.write_bytes(buf.getvalue())
        reader.wait_for("Submission status:", 90)
        proc.send_signal(signal.SIGINT)
        reader.wait_for("Watcher stopped.", 30)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    lines = reader.lines
    out = "\n".join(lines)
    assert f"New FITS: {frame}" in out and "OBJECT=SS Cyg" in out
    mag_line = next(ln for ln in lines if ln.strip().startswith("mag="))
    mag = float(mag_line.split("=")[1].split()[0])
    assert abs(mag - 11.3) < 0.1
    assert "Submission status: queued" in out
    # the same config.yaml drives the command line
    status = subprocess.run([sys.executable, "-m", "starnode", "status"], cwd=tmp_path,
                            capture_output=True, text=True, check=True)
    assert "outbox" in status.stdout and "1 row(s)" in status.stdout
