"""A share unmounted with frames directly in ``watch.path`` (issue 10, item 8): the mount point
stays as an empty folder, so the frames' folder still exists. Queued frames that disappear with
the share wait; they are processed when it is back. A real folder stands in for the mount: it
is renamed away and an empty folder takes its place, then it comes back."""

from __future__ import annotations

from pathlib import Path

from node_fakes import write_fake
from starnode.config import Config
from starnode.node import Node
from starnode.store import Ledger

FAKE = "node_fakes:measure"


def _state(cfg: Config, path: Path) -> str:
    with Ledger(cfg) as led:
        [row] = led.find(path)
        return str(row.state)


def test_frames_of_an_unmounted_share_wait_and_are_processed_after_the_remount(
        tmp_path: Path) -> None:
    root = tmp_path / "MyWorks"
    frames = [write_fake(root / f"Light_{i}.fit", "mag=11.0") for i in range(3)]
    cfg = Config({"data_dir": str(tmp_path / "data"),
                  "watch": {"path": str(root), "debounce_delay": 0}})
    node = Node(cfg, workers=1, measure=FAKE, submit=False)
    node._root_id = node._root_identity()  # as when the watcher started
    for f in frames:
        node.offer(str(f))
    root.rename(tmp_path / "share")  # unmounted ...
    root.mkdir()  # ... the mount point stays, empty
    assert node.dispatch() == 0
    assert [_state(cfg, f) for f in frames] == ["pending"] * 3  # waiting, not vanished
    root.rmdir()
    (tmp_path / "share").rename(root)  # mounted again
    node.resume_dispatch()
    for _ in range(100):
        node.dispatch()
        if not node.busy():
            break
        node.collect(0.5)
    node.close()
    assert [_state(cfg, f) for f in frames] == ["measured"] * 3


def test_a_frame_deleted_from_a_mounted_share_is_vanished(tmp_path: Path) -> None:
    root = tmp_path / "MyWorks"
    gone = write_fake(root / "Light_gone.fit", "mag=11.0")
    write_fake(root / "Light_stays.fit", "mag=11.0")
    cfg = Config({"data_dir": str(tmp_path / "data"),
                  "watch": {"path": str(root), "debounce_delay": 0}})
    node = Node(cfg, workers=1, measure=FAKE, submit=False)
    node._root_id = node._root_identity()
    node.offer(str(gone))
    gone.unlink()  # the user deleted it; the share is still there
    node.dispatch()
    node.close()
    assert _state(cfg, gone) == "skipped"
