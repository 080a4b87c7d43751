"""``dip-edge ... | head``: output to a pipe whose reader has gone ends quietly (exit 141,
as for a command killed by SIGPIPE), never with a BrokenPipeError traceback. Real pipes:
the installed command writes into one whose read end is already closed, and into a shell
pipeline through ``head``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pfx_factory import PfxFactory

DIP_EDGE = str(Path(sys.executable).parent / "dip-edge")


@pytest.fixture(scope="module")
def pfx_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pipe") / "good.pfx"
    path.write_bytes(PfxFactory().rsa_passwordless.data)
    return path


def commands(pfx_file: Path, state: Path) -> dict[str, list[str]]:
    return {
        "check-pfx --json": ["check-pfx", str(pfx_file), "--offline", "--json"],
        "check-pfx": ["check-pfx", str(pfx_file), "--offline"],
        "inbox list --json": ["inbox", "--state-dir", str(state), "list", "--json"],
        "--help": ["--help"],
    }


@pytest.mark.parametrize("name", ["check-pfx --json", "check-pfx", "inbox list --json",
                                  "--help"])
def test_output_into_a_pipe_closed_before_it_is_written(pfx_file, tmp_path, name):
    if name.startswith("inbox"):  # an inbox that exists (a missing one is said on stderr)
        from shared.dip.inbox.sqlite import SqliteInbox

        SqliteInbox(tmp_path / "inbox.sqlite3").close()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes a byte
    try:
        done = subprocess.run([DIP_EDGE, *commands(pfx_file, tmp_path)[name]],
                              stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
    finally:
        os.close(write_end)
    # argparse's own --help ignores a failed write (exit 0); every command's output is 141.
    assert done.returncode == (0 if name == "--help" else 141), done.stderr
    assert done.stderr == ""  # no traceback, no "Exception ignored"


def test_shell_pipeline_through_head(pfx_file, tmp_path):
    # `| head -c 1` exits after one byte. One JSON report fits in the pipe's buffer, so
    # the command runs several times: the later ones write after head is gone.
    script = (f"for i in 1 2 3 4 5 6 7 8; do '{DIP_EDGE}' check-pfx '{pfx_file}' --offline "
              "--json; done 2>errors | head -c 1 >/dev/null; cat errors")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert "Traceback" not in done.stdout and "BrokenPipeError" not in done.stdout, done.stdout


def test_output_still_complete_when_the_reader_stays(pfx_file, tmp_path):
    done = subprocess.run([DIP_EDGE, *commands(pfx_file, tmp_path)["check-pfx --json"]],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["valid"] is True
