"""The progress bar of ``infolens score`` / ``compare``: on stderr only when it is a
terminal (a pseudo-terminal here), never with ``--quiet`` or when stderr is a pipe; the
total is the inputs' size, known before scoring (unknown for stdin)."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from infolens.cli import main
from infolens.cli._options import Progress, input_bytes

TEXT = "The cat sat on the mat; the dog sat on the logs. " * 2500  # 122,500 bytes (ASCII)


def _read_all(fd: int, proc: subprocess.Popen[bytes]) -> bytes:
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                break
    return out


def run_in_pty(args: list[str], stdin: bytes | None = None) -> tuple[int, bytes, str]:
    """``python -m infolens ARGS`` with stderr on a pseudo-terminal (120 columns) and
    stdout on a pipe: exit status, stdout, what the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "infolens", *args],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    try:
        term = _read_all(master, proc)
    finally:
        os.close(master)
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    return proc.wait(60), stdout, term.decode("utf-8", errors="replace")


@pytest.fixture()
def doc(tmp_path: Path) -> Path:
    p = tmp_path / "doc.txt"
    p.write_text(TEXT)
    assert p.stat().st_size == 122_500
    return p


def test_bar_in_a_terminal_has_percentage_total_rate_and_eta(doc: Path) -> None:
    code, stdout, term = run_in_pty(["score", str(doc)])
    assert code == 0 and b"perplexity" in stdout
    assert "scoring:" in term
    frames = [f for f in term.split("\r") if f.startswith("scoring:")]
    assert frames
    # 122,500 bytes, as tqdm writes them (3 significant digits, SI)
    assert all("/122kB" in f for f in frames)
    assert re.search(r"scoring:\s+\d+%\|", frames[0])
    assert all(re.search(r"\[\d\d:\d\d<(\?|\d\d:\d\d), ", f) for f in frames)  # time left
    assert all(re.search(r"B/s", f) for f in frames)  # rate
    # the bar is erased at the end (the summary stays clean)
    assert term.rstrip(" ").endswith("\r")


def test_bar_counts_up_to_the_total(tmp_path: Path) -> None:
    # a larger input: the bar is redrawn while scoring, with bytes done increasing
    p = tmp_path / "big.txt"
    p.write_text(TEXT * 4)
    code, _, term = run_in_pty(["score", str(p), "--no-compressors"])
    assert code == 0
    done = [float(m.group(1)) for m in re.finditer(r"\| ([\d.]+)kB/490kB", term)]
    assert len(done) >= 2 and done == sorted(done) and done[-1] > done[0]
    assert all(x <= 490 for x in done)


def test_stdin_total_unknown_shows_bytes_and_rate(doc: Path) -> None:
    code, _, term = run_in_pty(["score", "-"], stdin=doc.read_bytes())
    assert code == 0
    frames = [f for f in term.split("\r") if f.startswith("scoring:")]
    assert frames and all("%" not in f and "B/s" in f for f in frames)


def test_quiet_in_a_terminal_draws_nothing(doc: Path) -> None:
    code, stdout, term = run_in_pty(["score", str(doc), "--quiet"])
    assert code == 0 and b"perplexity" in stdout
    assert term == ""


def test_no_bar_when_stderr_is_a_pipe(doc: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "infolens", "score", str(doc)],
                          capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and b"perplexity" in proc.stdout
    assert proc.stderr == b""
    res = CliRunner().invoke(main, ["score", str(doc)])
    assert res.exit_code == 0 and res.stderr == ""


def test_compare_bar_in_a_terminal(doc: Path) -> None:
    code, _, term = run_in_pty(["compare", str(doc), "--model", "ngram:order=3",
                                "--base", "ngram:order=2"])  # fmt: skip
    assert code == 0
    frames = [f for f in term.split("\r") if f.startswith("comparing:")]
    assert frames and all("/122kB" in f for f in frames)
    assert re.search(r"comparing:\s+\d+%\|", frames[0])
    code, _, term = run_in_pty(["compare", str(doc), "--model", "ngram:order=3",
                                "--base", "ngram:order=2", "-q"])  # fmt: skip
    assert code == 0 and term == ""


def test_bytes_done_follow_the_scored_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    # two documents of 2 and 5 UTF-8 bytes ("é" is two); the bar counts finished
    # documents plus the end of the last scored span in the current one
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    p = Progress(True, "scoring", 7)
    docs = iter(p.documents([SimpleNamespace(text="ab"), SimpleNamespace(text="éabc")]))
    next(docs)
    p.rows(0, np.array([[0, 1]]))
    assert p._bar.n == 1
    next(docs)
    p.rows(0, np.array([[1, 2]]))
    assert p._bar.n == 2
    p.rows(1, np.array([[0, 2], [-1, -1]]))  # the unknown span does not count
    assert p._bar.n == 2 + 2
    p.rows(1, np.array([[4, 5]]))
    assert p._bar.n == 7
    p(3)
    assert p.tokens == 3
    p.close()
    off = Progress(False, "scoring", 7)
    docs_list = [SimpleNamespace(text="ab")]
    assert off.documents(docs_list) is docs_list  # nothing wrapped when off
    off.rows(0, np.array([[0, 1]]))
    off.close()


def test_input_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"x" * 10)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.txt").write_bytes(b"y" * 7)
    (tmp_path / "d" / "c.md").write_bytes(b"z" * 5)
    a, d = str(tmp_path / "a.txt"), str(tmp_path / "d")
    assert input_bytes([a]) == 10
    assert input_bytes([a, d], "*.txt") == 17
    assert input_bytes([a, a]) == 20  # a file given twice is read twice
    assert input_bytes([a, "-"]) is None
    assert input_bytes([str(tmp_path / "missing")]) is None
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    assert input_bytes([str(fifo)]) is None
