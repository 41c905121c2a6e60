"""Every number on docs/intuition.md, computed (offline, seeded, CPU, a few seconds).

``python scripts/intuition_numbers.py`` prints them as JSON; ``--write docs/intuition.md``
puts them into the page between its markers ``<!-- value: KEY -->...<!-- /value -->``;
``--figures`` also redraws ``docs/img/intuition_kl_fits.png``. ``tests/test_intuition_page.py``
recomputes them and checks the page shows exactly these values.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from page_values import markers, render  # noqa: E402, F401  (markers: for the test)


def corpus_text() -> str:
    """Docstrings of a few standard-library modules: English prose and code, local."""
    import collections
    import functools
    import json as js
    import textwrap

    return "\n\n".join(inspect.getdoc(m) or "" for m in (js, collections, functools, textwrap))


def effective_vocabulary() -> dict[str, str]:
    """Perplexity as an effective number of choices: exp(H) of real next-byte rows."""
    from infolens import entropy
    from infolens.models import Window, load_model

    m = load_model("ngram")
    data = corpus_text().encode()
    ids = np.frombuffer(data, dtype=np.uint8)
    rows = np.concatenate(list(m.logits([Window(ids, 0)], max_rows=4096)))
    h = np.asarray(entropy(logits=rows))  # nats per position
    eff = np.exp(h)
    sur = -rows[np.arange(len(ids)), ids]
    return {
        "ev_bytes": f"{len(ids):,}",
        "ev_median": f"{np.median(eff):.1f}",
        "ev_p10": f"{np.percentile(eff, 10):.1f}",
        "ev_p90": f"{np.percentile(eff, 90):.1f}",
        "ev_exp_mean_h": f"{math.exp(h.mean()):.2f}",
        "ev_perplexity": f"{math.exp(sur.mean()):.2f}",
    }


def units() -> dict[str, str]:
    """Bits per token, bits per byte and word perplexity of two tokenizations."""
    import tempfile

    from infolens import Document, load_model, score_documents

    sys.path.insert(0, str(ROOT / "tests"))
    from hf_fixtures import build_tiny_hf, stdlib_text

    text = stdlib_text(20_000)[-6000:]
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as d:
        # a tokenizer-level model that has seen this kind of text: the tiny GPT-2 of the
        # tests, whose random weights make it a poor model, but a BPE one
        hf = load_model(f"hf:{build_tiny_hf(Path(d))}", device="cpu", dtype="float32")
        for key, model, kw in (("byte", load_model("ngram"), {}),
                               ("bpe", hf, {"max_length": 64, "stride": 32})):  # fmt: skip
            r = score_documents(model, [Document("t", text)], **kw).to_dict()
            out[f"u_{key}_tokens"] = f"{r['tokens']:,}"
            out[f"u_{key}_bpt"] = f"{r['bits_per_token']:.3f}"
            out[f"u_{key}_ppl"] = f"{r['perplexity']:.2f}"
            out[f"u_{key}_bpb"] = f"{r['bits_per_byte']:.3f}"
            out[f"u_{key}_wppl"] = f"{r['word_perplexity']:.3g}"
    n = len(text.encode())
    out["u_bytes"] = f"{n:,}"
    out["u_bytes_per_bpe_token"] = f"{n / int(out['u_bpe_tokens'].replace(',', '')):.2f}"
    out["u_diff_bpb"] = f"{float(out['u_bpe_bpb']) - float(out['u_byte_bpb']):.2f}"
    return out


def decomposition() -> dict[str, str]:
    """CE = H + KL on text drawn from a base model, scored by another model."""
    from infolens import Document, generate
    from infolens.compare import compare_documents
    from infolens.models import load_model
    from infolens.models.ngram import fit_ngram

    base = fit_ngram([corpus_text().encode()], order=3)
    model = load_model("ngram:order=2")
    samples = generate(base, "The ", n=8, max_new_tokens=400, seed=7)
    # the sampled bytes themselves (their text may not be UTF-8: .text would replace them)
    docs = [Document(f"s{i}", b"The " + bytes(int(t) for t in s.token_ids))
            for i, s in enumerate(samples)]  # fmt: skip
    rows: dict[str, list[np.ndarray]] = {"nll_model": [], "entropy_base": [], "kl_base_model": []}

    def keep(r: Any) -> None:
        gen = r.positions >= 4  # only the sampled bytes (after the prompt)
        for k in rows:
            rows[k].append(np.asarray(r.stats[k])[gen])

    compare_documents(model, base, docs, on_rows=keep)
    v = {k: np.concatenate(x) for k, x in rows.items()}
    n = len(v["nll_model"])
    resid = v["nll_model"] - v["entropy_base"] - v["kl_base_model"]
    se = resid.std(ddof=1) / math.sqrt(n)
    ln2 = math.log(2)
    return {
        "d_tokens": f"{n:,}",
        "d_ce": f"{v['nll_model'].mean() / ln2:.4f}",
        "d_h": f"{v['entropy_base'].mean() / ln2:.4f}",
        "d_kl": f"{v['kl_base_model'].mean() / ln2:.4f}",
        "d_sum": f"{(v['entropy_base'].mean() + v['kl_base_model'].mean()) / ln2:.4f}",
        "d_resid": f"{resid.mean() / ln2:+.4f}",
        "d_se": f"{se / ln2:.4f}",
    }


def kl_fits(figure: Path | None = None) -> dict[str, str]:
    """A Gaussian fitted to a two-peaked mixture by D(p||q) and by D(q||p), on a grid."""
    from infolens import kl_divergence

    x = np.linspace(-8, 8, 1601)

    def normal(mu: float, s: float) -> np.ndarray:
        d = np.exp(-0.5 * ((x - mu) / s) ** 2)
        return d / d.sum()

    p = 0.5 * normal(-2.5, 0.7) + 0.5 * normal(2.5, 0.7)
    best: dict[str, tuple[float, float, float]] = {}
    for mu in np.linspace(-4, 4, 81):
        for s in np.linspace(0.3, 4, 75):
            q = normal(float(mu), float(s))
            for name, val in (("forward", float(kl_divergence(p, q))),
                              ("reverse", float(kl_divergence(q, p)))):  # fmt: skip
                if name not in best or val < best[name][2]:
                    best[name] = (float(mu), float(s), val)
    if figure is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
        ax.plot(x, p, color="black", lw=2, label="p: the data (two modes)")
        f, r = best["forward"], best["reverse"]
        ax.plot(x, normal(f[0], f[1]), lw=1.8,
                label=f"argmin D(p‖q): mass-covering (σ={f[1]:.2f})")  # fmt: skip
        ax.plot(x, normal(r[0], r[1]), lw=1.8, ls="--",
                label=f"argmin D(q‖p): mode-seeking (μ={r[0]:+.1f}, σ={r[1]:.2f})")  # fmt: skip
        ax.set_xlabel("x")
        ax.set_yticks([])
        ax.legend(fontsize=8, loc="upper left", frameon=False)
        fig.tight_layout()
        fig.savefig(figure)
        plt.close(fig)
    f, r = best["forward"], best["reverse"]
    return {
        "kl_fwd_mu": f"{f[0]:+.2f}", "kl_fwd_sigma": f"{f[1]:.2f}", "kl_fwd_val": f"{f[2]:.3f}",
        "kl_rev_mu": f"{abs(r[0]):.2f}", "kl_rev_sigma": f"{r[1]:.2f}", "kl_rev_val": f"{r[2]:.3f}",
    }  # fmt: skip


def temperature() -> dict[str, str]:
    """Temperature as entropy control on one real next-byte distribution."""
    from infolens.models import Window, load_model
    from infolens.sampling import entropy_curve, solve_temperature

    m = load_model("ngram")
    data = corpus_text().encode()[:3000]
    ids = np.frombuffer(data, dtype=np.uint8)
    (row,) = list(m.logits([Window(ids, len(ids) - 1)], max_rows=1))
    hs = entropy_curve(row[0], [0.25, 0.5, 1.0, 2.0], base=2).entropy
    t = float(solve_temperature(row[0], 1.0, base=2))
    return {"t_h025": f"{hs[0]:.3f}", "t_h05": f"{hs[1]:.3f}", "t_h1": f"{hs[2]:.3f}",
            "t_h2": f"{hs[3]:.3f}", "t_for_1bit": f"{t:.4f}"}  # fmt: skip


def retrieval() -> dict[str, str]:
    """Bits a passage gives the model about an answer (pointwise conditional MI)."""
    from infolens.models.ngram import fit_ngram
    from infolens.rag import context_gain

    m = fit_ngram([corpus_text().encode()], order=4, adapt=True)
    q, a = "What does json.dumps return?", "json.dumps returns a str"
    good = "json.dumps(obj) serialises obj to a JSON formatted str and returns the str."
    bad = "The textwrap module wraps and fills paragraphs of plain text."
    g = context_gain(m, q, a, [good, bad])
    return {"r_good": f"{g[0].gain_bits:+.2f}", "r_bad": f"{g[1].gain_bits:+.2f}",
            "r_tokens": f"{len(g[0].token_gains)}"}  # fmt: skip


def code_length() -> dict[str, str]:
    """The compressor writes the cross-entropy."""
    from infolens.compressors import reference_sizes

    data = corpus_text().encode()
    import tempfile

    from infolens import codec

    with tempfile.TemporaryDirectory() as d:
        src = Path(d, "t")
        src.write_bytes(data)
        st = codec.compress(src, Path(d, "t.ilz")).to_dict()
    xz = reference_sizes([data], names=("xz_9e",))["xz_9e"]
    return {"c_bytes": f"{len(data):,}", "c_model": f"{st['model_bytes']:,.1f}",
            "c_quant": f"{st['quantized_bytes']:,.1f}", "c_payload": f"{st['payload_bytes']:,}",
            "c_file": f"{st['compressed_bytes']:,}", "c_xz": f"{xz:,}"}  # fmt: skip


def compute(figures: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    out.update(effective_vocabulary())
    out.update(units())
    out.update(decomposition())
    out.update(kl_fits(ROOT / "docs" / "img" / "intuition_kl_fits.png" if figures else None))
    out.update(temperature())
    out.update(retrieval())
    out.update(code_length())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", type=Path, help="fill the numbers into this page")
    ap.add_argument("--figures", action="store_true")
    args = ap.parse_args()
    values = compute(figures=args.figures)
    if args.write:
        args.write.write_text(render(args.write.read_text(encoding="utf-8"), values), encoding="utf-8")
    print(json.dumps(values, indent=1))


if __name__ == "__main__":
    main()
