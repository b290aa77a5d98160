"""A private, throw-away PostgreSQL cluster: for the hub's tests, its benchmark, and for trying
the hub on PostgreSQL without touching a system server.

Why not a mock: the hub's exactly-once guarantee rests on PostgreSQL's own ``ON CONFLICT`` and
transaction semantics, so tests run against the real server (Debian's ``postgresql`` package).
``initdb``/``postgres`` refuse to run as root, so as root the cluster runs as the ``postgres``
user (or ``nobody``) via ``runuser``; it listens on a free loopback port with ``trust``
authentication (loopback only, data in a temporary folder) and is stopped by :meth:`stop`.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from loopback import free_port

log = logging.getLogger(__name__)

__all__ = ["PgCluster", "PgUnavailable", "find_bin_dir"]


class PgUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (the message says why)."""


def find_bin_dir() -> Path | None:
    """Where PostgreSQL's server programs are.

    Returns
    -------
    Path or None
        The newest ``/usr/lib/postgresql/*/bin`` with initdb and postgres, or PATH's; None
        when there is none.
    """
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0)
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "postgres").exists():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("postgres") else None


class PgCluster:
    """``with PgCluster() as pg: url = pg.create_database("x")``."""

    def __init__(self, base: str | os.PathLike[str] | None = None, *,
                 fsync: bool = False) -> None:
        #: ``fsync`` of the server: off for tests (nothing to keep), on for a benchmark
        #: that should measure what a production server does.
        self.fsync = fsync
        self.bin = find_bin_dir()
        if self.bin is None:
            raise PgUnavailable("PostgreSQL binaries not found (apt-get install postgresql: "
                                "/usr/lib/postgresql/*/bin/initdb)")
        self.tmp = Path(tempfile.mkdtemp(prefix="starnode-pg-", dir=base))
        self.data = self.tmp / "data"
        self.port = free_port()
        self.prefix: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            user = "postgres"
            try:
                pwd.getpwnam(user)
            except KeyError:
                user = "nobody"
            runuser = shutil.which("runuser") or shutil.which("setpriv")
            if runuser is None:
                raise PgUnavailable("running as root and neither runuser nor setpriv is "
                                    "available to start PostgreSQL as an unprivileged user")
            self.prefix = [runuser, "-u", user, "--"]
            uid = pwd.getpwnam(user).pw_uid
            os.chmod(self.tmp, 0o755)
            os.chown(self.tmp, uid, -1)

    def _run(self, *args: str) -> None:
        assert self.bin is not None
        out = subprocess.run([*self.prefix, str(self.bin / args[0]), *args[1:]],
                             capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise PgUnavailable(f"{args[0]} failed: {out.stderr.strip()[-500:]}")

    def start(self) -> PgCluster:
        """``initdb`` and start the server; wait until it accepts connections.

        Returns
        -------
        PgCluster
            ``self``.

        Raises
        ------
        PgUnavailable
            It cannot start here (the message says why).
        """
        assert self.bin is not None
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        return self.resume()

    def pause(self) -> None:
        """Stop the server, keeping its data and port (:meth:`resume` starts it again): what
        a node or the hub sees while PostgreSQL is down."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(PgUnavailable, subprocess.TimeoutExpired):
                # the postmaster itself (under runuser, terminating the wrapper is not enough)
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w",
                          "-t", "30")
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def resume(self) -> PgCluster:
        """Start the server on its data folder and port; wait until it accepts connections.

        Returns
        -------
        PgCluster
            ``self``.

        Raises
        ------
        PgUnavailable
            It cannot start here.
        """
        assert self.bin is not None
        log_path = self.tmp / "postgres.log"
        cmd = [*self.prefix, str(self.bin / "postgres"), "-D", str(self.data),
               "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.tmp),
               "-c", f"fsync={'on' if self.fsync else 'off'}", "-c", "max_connections=200",
               "-c", "shared_buffers=128MB"]
        self.log_file = log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise PgUnavailable("postgres exited: "
                                    + log_path.read_text(errors="replace")[-800:])
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5):
                if self._ready():
                    return self
            time.sleep(0.1)
        self.stop()
        raise PgUnavailable("postgres did not accept connections within 30 s")

    def _ready(self) -> bool:
        assert self.bin is not None
        out = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p",
                              str(self.port)], capture_output=True)
        return out.returncode == 0

    def url(self, database: str = "postgres") -> str:
        """The URL of a database of this cluster.

        Parameters
        ----------
        database : str
            Its name.

        Returns
        -------
        str
        """
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh empty database (dropped first if it exists).

        Parameters
        ----------
        name : str
            Its name.

        Returns
        -------
        str
            Its URL.
        """
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self.pause()
        with contextlib.suppress(Exception):
            self.log_file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
