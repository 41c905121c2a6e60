"""The output half of the fault suite: nothing lost, nothing half-written, whatever the path
names and whatever happens during the run.

Every writer of the CLI (``--tokens``, ``--report``, ``--save-base``, ``ngram fit -o``) goes
through :func:`infolens._atomic.atomic_output`; these tests drive the real commands, in
memory (CliRunner) where they can and in a subprocess where signals, descriptors and
users are involved.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from infolens._atomic import atomic_output, output_kind
from infolens.cli import main
from infolens.errors import InputError

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
IS_ROOT = os.geteuid() == 0


def _text(n_bytes: int) -> str:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]
    out, i, total = [], 0, 0
    while total < n_bytes:
        out.append(words[(i * 7 + i // 3) % len(words)] + (" " if i % 11 else ".\n"))
        total += len(out[-1])
        i += 1
    return "".join(out)


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("in") / "doc.txt"
    p.write_text(_text(3000))
    return p


@pytest.fixture(scope="module")
def long_doc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("in") / "long.txt"
    p.write_text(_text(3_000_000))
    return p


def _cli(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.stdout, res.stderr


def _one_line(err: str) -> str:
    err = err.strip()
    assert err and err.splitlines() == [err], err
    return err


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


# ------------------------------------------------------------------- what a path names


def test_dash_writes_to_stdout_and_moves_the_summary_to_stderr(doc: Path) -> None:
    code, out, err = _cli("score", str(doc), "--tokens", "-", "--json", "-q")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) > 100 and all(json.loads(x)["doc"] == str(doc) for x in lines)
    assert json.loads(err)["tokens"] == len(lines)  # the JSON summary went to stderr


def test_two_outputs_cannot_both_be_stdout(doc: Path) -> None:
    code, out, err = _cli("score", str(doc), "--tokens", "-", "--report", "-")
    assert code == 2 and out == "" and "only one output can be '-'" in _one_line(err)


def test_character_device_is_written_through_not_replaced(doc: Path) -> None:
    code, _, err = _cli("score", str(doc), "--tokens", "/dev/null", "-q")
    assert code == 0, err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_fifo_is_written_as_a_stream(doc: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "tokens.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    code, _, err = _cli("score", str(doc), "--tokens", str(fifo), "-q")
    reader.join(timeout=30)
    assert code == 0, err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO
    lines = got[0].decode().splitlines()
    assert len(lines) > 100 and json.loads(lines[0])["position"] == 0
    assert _leftovers(tmp_path) == []


def test_symlink_target_is_replaced_not_the_link(doc: Path, tmp_path: Path) -> None:
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    code, _, err = _cli("score", str(doc), "--tokens", str(link), "-q")
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text().splitlines()[0])["position"] == 0


def test_dangling_symlink_is_refused(doc: Path, tmp_path: Path) -> None:
    link = tmp_path / "dangling.jsonl"
    link.symlink_to(tmp_path / "nowhere" / "x.jsonl")
    code, _, err = _cli("score", str(doc), "--tokens", str(link))
    assert code == 2 and "which does not exist" in _one_line(err)
    assert link.is_symlink()


@pytest.mark.parametrize("what", ["directory", "socket"])
def test_special_paths_are_refused(doc: Path, tmp_path: Path, what: str) -> None:
    if what == "directory":
        path, fragment = tmp_path, "is a directory"
    else:
        path = tmp_path / "s.sock"
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
        fragment = "is a socket"
    for option in ("--tokens", "--report"):
        code, out, err = _cli("score", str(doc), option, str(path))
        assert code == 2 and out == "" and fragment in _one_line(err), (option, err)
    assert output_kind("/dev/null") == "stream"


def test_read_only_existing_output_is_refused_and_kept(doc: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    out.write_text("precious\n")
    out.chmod(0o444)
    code, _, err = _cli("score", str(doc), "--tokens", str(out))
    assert code == 2 and "read-only; refusing to replace it" in _one_line(err)
    assert out.read_text() == "precious\n" and stat.S_IMODE(out.stat().st_mode) == 0o444


def test_existing_permission_bits_are_kept(doc: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    out.write_text("old\n")
    out.chmod(0o600)  # the token file holds the document's text
    assert _cli("score", str(doc), "--tokens", str(out), "-q")[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_text() != "old\n"


def test_dev_stdout_is_written_through(doc: Path, tmp_path: Path) -> None:
    # /dev/stdout names descriptor 1: like '-', its target (here a file the caller opened)
    # gets the tokens, the summary goes to stderr, and /dev/stdout stays what it was
    before = os.lstat("/dev/stdout")
    sink = tmp_path / "captured"
    with open(sink, "wb") as f:
        r = subprocess.run(
            [sys.executable, "-m", "infolens", "score", str(doc), "--tokens", "/dev/stdout",
             "--json", "-q"],
            stdout=f, stderr=subprocess.PIPE, env=ENV, timeout=120,
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = sink.read_text().splitlines()
    assert [json.loads(x)["position"] for x in lines[:2]] == [0, 1]
    assert json.loads(r.stderr)["tokens"] == len(lines)
    after = os.lstat("/dev/stdout")
    assert (before.st_mode, before.st_ino) == (after.st_mode, after.st_ino)


def test_outputs_are_checked_before_any_model_loads(doc: Path, tmp_path: Path) -> None:
    # an impossible model spec would fail later: the output error must come first
    ro = tmp_path / "ro.html"
    ro.write_text("x")
    ro.chmod(0o444)
    for args in (
        ["score", str(doc), "--model", "hf:/nonexistent", "--report", str(ro)],
        ["compare", str(doc), "--base", "hf:/nonexistent", "--save-base", str(ro)],
        ["ngram", "fit", str(doc), "-o", str(ro)],
    ):
        code, _, err = _cli(*args)
        assert code == 2 and "read-only" in _one_line(err), (args, err)


def _unprivileged() -> list[str]:
    """A command prefix under which file permissions apply (root's override dropped)."""
    if not IS_ROOT:
        return []
    import shutil

    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps",
            "-all", "--"]  # fmt: skip


def test_unwritable_directory_is_found_before_the_run(doc: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)  # nobody may create files in it
    cases = [
        (["--report", str(locked / "r.html")], "--report: cannot write in"),
        (["--tokens", str(locked / "t.jsonl")], "--tokens: cannot write in"),
        (["--report", str(tmp_path / "r.html"), "--plots", str(locked)], "--plots: cannot write in"),
    ]
    for args, fragment in cases:
        r = subprocess.run(
            [*_unprivileged(), sys.executable, "-m", "infolens", "score", str(doc), *args],
            capture_output=True, text=True, env=ENV, timeout=120,
        )  # fmt: skip
        assert r.returncode == 2 and r.stdout == "" and fragment in _one_line(r.stderr), r.stderr
    assert list(locked.iterdir()) == []


def test_unreadable_glob_directory_is_an_error_not_no_match(tmp_path: Path) -> None:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.txt").write_text("hello")
    d.chmod(0o000)
    try:
        r = subprocess.run(
            [*_unprivileged(), sys.executable, "-m", "infolens", "score", str(d), "--glob", "*.txt"],
            capture_output=True, text=True, env=ENV, timeout=120,
        )  # fmt: skip
    finally:
        d.chmod(0o755)
    assert r.returncode == 2
    assert "cannot read the directory: Permission denied" in _one_line(r.stderr)


# ---------------------------------------------------------------- failures during the run


def test_failure_inside_the_writer_leaves_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "f.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(out) as f:
        f.write("half")
        raise RuntimeError("boom")
    assert out.read_text() == "old" and _leftovers(tmp_path) == []
    with pytest.raises(InputError, match="is a directory"), atomic_output(tmp_path):
        pass


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode})")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.skipif(not IS_ROOT, reason="mounting a small tmpfs needs root")
def test_full_disk_is_one_line_and_loses_nothing(doc: Path, tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "small", "64k") as small:
        existing = small / "t.jsonl"
        existing.write_text("precious\n")
        model = small / "m.ilng"
        model.write_bytes(b"old model")
        big = tmp_path / "big.txt"
        big.write_text(_text(40_000))  # about 12 MB of token lines: far more than 64 kB
        noise = tmp_path / "noise.bin"
        noise.write_bytes(os.urandom(200_000))  # a model of megabytes
        for args, out in (
            (["score", str(big), "--tokens", str(existing), "-q"], existing),
            (["ngram", "fit", str(noise), "-o", str(model)], model),
        ):
            before = out.read_bytes()
            code, _, err = _cli(*args)
            assert code == 2 and "No space left on device" in _one_line(err), err
            assert out.read_bytes() == before and _leftovers(small) == []


def _run_and_signal(
    args: list[str], out: Path, sig: int, delay: float, *, wait_for_temp: bool = True
) -> subprocess.Popen:
    """Start the command, wait until its temporary output exists (unless ``wait_for_temp``
    is off: a command that writes only at the end), let it run ``delay`` more seconds, then
    send ``sig``."""
    p = subprocess.Popen(
        [sys.executable, "-m", "infolens", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
    )  # fmt: skip
    t0 = time.monotonic()
    while wait_for_temp and not _leftovers(out.parent) and time.monotonic() - t0 < 20:
        if p.poll() is not None:
            break
        time.sleep(0.02)
    time.sleep(delay)
    assert p.poll() is None, "the run ended before the signal: make the input longer"
    p.send_signal(sig)
    p.communicate(timeout=60)
    return p


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("delay", [0.0, 0.6])
def test_signals_during_score_keep_the_old_output(
    long_doc: Path, tmp_path: Path, sig: int, status: int, delay: float
) -> None:
    out = tmp_path / "tokens.jsonl"
    out.write_text("old run\n")
    p = _run_and_signal(["score", str(long_doc), "--tokens", str(out), "-q"], out, sig, delay)
    assert p.returncode == status
    assert out.read_text() == "old run\n" and _leftovers(tmp_path) == []


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_during_save_base_and_fit_keep_the_old_output(
    long_doc: Path, tmp_path: Path, sig: int, status: int
) -> None:
    base = tmp_path / "b.ilb"
    base.write_bytes(b"old base")
    p = _run_and_signal(["compare", str(long_doc), "--base", "ngram:order=2", "--save-base",
                         str(base), "-q"], base, sig, 0.3)  # fmt: skip
    assert p.returncode == status and base.read_bytes() == b"old base"
    model = tmp_path / "m.ilng"
    model.write_bytes(b"old model")
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(3_000_000))  # fitting takes seconds; the file is written last
    p = _run_and_signal(["ngram", "fit", str(noise), "-o", str(model)], model, sig, 2.0,
                        wait_for_temp=False)  # fmt: skip
    assert p.returncode == status and model.read_bytes() == b"old model"
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------- stdout itself


def test_closed_stdout_is_an_error(doc: Path) -> None:
    r = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m infolens score "{doc}" >&-'],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "standard output is closed" in _one_line(r.stderr)


def test_failing_stdout_is_an_error(doc: Path) -> None:
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "infolens", "score", str(doc)],
                           stdout=full, stderr=subprocess.PIPE, text=True, env=ENV,
                           timeout=120)  # fmt: skip
    assert r.returncode == 2 and "cannot write standard output" in _one_line(r.stderr)


def test_broken_pipe_exits_quietly_with_141(long_doc: Path) -> None:
    r = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m infolens score "{long_doc}" --tokens - -q '
         f'| head -c 10 >/dev/null; echo "${{PIPESTATUS[0]}}"'],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert r.stdout.strip() == "141" and r.stderr == ""


# ---------------------------------------------------------------------- special inputs


def test_fifo_input_is_read_like_stdin(doc: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(doc.read_bytes()))
    writer.start()
    code, out, err = _cli("score", str(fifo), "--json", "-q")
    writer.join(timeout=30)
    assert code == 0, err
    direct = json.loads(_cli("score", str(doc), "--json", "-q")[1])
    got = json.loads(out)
    assert (got["tokens"], got["nll_nats"]) == (direct["tokens"], direct["nll_nats"])


def test_socket_input_is_refused_by_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "in.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    try:
        code, out, err = _cli("score", str(path))
    finally:
        s.close()
    assert code == 2 and out == "" and "is a socket" in _one_line(err)
