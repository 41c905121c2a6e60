"""Build the compiled parts of infolens.

* ``infolens._ngram_native``, the built-in byte-level language model (the default
  ``--model ngram``), has no pure-Python fallback: if it cannot be built, the install fails
  with a message saying what is needed (a C compiler and the Python headers).
* ``infolens._native``, the fast fused kernels, is optional: if it cannot be built, the
  install goes on with a one-line warning and infolens uses its slower numpy kernels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError, SetupError

here = Path(__file__).parent

#: Extensions without a fallback: a failed build is an install error.
REQUIRED = {"infolens._ngram_native"}

NEEDS = (
    "A C compiler and the Python development headers (Python.h) are needed to install "
    "infolens from source: on Debian/Ubuntu `apt-get install build-essential python3-dev` "
    "(or `gcc python3-dev`), on Fedora/RHEL `dnf install gcc python3-devel`, on macOS the "
    "Xcode command-line tools (`xcode-select --install`), on Windows the Microsoft C++ Build "
    "Tools. numpy is a build dependency too (pip installs it)."
)

_BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)


class BuildExt(build_ext):
    """``build_ext`` that fails clearly for :data:`REQUIRED` extensions and warns once for
    the optional one."""

    def run(self) -> None:
        try:
            super().run()
        except _BUILD_ERRORS as exc:  # e.g. no compiler at all (raised before any extension)
            raise SetupError(self._required_message("infolens._ngram_native", exc)) from exc

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except _BUILD_ERRORS as exc:
            if ext.name in REQUIRED:
                raise SetupError(self._required_message(ext.name, exc)) from exc
            print(
                f"WARNING: infolens: could not build the optional C kernels {ext.name} "
                f"({_one_line(exc)}); the slower numpy kernels will be used.",
                file=sys.stderr,
                flush=True,
            )

    @staticmethod
    def _required_message(name: str, exc: BaseException) -> str:
        return (
            f"infolens: could not build {name}, the built-in language model, which has no "
            f"fallback ({_one_line(exc)}). {NEEDS}"
        )


def _one_line(exc: BaseException) -> str:
    """The error in one short line (a failed compiler command: its output is printed above)."""
    text = " ".join(str(exc).split())
    if not text or len(text) > 160:
        return f"{type(exc).__name__}: the compiler failed, its output is above"
    return text


ext_modules = []
# the required extension first: without a compiler the install stops at its clear error
for name in ("_ngram_native", "_native"):
    src = here / "src" / "infolens" / f"{name}.c"
    if src.exists():
        ext_modules.append(
            Extension(
                f"infolens.{name}",
                sources=[str(src.relative_to(here))],
                include_dirs=[np.get_include()],
                extra_compile_args=["-O3", "-fno-math-errno", "-fno-trapping-math", "-pthread"]
                # _native passes 64-byte vector types between inlined helpers on purpose
                + (["-Wno-psabi"] if name == "_native" else [])
                # the built-in model's probabilities (and so the compressor's integers) must
                # be the same on every machine: no fused multiply-add contraction, which
                # GCC does by default on aarch64, POWER and x86 with -mfma
                + (["-ffp-contract=off"] if name == "_ngram_native" else []),
                extra_link_args=["-pthread"],
            )
        )

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
