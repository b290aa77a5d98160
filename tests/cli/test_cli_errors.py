"""Issue 16, section 5: one clear line, never a traceback; flags validated like the config; the
global options after nested commands; a busy port is no success. Real processes and sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from loopback import free_port
from starnode.cli import build_parser, main

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """argparse's exit 2 and its last line (the error)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_serve_port_out_of_range_is_a_usage_error(port: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error(["serve", "--port", port], capsys)
    assert "--port" in line and "1 to 65535" in line


@pytest.mark.parametrize("command", [["run"], ["process", "x"], ["demo"]])
@pytest.mark.parametrize("workers", ["-1", "0", "65", "two"])
def test_workers_validated_like_the_config(command: list[str], workers: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error([*command, "--workers", workers], capsys)
    assert "--workers" in line and "from 1 to 64" in line  # the bounds of the 'workers' key


def test_other_numeric_flags_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--frames" in _usage_error(["demo", "--frames", "0"], capsys)
    assert "--interval" in _usage_error(["demo", "--interval", "nan"], capsys)
    assert "--last" in _usage_error(["status", "--last", "-3"], capsys)


def test_global_options_after_a_nested_command(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """docs/node.md: global options stand before or after the command, nested ones too."""
    args = build_parser().parse_args(["hub", "serve", "--config", "hub.yaml", "--data-dir",
                                      "d", "--log-level", "debug"])
    assert (args.config, args.data_dir, args.log_level) == ("hub.yaml", "d", "DEBUG")
    args = build_parser().parse_args(["--config", "a.yaml", "hub", "nodes"])
    assert args.config == "a.yaml"  # before the command still works, not overwritten
    args = build_parser().parse_args(["--config", "a.yaml", "hub", "nodes", "-c", "b.yaml"])
    assert args.config == "b.yaml"
    bad = tmp_path / "hub.yaml"
    bad.write_text("hub:\n  no_such_key: 1\n")
    assert main(["hub", "nodes", "--config", str(bad)]) == 2  # the file was read
    err = capsys.readouterr().err
    assert str(bad) in _one_line(err) and "no_such_key" in err


def test_data_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("not a folder\n")
    for argv in (["status", "--data-dir", str(file)],
                 ["status", "--data-dir", str(file / "sub")]):
        assert main(argv) == 2
        line = _one_line(capsys.readouterr().err)
        assert "data_dir" in line and f"{file} is a file, not a folder" in line
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"data_dir: {file}\n")
    assert main(["doctor", "--config", str(cfg)]) == 2
    assert "is a file, not a folder" in _one_line(capsys.readouterr().err)
    assert main(["demo", "--data-dir", str(file)]) == 2
    assert "is a file, not a folder" in _one_line(capsys.readouterr().err)
    monkeypatch.setenv("STARNODE_DATA_DIR", str(file))  # the default data_dir, from the env
    assert main(["status"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "$STARNODE_DATA_DIR" in line and "is a file, not a folder" in line


def test_serve_on_a_busy_port_says_so_and_prints_no_address(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status = main(["serve", "--port", str(port), "--data-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert status == 2
    assert "starnode page" not in out and "http://" not in out  # nothing looks like success
    line = _one_line(err)
    assert f"127.0.0.1:{port}" in line and "in use" in line


def test_serve_binds_then_serves(tmp_path: Path) -> None:
    """The address is printed once bound, and the page answers there (a real process)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "starnode", "serve", "--port", str(port),
                             "--data-dir", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, line + (proc.stderr.read()
                                                            if proc.poll() is not None else "")
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_without_the_web_extra(tmp_path: Path) -> None:
    """A page command without its extra: one line with the pip command (jinja2 absent)."""
    code = ("import sys; sys.modules['jinja2'] = None; from starnode.cli import main; "
            f"sys.exit(main(['serve', '--data-dir', {str(tmp_path)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    line = _one_line(r.stderr)
    assert "jinja2" in line and "pip install 'starnode[web]'" in line
    assert r.stdout == ""


def test_demo_hint_is_a_command_that_runs(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's hints name starnode as it can be run from this shell."""
    from starnode.demo import _activate_hint, command_name

    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    script = bindir / "starnode"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom starnode.cli import main\n"
                      "sys.exit(main())\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the venv is not activated
    hint = command_name(str(script), sys.executable)
    assert hint == os.path.join("venv", "bin", "starnode")
    r = subprocess.run([*hint.split(), "status", "--data-dir", "d"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "no ledger yet" in r.stdout, r.stderr
    (bindir / "activate").write_text("# a venv's activate script\n")
    assert "source venv/bin/activate" in _activate_hint(hint)  # and how to get 'starnode'
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")  # activated: the plain name
    assert command_name(str(script), sys.executable) == "starnode"
    assert _activate_hint("starnode") == ""
    # 'python -m starnode' (or a test runner): this interpreter, by its path
    hint = command_name("/x/site-packages/starnode/__main__.py", sys.executable)
    assert hint.endswith(" -m starnode")
    r = subprocess.run([*hint.split(), "status", "--data-dir", "d"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "no ledger yet" in r.stdout, r.stderr
