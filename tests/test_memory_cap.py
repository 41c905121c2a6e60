"""Scoring a document runs inside a fixed memory budget over the loaded model (issue 10:
memory bounded by settings, not by the input). A child process loads the model, caps its
own address space at what it uses then plus a budget (``RLIMIT_AS``), and scores one
document; the control shows that the cap really bites."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

resource = pytest.importorskip("resource")

CHILD = textwrap.dedent(
    """
    import resource, sys
    from infolens.documents import Document
    from infolens.models import load_model
    from infolens.score import score_documents

    budget = int(sys.argv[1])
    text = ("the quick brown fox jumps over the lazy dog; " * 1000 + "\\n") * int(sys.argv[2])
    model = load_model("ngram:order=4")
    score_documents(model, [Document("warm-up", "warm up the tables " * 100)])
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + budget, vm + budget))
    try:
        r = score_documents(model, [Document("doc", text)], compressors=False)
    except MemoryError:
        print("memory error")
        sys.exit(3)
    print(r.metrics["tokens"])
    """
)


def _run(budget: int, copies: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(budget), str(copies)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_2_mb_document_scores_within_a_fixed_budget() -> None:
    # the text is built before the cap: the budget covers scoring it (tokens, rows in
    # chunks, statistics), which must not grow with the document
    copies = 45  # 45 * 45,001 bytes: about 2 MB
    r = _run(400 << 20, copies)
    assert r.returncode == 0, r.stdout + r.stderr
    assert int(r.stdout.split()[-1]) == copies * 45_001


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_the_cap_bites() -> None:
    r = _run(1 << 20, 45)  # 1 MiB cannot hold even one chunk of rows (8 MiB sometimes could:
    # freed warm-up memory still counted in VmSize leaves room to reuse)
    assert r.returncode == 3 or "MemoryError" in r.stderr, r.stdout + r.stderr


STREAM_CHILD = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from infolens.documents import read_documents
    from infolens.models.base import Tokenized
    from infolens.score import score_documents

    class Parity:
        # a fast stand-in model: tokens are the bytes' low bits, every row uniform
        name, bos_id, vocab_size, max_context, predicts_first, byte_level = (
            "parity", None, 2, 4096, True, True)

        def tokenize(self, text):
            return Tokenized(np.frombuffer(bytes(text), np.uint8) & 1)

        def tokenize_stream(self, pieces):
            for p in pieces:
                yield self.tokenize(p)

        def logits(self, windows, *, max_rows):
            n = sum(w.n_predictions for w in windows)
            for lo in range(0, n, 1 << 16):
                yield np.zeros((min(1 << 16, n - lo), 2), np.float32)

    path, budget, stream_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    model = Parity()
    docs = read_documents([path], allow_bytes=True, stream_bytes=stream_bytes)
    from infolens.documents import Document
    score_documents(model, [Document("warm-up", b"ab" * 50_000)], max_length=4096,
                    stride=4096, compressors=False)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + budget, vm + budget))
    try:
        r = score_documents(model, docs, max_length=4096, stride=4096, compressors=False)
    except MemoryError:
        print("memory error")
        sys.exit(3)
    print(r.metrics["tokens"], r.metrics["bits_per_byte"])
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_file_larger_than_the_budget_is_streamed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # a 48 MB file scored under a 32 MiB budget: only possible if it is never held whole;
    # the same file read whole first (stream_bytes above its size) does not fit
    path = tmp_path / "big.txt"  # fmt: skip
    size = 48 << 20
    with open(path, "wb") as f:
        for _ in range(size >> 20):
            f.write(b"ab" * (1 << 19))

    def run(stream_bytes: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", STREAM_CHILD, str(path), str(32 << 20),
                               str(stream_bytes)], capture_output=True, text=True, timeout=300)  # fmt: skip

    r = run(8 << 20)
    assert r.returncode == 0, r.stdout + r.stderr
    tokens, bpb = r.stdout.split()
    assert int(tokens) == size and float(bpb) == pytest.approx(1.0)  # uniform over 2: 1 bit
    control = run(size + 1)
    assert control.returncode == 3 or "MemoryError" in control.stderr, control.stdout + control.stderr
