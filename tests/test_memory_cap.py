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
    r = _run(8 << 20, 45)  # 8 MiB cannot hold even one chunk of rows
    assert r.returncode == 3 or "MemoryError" in r.stderr, r.stdout + r.stderr
