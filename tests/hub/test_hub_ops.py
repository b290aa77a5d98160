"""Issue 16, the hub operator's side: ``hub nodes`` prints nothing raw (F3), tokens can be
revoked (F13), strangers are rate-limited and a slow body is cut off (F14), the supervisor's
workers die with it and a restart finds the port free (F12), no token in the access log (F8),
and every ``hub`` command failure is one line (section 5)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the hub extra is not installed")
pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")

from hub_helpers import (  # noqa: E402
    db_url,  # noqa: F401
    free_port,
    hub_config,
    pg_cluster,  # noqa: F401
    serve,
)
from starnode.cli import main  # noqa: E402
from starnode.hub.store import HubStore  # noqa: E402
from waiting import stop_process  # noqa: E402


def _yaml(tmp_path: Path, url: str | None = None, **hub: Any) -> Path:
    import yaml

    raw = hub_config(tmp_path, url or f"sqlite:///{tmp_path / 'hub.sqlite3'}", **hub)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_hub_nodes_prints_no_control_characters(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """F3: a heartbeat stored before the door checked it (escape sequences, a forged row,
    absurd numbers) is printed escaped and bounded, one line per node."""

    from starnode.hub import db

    cfg = _yaml(tmp_path)
    store = HubStore(str(cfg))
    store.add_node("scope-a", "ABC")
    evil = {"version": "\x1b[2J\x1b[H0.2.0\nscope-z  ZZZ  ok", "watch_mode": "poll\r",
            "queue_length": 10 ** 40, "free_disk_gb": 10.0 ** 308,
            "recent_errors": ["\x1b]0;pwned\x07boom"]}
    with store.engine.begin() as conn:
        conn.execute(db.nodes.update().values(heartbeat=evil, last_contact=time.time()))
    store.close()
    capsys.readouterr()
    assert main(["--config", str(cfg), "hub", "nodes"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out
    assert len(out.splitlines()) == 2  # the header and one node: no forged row
    assert "1" * 20 not in out and "0" * 20 not in out
    assert max(len(line) for line in out.splitlines()) < 400


def test_revoke_node_and_admin_tokens(tmp_path: Path, db_url: str,  # noqa: F811
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """F13: ``hub revoke NODE``, ``--token``, ``--admin LABEL``: the token is refused at once
    by this process; ``new-token`` gives the node a new one; ``tokens`` lists them."""
    cfg = _yaml(tmp_path, db_url)
    store = HubStore(str(cfg))
    node = store.add_node("scope-a", "ABC")
    admin = store.add_admin("ops")
    other_admin = store.add_admin("backup")
    with serve(store) as url, httpx.Client(base_url=url) as http:
        def code(token: str) -> int:
            return http.get("/api/v1/whoami",
                            headers={"Authorization": f"Bearer {token}"}).status_code
        assert code(node) == code(admin) == 200
        store.revoke(node="scope-a")
        store.revoke(admin_label="ops")
        assert code(node) == 401 and code(admin) == 401
        assert code(other_admin) == 200
        store.revoke(token=other_admin)
        assert code(other_admin) == 401
        fresh = store.new_token("scope-a")
        assert code(fresh) == 200
    store.close()
    # the commands
    capsys.readouterr()
    assert main(["--config", str(cfg), "hub", "tokens"]) == 0
    listing = capsys.readouterr().out
    assert "scope-a" in listing and fresh not in listing
    assert main(["--config", str(cfg), "hub", "revoke", "scope-a"]) == 0
    assert "1 token(s) revoked" in capsys.readouterr().out
    assert main(["--config", str(cfg), "hub", "revoke", "scope-a"]) == 1
    assert "no token" in capsys.readouterr().err
    assert main(["--config", str(cfg), "hub", "revoke", "--admin", "nobody"]) == 1


def test_strangers_are_rate_limited_and_slow_bodies_cut(tmp_path: Path) -> None:
    """F14: requests with random tokens from one address are refused with 429 after the
    limit (without asking the database), while a node's valid token still works; a body
    that never arrives is answered 408 after hub.body_timeout."""
    store = HubStore(hub_config(tmp_path, f"sqlite:///{tmp_path / 'hub.sqlite3'}",
                                unauthenticated_per_minute=5, body_timeout=1.0))
    token = store.add_node("scope-a", "ABC")
    with serve(store) as url, httpx.Client(base_url=url) as http:
        assert http.get("/api/v1/whoami",
                        headers={"Authorization": f"Bearer {token}"}).status_code == 200
        codes = [http.get("/api/v1/whoami", headers={
            "Authorization": f"Bearer snn_random{i}"}).status_code for i in range(8)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}, codes
        r = http.get("/api/v1/whoami")  # no token at all counts too
        assert r.status_code == 429 and r.headers["retry-after"]
        store._auth_cache.clear()  # the node's token is not cached any more: still served
        assert http.get("/api/v1/whoami",
                        headers={"Authorization": f"Bearer {token}"}).status_code == 200
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /api/v1/heartbeat HTTP/1.1\r\nHost: x\r\n"
                      b"Authorization: Bearer " + token.encode() + b"\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{")
            t0 = time.monotonic()
            answer = s.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert time.monotonic() - t0 < 5
    # memory is bounded whatever the number of addresses
    from starnode.hub.app import AddressLimiter

    lim = AddressLimiter(5, max_addresses=100)
    for i in range(1000):
        lim.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(lim) == 100
    store.close()


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(cfg: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "starnode", "--config", str(cfg),
                             "--log-level", "INFO", "hub", "serve"],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code \
                    == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise AssertionError("the hub exited: " + log.read_text()[-2000:])
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the hub did not start: " + log.read_text()[-2000:])


@pytest.mark.slow
def test_no_token_in_the_access_log(tmp_path: Path) -> None:
    """F8: a token put in a URL is refused, and the access log does not keep it."""
    port = free_port()
    cfg = _yaml(tmp_path, listen=f"127.0.0.1:{port}")
    log = tmp_path / "hub.log"
    proc = _start(cfg, port, log)
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/whoami?token=sna_SECRETVALUE",
                      timeout=5)
        assert r.status_code == 401
    finally:
        stop_process(proc, 20)
    text = log.read_text()
    assert "whoami" in text  # the access log is on...
    assert "SECRETVALUE" not in text  # ...and keeps no token
    assert "alembic" not in text.lower()  # section 5: no alembic noise


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_workers_die_with_the_supervisor(tmp_path: Path) -> None:
    """F12: SIGKILL of ``hub serve`` (2 workers): no worker keeps serving, and a restart on
    the same port works."""
    port = free_port()
    cfg = _yaml(tmp_path, workers=2, listen=f"127.0.0.1:{port}")
    log = tmp_path / "hub.log"
    proc = _start(cfg, port, log)
    try:
        workers = _children(proc.pid)
        assert workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        end = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < end:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "a worker outlived its supervisor"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
        proc = _start(cfg, port, log)  # the port is free again
    finally:
        stop_process(proc, 20)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_hub_command_failures_are_one_line(tmp_path: Path) -> None:
    """Section 5: a port out of range, a busy port (nothing printed as if it started), a
    mysql:// URL, a database server that is not running, and a missing extra: each one
    line, no traceback; and no alembic lines on an ordinary command."""
    cfg = _yaml(tmp_path)
    cases: list[tuple[list[str], str, dict[str, str] | None]] = []
    cases.append((["hub", "serve", "--listen", "127.0.0.1:99999"], "65535", None))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    bport = busy.getsockname()[1]
    cases.append((["hub", "serve", "--listen", f"127.0.0.1:{bport}"], "cannot listen", None))
    mysql = _yaml(tmp_path / "m", "mysql://u:pw@localhost/db")
    dead = _yaml(tmp_path / "d", f"postgresql://postgres:pw@127.0.0.1:{free_port()}/x")
    try:
        for args, word, env in cases:
            out = _run("-m", "starnode", "--config", str(cfg), *args, env=env)
            assert out.returncode == 2, (args, out.stderr)
            assert word in out.stderr and "Traceback" not in out.stderr, out.stderr
            assert len(out.stderr.strip().splitlines()) == 1, out.stderr
            assert "startup complete" not in out.stderr.lower()
            assert "http://" not in out.stderr  # the URL is not announced
    finally:
        busy.close()
    out = _run("-m", "starnode", "--config", str(mysql), "hub", "nodes")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "postgresql" in out.stderr and "sqlite" in out.stderr
    assert "pw" not in out.stderr  # the password is not repeated
    for args in (["hub", "nodes"], ["hub", "serve"]):
        out = _run("-m", "starnode", "--config", str(dead), *args)
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
        assert "cannot reach the hub database" in out.stderr and ":pw@" not in out.stderr
    blocker = ("import sys, runpy\n"
               "class B:\n"
               "    def find_spec(self, name, *a):\n"
               "        if name.split('.')[0] == 'sqlalchemy':\n"
               "            raise ModuleNotFoundError(name=name)\n"
               "sys.meta_path.insert(0, B())\n"
               "sys.argv = ['starnode'] + sys.argv[1:]\n"
               "runpy.run_module('starnode', run_name='__main__')\n")
    out = _run("-c", blocker, "--config", str(cfg), "hub", "nodes")
    assert out.returncode == 2 and "pip install 'starnode[hub]'" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    out = _run("-m", "starnode", "--config", str(cfg), "hub", "nodes")
    assert out.returncode == 0 and "alembic" not in (out.stderr + out.stdout).lower()
