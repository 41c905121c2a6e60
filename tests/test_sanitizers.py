"""The C extensions built with AddressSanitizer and UndefinedBehaviorSanitizer.

Both extensions (``_native.c``, the fused kernel, and ``_ngram_native.c``, the byte-level
model) are compiled with ``-fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g``
into a copy of the package in a temporary directory, and ``_sanitize_exercise.py`` runs in
a subprocess against that copy with the ASan runtime preloaded: the kernel on ordinary,
-inf, +-1e308, NaN, empty and single-column inputs (float32 and float64, several threads,
each instruction-set copy), the ngram model (fit, score, save, load) and corrupt model
files (crafted here, and the fault suite's in ``INFOLENS_FAULT_DIR`` if set). Any memory
error or undefined behaviour aborts the subprocess and fails the test with its report.

Skipped, with the reason, where the compiler or its sanitizer runtimes are missing. A
control test checks that this set-up does catch a heap overflow and a signed overflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "src" / "infolens"
EXERCISE = Path(__file__).resolve().parent / "_sanitize_exercise.py"
SAN = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
#: undefined behaviour stops at the first report, as memory errors do
SAN_EXTRA = ["-fno-sanitize-recover=undefined"]
#: the production build's flags that change semantics (setup.py)
SETUP_FLAGS = ["-fno-math-errno", "-fno-trapping-math", "-pthread"]
EXTENSIONS = {"_native": ["-Wno-psabi"], "_ngram_native": []}

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="sanitizer builds are set up for Linux only"
)


def _cc() -> str:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) on PATH")
    return cc


def _runtime(cc: str, name: str) -> str | None:
    out = subprocess.run(
        [cc, f"-print-file-name={name}"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return out if os.path.isabs(out) and os.path.exists(out) else None


@pytest.fixture(scope="module")
def toolchain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The compiler and the ASan runtime to preload; skips if the sanitizers are missing."""
    cc = _cc()
    tmp = tmp_path_factory.mktemp("probe")
    (tmp / "probe.c").write_text("int probe(int x) { return x + 1; }\n")
    probe = subprocess.run(
        [cc, *SAN, *SAN_EXTRA, "-fPIC", "-shared", "probe.c", "-o", "probe.so"],
        cwd=tmp,
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        first = (probe.stderr.strip().splitlines() or ["no output"])[0]
        pytest.skip(f"{cc} cannot build with -fsanitize=address,undefined: {first}")
    asan = _runtime(cc, "libasan.so")
    if asan is None:
        pytest.skip(f"{cc} -print-file-name=libasan.so finds no ASan runtime to preload")
    return {"cc": cc, "asan": asan, "ubsan": _runtime(cc, "libubsan.so") or ""}


def _compile(cc: str, src: Path, out: Path, extra: list[str]) -> subprocess.Popen[str]:
    inc = [f"-I{np.get_include()}", f"-I{sysconfig.get_paths()['include']}"]
    cmd = [cc, *SAN, *SAN_EXTRA, *SETUP_FLAGS, *extra, "-fPIC", "-shared", *inc]
    return subprocess.Popen(
        [*cmd, str(src), "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def sanitized(toolchain: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package whose two extensions are the sanitized builds."""
    root = tmp_path_factory.mktemp("sanitized")
    pkg = root / "infolens"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "*.o"))
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    jobs = {
        name: _compile(toolchain["cc"], PKG / f"{name}.c", pkg / f"{name}{suffix}", extra)
        for name, extra in EXTENSIONS.items()
    }
    for name, job in jobs.items():
        out, _ = job.communicate(timeout=120)
        assert job.returncode == 0, f"building {name} with sanitizers failed:\n{out}"
    return pkg


def _env(toolchain: dict[str, str], pkg: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASAN_", "UBSAN_"))}
    preload = [toolchain["asan"]] + ([toolchain["ubsan"]] if toolchain["ubsan"] else [])
    env.update(
        PYTHONPATH=os.pathsep.join([str(pkg.parent), str(EXERCISE.parent)]),
        LD_PRELOAD=" ".join(preload),
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
        INFOLENS_SANITIZED_BUILD=str(pkg),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("INFOLENS_NATIVE_ISA", None)
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _report(res: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit {res.returncode}\n--- stdout\n{res.stdout[-4000:]}\n--- stderr\n{res.stderr[-8000:]}"
    )


def _clean(res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode == 0, _report(res)
    assert "runtime error:" not in res.stderr, _report(res)  # UBSan
    assert "AddressSanitizer" not in res.stderr, _report(res)
    assert res.stdout.rstrip().endswith("done"), _report(res)


def test_sanitizers_catch_a_heap_overflow_and_a_signed_overflow(
    toolchain: dict[str, str], sanitized: Path, tmp_path: Path
) -> None:
    """The control: this build and environment do report what they are meant to."""
    bugs = {
        "asan": ("int heap(int i) { int *p = malloc(4 * sizeof(int)); int v = p[i]; "
                 "free(p); return v; }", ["-fsanitize=address"], "heap(4)",
                 "AddressSanitizer: heap-buffer-overflow"),
        "ubsan": ("int wrap(int x) { return x + 1; }", ["-fsanitize=undefined"],
                  "wrap(2**31 - 1)", "runtime error: signed integer overflow"),
    }  # fmt: skip
    env = _env(toolchain, sanitized)
    for name, (code, flags, call, expect) in bugs.items():
        (tmp_path / f"{name}.c").write_text(f"#include <stdlib.h>\n{code}\n")
        build = subprocess.run(
            [toolchain["cc"], *flags, *SAN[1:], *SAN_EXTRA, "-fPIC", "-shared",
             f"{name}.c", "-o", f"{name}.so"],
            cwd=tmp_path, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert build.returncode == 0, build.stderr
        script = f"import ctypes; ctypes.CDLL({str(tmp_path / name)!r} + '.so').{call}"
        res = _run(["-c", script], env, tmp_path)
        assert res.returncode != 0 and expect in res.stderr, _report(res)
    # and the sanitized extensions are the ones imported
    res = _run(
        ["-c", "import infolens._native as n, infolens._ngram_native as g; "
               "print(n.__file__, g.__file__)"],
        env, tmp_path,
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout.count(str(sanitized)) == 2, _report(res)


@pytest.mark.parametrize("isa", ["default", "avx2", "baseline"])
def test_fused_kernel_under_asan_and_ubsan(
    toolchain: dict[str, str], sanitized: Path, tmp_path: Path, isa: str
) -> None:
    extra = {} if isa == "default" else {"INFOLENS_NATIVE_ISA": isa}
    res = _run(
        [str(EXERCISE), str(tmp_path), "kernel"], _env(toolchain, sanitized, **extra), tmp_path
    )
    _clean(res)
    if isa != "default" and f"isa {isa})" not in res.stdout:
        pytest.skip(f"this CPU lacks {isa}: {res.stdout.strip()}")


def test_ngram_model_and_corrupt_files_under_asan_and_ubsan(
    toolchain: dict[str, str], sanitized: Path, tmp_path: Path
) -> None:
    """Fit, score, save, load; then corrupt model files through the public loader (and the
    fault suite's files in ``INFOLENS_FAULT_DIR``): one-line errors, never a crash."""
    env = _env(toolchain, sanitized)
    res = _run([str(EXERCISE), str(tmp_path), "ngram"], env, tmp_path)
    _clean(res)
    assert "ok crafted" in res.stdout and "ok bytes" in res.stdout, _report(res)


def test_copying_an_empty_model_is_clean(
    toolchain: dict[str, str], sanitized: Path, tmp_path: Path
) -> None:
    """Regression: Model_copy passed NULL to memcpy (size 0) for a model with no symbols
    (UBSan: null pointer passed as argument 2); found by this suite, fixed in the C."""
    finding = "empty-copy"
    res = _run([str(EXERCISE), str(tmp_path), finding], _env(toolchain, sanitized), tmp_path)
    _clean(res)
