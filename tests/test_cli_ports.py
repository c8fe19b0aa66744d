"""Ports and addresses on the command line: a bad value or a port in use is a clear one-paragraph
error and a non-zero exit, before a server or a database starts (real sockets, real processes)."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from demotrace import argtypes
from test_cli_show import run_cli


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, env=dict(os.environ, DEMOTRACE_HOME=str(home)))


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_port_types() -> None:
    assert argtypes.port("8600") == 8600 and argtypes.port_or_any("0") == 0
    assert argtypes.positive("3") == 3
    for parse, text in [
        (argtypes.port, "0"),
        (argtypes.port, "65536"),
        (argtypes.port_or_any, "-1"),
        (argtypes.port, "http"),
        (argtypes.positive, "0"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=r"port is|whole|at least"):
            parse(text)


@pytest.mark.parametrize(
    "args, why",
    [
        (["serve", "--port", "70000"], "argument --port: a port is 1 to 65535, not 70000"),
        (["serve", "--workers", "0"], "argument --workers: must be at least 1, not 0"),
        (["ui", "--port", "-3"], "argument --port: a port is 1 to 65535 (0: any free one), not -3"),
        (["view", "DATASET", "--port", "x"], "argument --port: 'x' is not a whole number"),
        (["browser", "pair", "--port", "0"], "argument --port: a port is 1 to 65535, not 0"),
    ],
)
def test_bad_values_are_usage_errors(tmp_path: Path, args: list[str], why: str) -> None:
    done = run(tmp_path / "home", *args)
    assert done.returncode == 2
    assert why in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "home").exists()  # nothing was set up


def test_serve_on_a_port_in_use_fails_before_the_database(tmp_path: Path, taken: int) -> None:
    home = tmp_path / "home"
    done = run(home, "serve", "--port", str(taken))
    assert done.returncode != 0 and "Traceback" not in done.stderr + done.stdout
    assert f"cannot listen on 127.0.0.1:{taken} (Address already in use)" in done.stderr
    assert "Another program uses that port" in done.stderr
    assert not (home / "collector").exists()  # no database, no admin credential made
    assert "admin." not in done.stdout


def test_serve_on_an_address_not_of_this_machine(tmp_path: Path) -> None:
    done = run(tmp_path / "home", "serve", "--host", "192.0.2.1")  # TEST-NET-1
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "not one of this machine's" in done.stderr


@pytest.mark.parametrize("command", ["ui", "view"])
def test_local_pages_on_a_port_in_use(tmp_path: Path, taken: int, command: str) -> None:
    args = [command, "--port", str(taken)]
    if command == "view":
        args.insert(1, str(tmp_path))
    done = run(tmp_path / "home", *args)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{taken} (Address already in use)" in done.stderr
    assert "give another port, or 0 for any free one" in done.stderr
