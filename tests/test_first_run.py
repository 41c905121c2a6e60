"""First run on any machine: the C build's failure modes, ``python -m infolens``, and the
scoring entry points at the top level of ``infolens`` (imported lazily)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import infolens

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- setup.py


def _source_copy(tmp: Path) -> Path:
    """What ``setup.py build_ext`` needs, copied (the checkout's own build stays untouched)."""
    src = tmp / "src"
    (src / "src" / "infolens").mkdir(parents=True)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for c in (ROOT / "src" / "infolens").glob("*.c"):
        shutil.copy(c, src / "src" / "infolens" / c.name)
    (src / "src" / "infolens" / "__init__.py").write_text("")
    return src


def _build_ext(src: Path, tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    try:
        import numpy  # noqa: F401
        import setuptools  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the dev install has both
        pytest.skip(f"setup.py needs setuptools and numpy: {exc}")
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext",
         "--build-temp", str(tmp / "temp"), "--build-lib", str(tmp / "lib")],
        cwd=src, env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _built(tmp: Path, name: str) -> list[Path]:
    return list((tmp / "lib" / "infolens").glob(f"{name}.*"))


def test_build_without_compiler_is_an_install_error(tmp_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("CC is not how MSVC is chosen")
    src = _source_copy(tmp_path)
    res = _build_ext(src, tmp_path, CC="/nonexistent/cc")
    err = res.stderr
    assert res.returncode != 0, res.stdout + err
    line = next((s for s in err.splitlines() if s.startswith("error: infolens:")), None)
    assert line is not None, err
    for needed in (
        "infolens._ngram_native",
        "the built-in language model",
        "A C compiler and the Python development headers",
        "apt-get install build-essential",
        "xcode-select --install",
        "/nonexistent/cc",  # what actually went wrong
    ):
        assert needed in line, (needed, line)
    assert "Traceback" not in err
    assert not _built(tmp_path, "_ngram_native") and not _built(tmp_path, "_native")


def test_optional_kernels_failing_is_a_warning(tmp_path: Path) -> None:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    if sys.platform == "win32" or shutil.which(cc.split()[0]) is None:
        pytest.skip(f"needs a working C compiler ({cc!r} not found)")
    src = _source_copy(tmp_path)
    (src / "src" / "infolens" / "_native.c").write_text("#error broken on purpose\n")
    res = _build_ext(src, tmp_path)
    if not _built(tmp_path, "_ngram_native"):
        pytest.skip(f"the C compiler cannot build extensions here: {res.stderr[-500:]}")
    assert res.returncode == 0, res.stderr
    warnings = [s for s in res.stderr.splitlines() if s.startswith("WARNING: infolens:")]
    assert len(warnings) == 1, res.stderr
    assert "infolens._native" in warnings[0] and "slower numpy kernels" in warnings[0]
    assert not _built(tmp_path, "_native")


# --------------------------------------------------------------------------- python -m


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def test_python_m_infolens() -> None:
    res = _run("-m", "infolens", "--version")
    assert res.returncode == 0 and res.stdout.strip() == f"infolens, version {infolens.__version__}"
    res = _run("-m", "infolens", "--help")
    assert res.returncode == 0 and res.stdout.startswith("Usage: infolens ")
    text = "It was the best of times, it was the worst of times."
    res = _run("-m", "infolens", "score", "-", "--json", stdin=text)
    assert res.returncode == 0, res.stderr
    cli = json.loads(res.stdout)
    lib = infolens.score_text(text, name="<stdin>")
    assert {k: v for k, v in cli.items() if k != "documents"} == lib
    res = _run("-m", "infolens", "score", "/nonexistent/file.txt")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- exports

LAZY = ("Document", "ScoreResult", "load_model", "read_documents", "score_documents", "score_text")


def test_import_infolens_stays_light() -> None:
    code = (
        "import sys, infolens\n"
        "heavy = ['torch', 'click', 'infolens.score', 'infolens.models', 'infolens.pipeline']\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "infolens.score_documents\n"
        "print('infolens.score' in sys.modules, 'torch' in sys.modules)\n"
    )
    res = _run("-c", code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["[]", "True False"]


def test_exports_are_complete() -> None:
    from infolens import models, quick, score

    for name in infolens.__all__:
        assert getattr(infolens, name) is not None, name
    assert set(LAZY) <= set(infolens.__all__) and set(LAZY) <= set(dir(infolens))
    assert infolens.score_documents is score.score_documents
    assert infolens.read_documents is score.read_documents
    assert infolens.Document is score.Document
    assert infolens.ScoreResult is score.ScoreResult
    assert infolens.load_model is models.load_model
    assert infolens.score_text is quick.score_text
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        infolens.nope  # noqa: B018


def test_score_text_against_first_principles() -> None:
    # the adaptive byte model predicts a document's first byte from nothing: exactly 1/256
    r = infolens.score_text("x")
    assert r["tokens"] == r["bytes"] == 1
    assert r["nll_nats"] == pytest.approx(math.log(256), rel=1e-12)
    assert r["perplexity"] == pytest.approx(256.0, rel=1e-12)
    assert r["bits_per_byte"] == pytest.approx(8.0, rel=1e-12)
    # a longer text: the relations between the keys, and the same numbers as the long way
    text = "to be or not to be, that is the question " * 5
    r = infolens.score_text(text, "ngram:order=4", compressors=False)
    n, nll = r["tokens"], r["nll_nats"]
    assert n == len(text.encode())
    assert r["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-12)
    assert r["bits_per_byte"] == pytest.approx(nll / (n * math.log(2)), rel=1e-12)
    assert r["words"] == len(text.split())
    assert r["compressors"] is None and r["model"] == "ngram:order=4"
    model = infolens.load_model("ngram:order=4")
    long_way = infolens.score_documents(
        model, [infolens.Document("<text>", text)], compressors=False
    ).to_dict()
    del long_way["documents"]
    assert infolens.score_text(text, model, compressors=False) == long_way == r


def test_score_text_bytes_and_errors() -> None:
    raw = b"\xff\xfe not utf-8"
    r = infolens.score_text(raw)  # byte-level model: bytes accepted
    assert r["tokens"] == r["bytes"] == len(raw)
    with pytest.raises(ValueError, match="--model"):
        infolens.score_text("abc", "nosuchscheme:x")
