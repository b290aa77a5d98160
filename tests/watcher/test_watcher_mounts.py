"""ImageWatcher modes: filesystem detection, polling, shares that drop, FUSE and bind mounts."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from starnode.watcher import choose_mode, find_mount, read_mounts
from starnode.watcher import mounts as mounts_mod
from watcher_helpers import DEBOUNCE, TIMEOUT, Collector, fits_bytes, slow_write, writer_thread
from watcher_helpers import make_watcher as make_watcher

MOUNTINFO_LINES = [
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
    "25 22 0:21 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw",
    "30 22 0:40 / /srv/sn/seestar rw,relatime shared:9 - cifs //10.0.0.1/EMMC\\040Images rw,vers=3",
    "31 22 0:41 / /srv/sn/EMMC\\040Images rw,relatime - smb3 //s50/EMMC\\040Images rw",
    "32 22 0:42 / /srv/sn/nas rw - nfs4 nas:/export rw",
    "33 32 8:2 / /srv/sn/nas/localdisk rw - ext4 /dev/sdb1 rw",
    "34 22 0:43 / /srv/sn/old-nfs rw - nfs nas:/old rw",
    "35 22 0:44 / /srv/sn/ssh rw - fuse.sshfs pi@scope:/ rw",
    "36 22 0:45 / /srv/sn/rclone rw - fuse.rclone remote: rw",
    "37 22 0:46 / /srv/sn/wsl rw - 9p drvfs rw",
    "38 22 0:47 / /srv/sn/dav rw - davfs http://x rw",
    "39 22 0:48 / /srv/sn/overlay rw - overlay overlay rw,lowerdir=/a",
    "40 22 0:49 / /srv/sn/usb-ntfs rw - fuseblk /dev/sdc1 rw",
    "41 22 0:50 / /srv/sn/local rw - xfs /dev/sdd1 rw",
    "42 22 0:51 / /srv/sn/local/share rw - cifs //nas/share rw",
    "43 22 0:52 / /srv/sn/bt rw - btrfs /dev/sde1 rw",
    "44 22 0:53 / /srv/sn/sshfs2 rw - sshfs x:/ rw",
]


@pytest.fixture
def mountinfo(tmp_path: Path) -> Path:
    path = tmp_path / "mountinfo"
    path.write_text("\n".join(MOUNTINFO_LINES) + "\n")
    return path


@pytest.mark.parametrize(("path", "mode", "fstype"), [
    ("/srv/sn/seestar/MyWorks/M 94_sub", "poll", "cifs"),
    ("/srv/sn/EMMC Images/MyWorks", "poll", "smb3"),  # \040-escaped mount point
    ("/srv/sn/nas/frames", "poll", "nfs4"),
    ("/srv/sn/old-nfs", "poll", "nfs"),
    ("/srv/sn/ssh/x", "poll", "fuse.sshfs"),
    ("/srv/sn/rclone", "poll", "fuse.rclone"),
    ("/srv/sn/wsl/y", "poll", "9p"),
    ("/srv/sn/dav", "poll", "davfs"),
    ("/srv/sn/sshfs2/z", "poll", "sshfs"),
    ("/srv/sn/nas/localdisk/frames", "events", "ext4"),  # longest prefix wins
    ("/srv/sn/overlay/frames", "events", "overlay"),
    ("/srv/sn/usb-ntfs", "events", "fuseblk"),
    ("/srv/sn/bt", "events", "btrfs"),
    ("/srv/sn/seestarX", "events", "ext4"),  # a prefix of the name is not a parent
    ("/tmp/frames", "events", "tmpfs"),
    ("/home/user/frames", "events", "ext4"),
])
def test_auto_mode_from_mountinfo(mountinfo: Path, path: str, mode: str, fstype: str) -> None:
    got, reason = choose_mode(path, mountinfo=mountinfo)
    assert got == mode, reason
    assert fstype in reason
    m = find_mount(path, read_mounts(mountinfo))
    assert m is not None and m.fstype == fstype


def test_network_mount_below_a_recursive_root_means_poll(mountinfo: Path) -> None:
    assert choose_mode("/srv/sn/local", mountinfo=mountinfo)[0] == "events"
    mode, reason = choose_mode("/srv/sn/local", recursive=True, mountinfo=mountinfo)
    assert mode == "poll" and "/srv/sn/local/share" in reason


def test_mountinfo_parsing_details(mountinfo: Path, tmp_path: Path) -> None:
    mounts = read_mounts(mountinfo)
    assert len(mounts) == len(MOUNTINFO_LINES)
    smb = next(m for m in mounts if m.fstype == "smb3")
    assert smb.mount_point == "/srv/sn/EMMC Images" and smb.source == "//s50/EMMC Images"
    assert read_mounts(tmp_path / "missing") == []
    assert choose_mode("/x", mountinfo=tmp_path / "missing")[0] == "events"


@pytest.mark.parametrize(("fstype", "expected"), [
    ("cifs", "poll"), ("nfs4", "poll"), ("fuse.sshfs", "poll"), ("ext4", "events"),
    ("tmpfs", "events"), ("overlay", "events")])
def test_auto_mode_watcher_uses_mountinfo(tmp_path: Path, make_watcher: Any,
                                          monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture,
                                          fstype: str, expected: str) -> None:
    watched = tmp_path / "frames"
    watched.mkdir()
    info = tmp_path / "mountinfo"
    info.write_text(f"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                    f"30 22 0:40 / {str(watched).replace(' ', chr(92) + '040')} rw - "
                    f"{fstype} //server/share rw\n")
    monkeypatch.setattr(mounts_mod, "MOUNTINFO", str(info))
    c = Collector()
    with caplog.at_level(logging.INFO, logger="starnode.watcher"):
        w = make_watcher(watched, c, mode="auto", poll_interval=0.05)
    assert w.active_mode == expected and fstype in w.mode_reason
    assert any(expected in r.getMessage() or "OS events" in r.getMessage()
               for r in caplog.records if fstype in r.getMessage())
    (watched / "a.fits").write_bytes(fits_bytes())
    c.wait_for(1)
    assert c.paths == [str(watched / "a.fits")]


# ----------------------------------------------------------------------------- poll mode
def test_poll_mode_stats_only_new_or_pending_files(tmp_path: Path, make_watcher: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = fits_bytes((8, 8))
    for i in range(200):
        (tmp_path / f"old{i:03d}.fits").write_bytes(data)
    stats: list[str] = []
    real_stat = os.stat

    def counting_stat(path: Any, *a: Any, **k: Any) -> os.stat_result:
        p = os.fspath(path) if not isinstance(path, int) else ""
        if isinstance(p, str) and p.endswith(".fits"):
            stats.append(p)
        return real_stat(path, *a, **k)

    monkeypatch.setattr(os, "stat", counting_stat)
    c = Collector()
    w = make_watcher(tmp_path, c, mode="poll", poll_interval=0.02)
    time.sleep(0.2)  # about ten polls
    assert stats == []  # 200 old files listed each time, never stat'ed
    (tmp_path / "new.fits").write_bytes(data)
    c.wait_for(1)
    assert c.paths == [str(tmp_path / "new.fits")]
    assert set(stats) == {str(tmp_path / "new.fits")}
    assert w.active_mode == "poll" and w._observer.daemon


@pytest.mark.parametrize("how", ["directory_vanishes", "listing_raises", "mount_point_empty"])
def test_share_that_drops_and_returns(tmp_path: Path, make_watcher: Any,
                                      monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture, how: str) -> None:
    share = tmp_path / "share"
    share.mkdir()
    aside = tmp_path / "aside"
    data = fits_bytes((16, 16))
    (share / "before_start.fits").write_bytes(data)
    c = Collector()
    with caplog.at_level(logging.INFO, logger="starnode.watcher"):
        make_watcher(share, c, mode="poll", poll_interval=0.03)
        for i in range(5):
            (share / f"seen{i}.fits").write_bytes(data)
        first = c.wait_for(5)
        # the share drops
        real_scandir = os.scandir
        if how == "directory_vanishes":
            share.rename(aside)
        elif how == "listing_raises":
            def failing(path: Any = ".") -> Any:
                if os.fspath(path).startswith(str(share)):
                    raise OSError(112, "Host is down")
                return real_scandir(path)
            monkeypatch.setattr(os, "scandir", failing)
        else:  # the share is unmounted: its mount point is an empty directory
            aside.mkdir()
            for f in share.iterdir():
                f.rename(aside / f.name)
        time.sleep(0.3)  # ten polls while it is down
        # it comes back, with one new frame written meanwhile on the server
        if how == "directory_vanishes":
            (aside / "while_down.fits").write_bytes(data)
            aside.rename(share)
        elif how == "listing_raises":
            (share / "while_down.fits").write_bytes(data)
            monkeypatch.setattr(os, "scandir", real_scandir)
        else:
            (aside / "while_down.fits").write_bytes(data)
            for f in aside.iterdir():
                f.rename(share / f.name)
        events = c.wait_for(6)
        events = c.quiet(0.5)
    assert len(first) == 5
    assert [os.path.basename(e["path"]) for e in events[5:]] == ["while_down.fits"]
    assert len(events) == 6  # no duplicates, nothing from before start
    msgs = [r.getMessage() for r in caplog.records]
    if how != "mount_point_empty":
        assert sum("share may be down" in m for m in msgs) == 1
        assert sum("listable again" in m for m in msgs) == 1


def test_poll_mode_recursive_new_folders(tmp_path: Path, make_watcher: Any) -> None:
    works = tmp_path / "MyWorks"
    (works / "M 94").mkdir(parents=True)
    (works / "M 94" / "old.fit").write_bytes(fits_bytes())
    c = Collector()
    make_watcher(works, c, mode="poll", poll_interval=0.03, recursive=True)
    sub = works / "SS Cyg_sub"
    sub.mkdir()
    names = [f"Light_SS Cyg_10.0s_IRCUT_20250601-0100{i:02d}.fit" for i in range(5)]
    for n in names:
        (sub / n).write_bytes(fits_bytes())
    (works / "M 94" / "Stacked_2_M 94.fit").write_bytes(fits_bytes())
    c.wait_for(6)
    assert sorted(c.quiet(3 * DEBOUNCE) and c.paths) == sorted(
        [str(sub / n) for n in names] + [str(works / "M 94" / "Stacked_2_M 94.fit")])


# ----------------------------------------------------------------------------- FUSE
PASSTHROUGH = r'''
import os, sys
from fuse import FUSE, FuseOSError, Operations

class Passthrough(Operations):
    """Read-only view of a folder: writes happen in the folder, not through the mount."""
    use_ns = True
    def __init__(self, root): self.root = root
    def _p(self, path): return os.path.join(self.root, path.lstrip("/"))
    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._p(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        d = {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid")}
        d.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return d
    def readdir(self, path, fh):
        return [".", "..", *os.listdir(self._p(path))]
    def open(self, path, flags):
        return os.open(self._p(path), os.O_RDONLY)
    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)
    def release(self, path, fh):
        os.close(fh)

FUSE(Passthrough(sys.argv[1]), sys.argv[2], foreground=True, nothreads=True, ro=True,
     subtype="starnodetest", fsname="starnode-test")
'''


def _mounted(mount_point: Path) -> str | None:
    for m in read_mounts():
        if m.mount_point == str(mount_point):
            return m.fstype
    return None


@pytest.fixture
def fuse_share(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(server_side, client_mount): a FUSE passthrough mount of ``server_side``."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("FUSE mount test needs Linux and root")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is absent")
    probe = subprocess.run([sys.executable, "-c", "import fuse"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("fusepy and libfuse2 are needed for the FUSE test (pip install fusepy; "
                    "apt-get install libfuse2): " + probe.stderr.decode()[-120:])
    server, client = tmp_path / "server", tmp_path / "client"
    server.mkdir()
    client.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", PASSTHROUGH, str(server), str(client)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while _mounted(client) is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if _mounted(client) is None:
        proc.kill()
        out = proc.communicate()[1].decode()[-200:]
        pytest.skip(f"could not mount a FUSE passthrough: {out}")
    try:
        yield server, client
    finally:
        subprocess.run(["umount", "-l", str(client)], capture_output=True)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_fuse_share_written_on_the_server_side(fuse_share: tuple[Path, Path],
                                               make_watcher: Any) -> None:
    """The Seestar case: the telescope writes on the server side, inotify on the client sees
    nothing; auto mode detects the FUSE mount, polls, and reports each frame once, complete."""
    server, client = fuse_share
    assert _mounted(client) == "fuse.starnodetest"
    (server / "old.fit").write_bytes(fits_bytes())
    blind = Collector()
    make_watcher(client, blind, mode="events")
    c = Collector()
    w = make_watcher(client, c, mode="auto", poll_interval=0.05)
    assert w.active_mode == "poll" and "fuse.starnodetest" in w.mode_reason
    data = fits_bytes((150, 120))
    writers = [writer_thread(slow_write, server / f"Light_{i}.fit", data, chunk=8192,
                             stall_at=0.5, stall=3 * DEBOUNCE if i % 2 else 0.0)
               for i in range(4)]
    events = c.wait_for(4)
    for t in writers:
        t.join(TIMEOUT)
    events = c.quiet(4 * DEBOUNCE)
    assert sorted(e["path"] for e in events) == [str(client / f"Light_{i}.fit") for i in range(4)]
    assert all(e["_complete_at_call"] and e["size_kb"] * 1024 == len(data) for e in events)
    assert blind.events == []  # OS events saw nothing of the server-side writes


# ----------------------------------------------------------------------------- bind mount
def test_bind_mount_writes_through_the_other_path_are_seen(tmp_path: Path,
                                                            make_watcher: Any) -> None:
    """Finding: inotify watches inodes, so a write through the source of a bind mount is
    reported by OS events on the target (bind mounts are local: auto mode keeps events)."""
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("bind mount test needs Linux, root and mount(8)")
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    r = subprocess.run(["mount", "--bind", str(src), str(dst)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"mount --bind failed: {r.stderr.decode().strip()}")
    try:
        assert choose_mode(dst)[0] == "events"
        c = Collector()
        make_watcher(dst, c, mode="auto")
        writer_thread(slow_write, src / "via_src.fits", fits_bytes(), stall_at=0.5,
                      stall=3 * DEBOUNCE)
        (ev,) = c.wait_for(1)
        assert ev["path"] == str(dst / "via_src.fits") and ev["_complete_at_call"]
    finally:
        subprocess.run(["umount", "-l", str(dst)], capture_output=True)
