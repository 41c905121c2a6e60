"""numpy users never pay for torch: no code path imports it unless the input is a tensor."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import numpy as np
import infolens
from click.testing import CliRunner
from infolens.cli import main

rng = np.random.default_rng(0)
a = rng.normal(size=(40, 30))
t = rng.integers(0, 30, 40)
infolens.entropy(logits=a)
infolens.kl_divergence(p_logits=a, q_logits=a[::-1].copy())
infolens.js_divergence(p_logits=a, q_logits=a + 1)
infolens.surprisal(t, logits=a)
infolens.renyi_divergence(p_logits=a, q_logits=a * 2, alpha=0.5)
infolens.compare_logits(a, a * 1.1, t)
runner = CliRunner()
for args in (["score", "README.md", "--json"],
             ["compare", "README.md", "--model", "ngram:order=2", "--base", "ngram:order=3", "--json"],
             ["measure", "kl", "--p", "0.5,0.5", "--q", "0.9,0.1"]):
    res = runner.invoke(main, args)
    assert res.exit_code == 0, (args, res.output)
print("torch" in sys.modules)
"""


def test_numpy_paths_do_not_import_torch() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr
