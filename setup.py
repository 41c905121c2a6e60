"""Build the optional compiled kernels. If a C compiler is missing, infolens still installs
and falls back to its numpy implementation (``optional=True``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from setuptools import Extension, setup

here = Path(__file__).parent
ext_modules = []
for name in ("_native", "_ngram_native"):
    src = here / "src" / "infolens" / f"{name}.c"
    if src.exists():
        ext_modules.append(
            Extension(
                f"infolens.{name}",
                sources=[str(src.relative_to(here))],
                include_dirs=[np.get_include()],
                extra_compile_args=["-O3", "-fno-math-errno", "-fno-trapping-math", "-pthread"]
                # _native passes 64-byte vector types between inlined helpers on purpose
                + (["-Wno-psabi"] if name == "_native" else []),
                extra_link_args=["-pthread"],
                optional=True,
            )
        )

setup(ext_modules=ext_modules)
