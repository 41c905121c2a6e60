"""Every number on docs/divergence.md ("Where the idealisation diverges from implementation").

Each ``case_*`` function measures one section of the page and returns its numbers as
already formatted strings (a Markdown table is one string); :func:`compute` merges them into
one dict. The page quotes each number between markers::

    <!-- value: KEY -->1.234<!-- /value -->          (inline)
    <!-- table: KEY -->                              (a table, on its own lines)
    | ... |
    <!-- /table -->

and ``tests/test_divergence_page.py`` checks that every marked number equals the freshly
computed one. Deterministic (seeded), CPU only, offline (the built-in ``ngram`` model and a
tiny random GPT-2 built locally by ``tests/hf_fixtures.py``).

Usage::

    python scripts/divergence_cases.py                             # the numbers as JSON
    python scripts/divergence_cases.py --write docs/divergence.md  # refresh the page
    python scripts/divergence_cases.py --check docs/divergence.md  # exit 1 if stale
    python scripts/divergence_cases.py --figure docs/img/divergence_plugin_bias.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from page_values import MARKER, Values, markers, render, shown  # noqa: F401  (the test uses them)

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "divergence.md"
FIGURE = ROOT / "docs" / "img" / "divergence_plugin_bias.png"

#: ``<!-- value: KEY -->TEXT<!-- /value -->`` or ``<!-- table: KEY -->TEXT<!-- /table -->``



# --------------------------------------------------------------------------- formatting


def num(x: float, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals; ``nan`` / ``inf`` / ``-inf`` spelled as Python does."""
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    return f"{x:.{digits}f}"


def sci(x: float, digits: int = 2) -> str:
    """``x`` in scientific notation (``nan`` / ``inf`` as such)."""
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    return f"{x:.{digits}e}"


def rel_err(x: float, ref: float) -> str:
    """``|x - ref| / |ref|`` in scientific notation (``nan`` when ``x`` is not finite)."""
    x = float(x)
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else "inf"
    return sci(abs(x - ref) / abs(ref))


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- 1. half precision


def case_half_precision() -> Values:
    """float16 / bfloat16 softmax underflow: entropy and KL of two logit vectors
    (V = 32,000, logits N(0, 4^2), q's logits = p's plus N(0, 1) noise), computed four ways
    from the *same* half-precision logits; the reference is float64 from those logits."""
    import torch
    import torch.nn.functional as F

    from infolens import entropy, kl_divergence

    g = torch.Generator().manual_seed(0)
    vocab = 32_000
    zp = torch.randn(vocab, generator=g, dtype=torch.float64) * 4.0
    zq = zp + torch.randn(vocab, generator=g, dtype=torch.float64)
    tiny = float(torch.tensor(2.0**-24, dtype=torch.float16))  # the smallest subnormal
    assert tiny > 0 and float(torch.tensor(tiny / 2, dtype=torch.float16)) == 0
    out: Values = {
        "half.tiny": sci(tiny),
        "half.log_tiny": num(math.log(tiny), 2),
        "half.vocab": f"{vocab:,}",
        "half.spread": num(float(zp.max() - zp.min()), 1),
    }
    rows: list[list[str]] = []
    for name, dt in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        p16, q16 = zp.to(dt), zq.to(dt)
        h_ref = float(entropy(logits=p16.double()))
        d_ref = float(kl_divergence(p_logits=p16.double(), q_logits=q16.double()))
        p, q = torch.softmax(p16, -1), torch.softmax(q16, -1)
        lp, lq = torch.log_softmax(p16, -1), torch.log_softmax(q16, -1)
        ways = [
            (
                "`softmax`, then `-(p * p.log()).sum()`; `kl_div(q.log(), p)`",
                float(-(p * p.log()).sum()),
                float(F.kl_div(q.log(), p, reduction="sum")),
            ),
            (
                "`log_softmax`, then `-(lp.exp() * lp).sum()`; `kl_div(lq, p)`",
                float(-(lp.exp() * lp).sum()),
                float(F.kl_div(lq, p, reduction="sum")),
            ),
            (
                "infolens `entropy(logits=)`; `kl_divergence(p_logits=, q_logits=)`",
                float(entropy(logits=p16)),
                float(kl_divergence(p_logits=p16, q_logits=q16)),
            ),
        ]
        out[f"half.{name}.zeros"] = f"{int((p == 0).sum()):,}"
        if name == "float16":
            out["half.float16.both_zero"] = f"{int(((p == 0) & (q == 0)).sum()):,}"
            out["half.float16.p_only"] = f"{int(((p > 0) & (q == 0)).sum()):,}"
            out["half.float16.d_ref"] = num(d_ref, 6)
        rows.append(
            [name, "float64 reference from the same logits", num(h_ref, 6), "0", num(d_ref, 6), "0"]
        )
        for label, h, d in ways:
            rows.append([name, label, num(h, 6), rel_err(h, h_ref), num(d, 6), rel_err(d, d_ref)])
        # infolens's float32 results agree with the float64 reference to float32 rounding
        assert abs(ways[-1][1] - h_ref) <= 1e-6 * h_ref and abs(ways[-1][2] - d_ref) <= 1e-6
    out["half.table"] = table(
        [
            "logits",
            "computed with (torch, in the logits' dtype unless infolens)",
            "H(p) (nats)",
            "rel. error",
            "D(p‖q) (nats)",
            "rel. error",
        ],
        rows,
    )
    return out


# --------------------------------------------------------------------------- 2. 0 log 0


#: (what it shows, the expression; evaluated as written in the namespace of
#: :func:`case_zero_log_zero`: p = [0.5, 0.5, 0], q = [0.5, 0.25, 0.25], z = [0, 0, -inf])
ZERO_CASES: list[tuple[str, str]] = [
    ("H(p), numpy", "-(p * np.log(p)).sum()"),
    ("H(p), scipy", "scipy.special.entr(p).sum()"),
    ("H(p), scipy", "scipy.stats.entropy(p)"),
    ("H(p), torch", "-(torch.softmax(zt, -1) * torch.softmax(zt, -1).log()).sum()"),
    ("H(p), torch", "-(torch.softmax(zt, -1) * torch.log_softmax(zt, -1)).sum()"),
    ("H(p), torch", "torch.special.entr(torch.softmax(zt, -1)).sum()"),
    ("H(p), infolens", "infolens.entropy(p)"),
    ("H(p), infolens", "infolens.entropy(logits=z)"),
    ("D(p‖q), numpy", "(p * np.log(p / q)).sum()"),
    ("D(p‖q), scipy", "scipy.special.rel_entr(p, q).sum()"),
    ("D(p‖q), torch", "F.kl_div(torch.tensor(q).log(), torch.tensor(p), reduction='sum')"),
    ("D(p‖q), infolens", "infolens.kl_divergence(p, q)"),
    (
        "term p_i = 0, log q_i = −inf, torch",
        "F.kl_div(torch.tensor([-math.inf]), torch.tensor([0.0]), reduction='sum')",
    ),
    (
        "term p_i > 0, log q_i = −inf, torch",
        "F.kl_div(torch.tensor([-math.inf]), torch.tensor([0.5]), reduction='sum')",
    ),
    ("D(q‖p) (q > 0 where p = 0), scipy", "scipy.special.rel_entr(q, p).sum()"),
    ("D(q‖p), infolens", "infolens.kl_divergence(q, p)"),
    ("softmax of all `-inf`, torch", "torch.softmax(torch.full((3,), -math.inf), -1)"),
    ("H of all `-inf` logits, infolens", "infolens.entropy(logits=[-math.inf] * 3)"),
]


def _show(x: Any) -> str:
    """A result as the page shows it: a float to 6 decimals, a tensor as its values."""
    if hasattr(x, "tolist") and np.ndim(x) > 0:
        return "[" + ", ".join(num(v, 4) for v in np.asarray(x.tolist(), dtype=float)) + "]"
    return num(float(x), 6)


def case_zero_log_zero() -> Values:
    """``0 log 0`` and ``-inf`` logits: each expression of :data:`ZERO_CASES` run as written;
    warnings and exceptions are reported, not hidden."""
    import scipy.special
    import scipy.stats
    import torch
    import torch.nn.functional as F

    import infolens

    ns: dict[str, Any] = {
        "np": np,
        "math": math,
        "scipy": scipy,
        "torch": torch,
        "F": F,
        "infolens": infolens,
        "p": np.array([0.5, 0.5, 0.0]),
        "q": np.array([0.5, 0.25, 0.25]),
        "z": np.array([0.0, 0.0, -math.inf]),
        "zt": torch.tensor([0.0, 0.0, -math.inf], dtype=torch.float64),
    }
    rows = []
    for what, expr in ZERO_CASES:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                shown = _show(eval(expr, ns))  # our own fixed expressions
            except Exception as e:  # the library's refusal is the result
                shown = f"{type(e).__name__}: {e}"
        if caught:
            shown += f" ({type(caught[0].message).__name__}: {caught[0].message})"
        rows.append([what, f"`{expr}`", shown])
    return {"zero.table": table(["quantity", "code", "result"], rows)}


# --------------------------------------------------------------------------- 3. kl_div


def case_kl_div() -> Values:
    """torch's ``kl_div(input, target)``: input is log q, target is p, the result D(p‖q);
    ``reduction="mean"`` divides by batch x vocabulary, ``"batchmean"`` by the batch."""
    import torch
    import torch.nn.functional as F

    from infolens import kl_divergence

    g = torch.Generator().manual_seed(0)
    batch, vocab = 8, 1000
    p = torch.softmax(torch.randn(batch, vocab, generator=g, dtype=torch.float64) * 2, -1)
    q = torch.softmax(torch.randn(batch, vocab, generator=g, dtype=torch.float64) * 2, -1)
    d_pq = float(kl_divergence(p, q).mean())
    d_qp = float(kl_divergence(q, p).mean())
    batchmean = float(F.kl_div(q.log(), p, reduction="batchmean"))
    swapped = float(F.kl_div(p.log(), q, reduction="batchmean"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mean = float(F.kl_div(q.log(), p, reduction="mean"))
    message = str(caught[0].message) if caught else "(no warning)"
    assert math.isclose(batchmean, d_pq, rel_tol=1e-12)
    assert math.isclose(swapped, d_qp, rel_tol=1e-12)
    return {
        "kl.batch": str(batch),
        "kl.vocab": f"{vocab:,}",
        "kl.elements": f"{batch * vocab:,}",
        "kl.d_pq": num(d_pq, 6),
        "kl.d_qp": num(d_qp, 6),
        "kl.batchmean": num(batchmean, 6),
        "kl.swapped": num(swapped, 6),
        "kl.mean": num(mean, 6),
        "kl.factor": num(batchmean / mean, 3),
        "kl.warning": message.split(".")[0],
    }


# --------------------------------------------------------------------------- 4. windows


def _tests_on_path() -> None:
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))


#: (model, max_length, stride, bos) rows of the perplexity table
WINDOW_SETTINGS: list[tuple[str, int | None, int | None, str | None]] = [
    ("gpt2", 64, 32, "first"),
    ("gpt2", 64, 64, "first"),
    ("gpt2", 64, 8, "first"),
    ("gpt2", 64, 32, "none"),
    ("gpt2", 64, 32, "every"),
    ("gpt2", 16, 16, "first"),
    ("gpt2", 16, 16, "every"),
    ("ngram", None, None, None),
    ("ngram", 512, 256, "none"),
    ("ngram", 64, 32, "none"),
    ("ngram", 64, 64, "none"),
]


def case_windows(tmp: Path) -> Values:
    """One text (4,000 characters of stdlib docstrings) scored under different windows,
    strides and BOS policies, by the tiny random GPT-2 of ``tests/hf_fixtures.py``
    (context 64) and by the built-in adaptive ``ngram`` model."""
    _tests_on_path()
    from hf_fixtures import build_tiny_hf, stdlib_text
    from infolens.models import load_model
    from infolens.score import Document, score_documents

    text = stdlib_text(6000)[2000:6000]
    gpt2 = load_model(f"hf:{build_tiny_hf(tmp / 'tiny_gpt2')}", device="cpu", dtype="float32")
    models = {"gpt2": gpt2, "ngram": load_model("ngram")}
    rows = []
    ppl: dict[str, list[float]] = {"gpt2": [], "ngram": []}
    bpb: dict[str, list[float]] = {"gpt2": [], "ngram": []}
    for name, length, stride, bos in WINDOW_SETTINGS:
        r = score_documents(
            models[name],
            [Document("text", text)],
            max_length=length,
            stride=stride,
            bos=bos,
            compressors=False,
        )
        s, m = r.settings, r.metrics
        ppl[name].append(m["perplexity"])
        bpb[name].append(m["bits_per_byte"])
        rows.append(
            [
                "tiny GPT-2 (random weights)" if name == "gpt2" else "ngram (adaptive)",
                "whole text" if s.max_length is None else str(s.max_length),
                "–" if s.max_length is None else str(s.stride),
                str(s.bos),
                f"{m['tokens']:,}",
                num(m["perplexity"], 2),
                num(m["bits_per_byte"], 4),
            ]
        )

    def spread(xs: list[float]) -> str:
        return num(100.0 * (max(xs) - min(xs)) / min(xs), 1)

    return {
        "win.gpt2.tokens": f"{len(gpt2.tokenize(text).ids):,}",
        "win.ngram.tokens": f"{len(models['ngram'].tokenize(text).ids):,}",
        "win.gpt2.vocab": f"{gpt2.vocab_size:,}",
        "win.chars": f"{len(text):,}",
        "win.bytes": f"{len(text.encode()):,}",
        "win.table": table(
            [
                "model",
                "window L",
                "stride S",
                "BOS",
                "tokens predicted",
                "perplexity",
                "bits per byte",
            ],
            rows,
        ),
        "win.gpt2.ppl_spread": spread(ppl["gpt2"]),
        "win.gpt2.bpb_spread": spread(bpb["gpt2"]),
        "win.ngram.bpb_spread": spread(bpb["ngram"]),
    }


# --------------------------------------------------------------------------- 5. truncation


def _ngram_rows(text: str) -> tuple[np.ndarray, np.ndarray]:
    """The ngram model's next-byte log-probabilities at every position of ``text``
    (``[n, 256]``, float64) and the bytes."""
    from infolens.models import Window, load_model

    model = load_model("ngram")
    ids = np.asarray(model.tokenize(text).ids)
    rows = np.concatenate(list(model.logits([Window(ids, start=0)], max_rows=1 << 16)))
    return rows, ids


def case_truncation() -> Values:
    """top-p / top-k truncation of the ngram model's next-byte distributions: D(trunc‖full)
    is finite and equals -ln(kept mass); D(full‖trunc) is infinite."""
    _tests_on_path()
    from hf_fixtures import stdlib_text
    from infolens import kl_divergence
    from infolens.sampling import min_p, top_k, top_p

    text = stdlib_text(4000)
    rows, _ = _ngram_rows(text)
    z = rows[-1]  # the distribution of the last byte, given all the bytes before it
    table_rows = []
    cuts: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
        ("`top_p(z, 0.9)`", lambda a: top_p(a, 0.9)),
        ("`top_p(z, 0.5)`", lambda a: top_p(a, 0.5)),
        ("`top_k(z, 5)`", lambda a: top_k(a, 5)),
        ("`min_p(z, 0.1)`", lambda a: min_p(a, 0.1)),
        ("`top_k(z, 1)` (greedy)", lambda a: top_k(a, 1)),
    ]
    out: Values = {}
    for label, cut in cuts:
        zt = cut(z)
        kept = np.isfinite(zt)
        mass = float(np.exp(z[kept]).sum())
        fwd = float(kl_divergence(p_logits=zt, q_logits=z))
        rev = float(kl_divergence(p_logits=z, q_logits=zt))
        assert math.isclose(fwd, -math.log(mass), rel_tol=1e-9, abs_tol=1e-12)
        # mean over every position of the text: the cost of always sampling truncated
        all_fwd = kl_divergence(p_logits=cut(rows), q_logits=rows)
        table_rows.append(
            [
                label,
                str(int(kept.sum())),
                num(mass, 4),
                num(fwd, 4),
                num(-math.log(mass), 4),
                num(rev, 4),
                num(float(np.mean(all_fwd)), 4),
                num(float(np.max(all_fwd)), 3),
            ]
        )
    out["trunc.positions"] = f"{len(rows):,}"
    out["trunc.prefix"] = f"{len(rows) - 1:,}"
    out["trunc.table"] = table(
        [
            "truncation",
            "bytes kept (of 256)",
            "kept mass",
            "D(trunc‖full) (nats)",
            "−ln(kept mass) (nats)",
            "D(full‖trunc) (nats)",
            "mean D(trunc‖full) over the text (nats)",
            "max over the text (nats)",
        ],
        table_rows,
    )
    return out


# --------------------------------------------------------------------------- 6. plug-in bias


ZIPF_TYPES = 50_000
ZIPF_SIZES = (1_000, 10_000, 100_000)
ESTIMATORS = ("plugin", "miller_madow", "chao_shen", "grassberger", "nsb")


def zipf_bias() -> tuple[float, dict[int, dict[str, float]], dict[int, int]]:
    """True entropy (nats) of Zipf(1) over :data:`ZIPF_TYPES` types, each estimator's
    value at each sample size (one seeded sample each), and the types observed."""
    from infolens import estimate

    p = 1.0 / np.arange(1, ZIPF_TYPES + 1)
    p /= p.sum()
    h_true = float(-(p * np.log(p)).sum())
    rng = np.random.default_rng(0)
    est: dict[int, dict[str, float]] = {}
    seen: dict[int, int] = {}
    for n in ZIPF_SIZES:
        c = np.bincount(rng.choice(ZIPF_TYPES, size=n, p=p), minlength=ZIPF_TYPES)
        c = c[c > 0]
        seen[n] = len(c)
        est[n] = {
            e: estimate.entropy(counts=c, estimator=e, k=ZIPF_TYPES if e == "nsb" else None)
            for e in ESTIMATORS
        }
    return h_true, est, seen


def case_plugin_bias() -> Values:
    """Plug-in entropy and its corrections on samples of a Zipf distribution over 50,000
    types, against the exact entropy."""
    h_true, est, seen = zipf_bias()
    rows = []
    for n in ZIPF_SIZES:
        cells = [f"{n:,}", f"{seen[n]:,}"]
        cells += [
            f"{num(est[n][e], 3)} ({num(100 * (est[n][e] - h_true) / h_true, 1)} %)"
            for e in ESTIMATORS
        ]
        rows.append(cells)
    names = {
        "plugin": "plug-in",
        "miller_madow": "Miller–Madow",
        "chao_shen": "Chao–Shen",
        "grassberger": "Grassberger",
        "nsb": "NSB (k = 50,000)",
    }
    out: Values = {
        "bias.types": f"{ZIPF_TYPES:,}",
        "bias.h_true": num(h_true, 4),
        "bias.h_true_bits": num(h_true / math.log(2), 4),
        "bias.table": table(["samples n", "types seen"] + [names[e] for e in ESTIMATORS], rows),
    }
    for n in ZIPF_SIZES:
        out[f"bias.plugin_gap.{n}"] = num(h_true - est[n]["plugin"], 3)
    return out


def figure(path: Path) -> None:
    """The plug-in bias figure: each estimator against the sample size (log axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h_true, est, _ = zipf_bias()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    for e in ESTIMATORS:
        ax.plot(ZIPF_SIZES, [est[n][e] for n in ZIPF_SIZES], marker="o", label=e)
    ax.axhline(h_true, color="k", ls="--", lw=1, label=f"true H = {h_true:.3f} nats")
    ax.set_xscale("log")
    ax.set_xlabel("samples n")
    ax.set_ylabel("entropy estimate (nats)")
    ax.set_title(f"Zipf(1) over {ZIPF_TYPES:,} types: estimates from n samples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


# --------------------------------------------------------------------------- 7. quantisation


def case_quantisation(tmp: Path) -> Values:
    """The entropy coder's integer frequencies (``quantized_free_weights``, precision P)
    against the ngram model's float distributions on a 20,000-byte text: KL per symbol, and
    what :func:`infolens.codec.compress` measures over the same file."""
    _tests_on_path()
    from hf_fixtures import stdlib_text
    from infolens import kl_divergence
    from infolens._kernels import CODER_PRECISION, quantized_free_weights
    from infolens.codec import compress

    text = stdlib_text(20_000)
    rows, ids = _ngram_rows(text)
    n = len(ids)
    model_bits = float(-rows[np.arange(n), ids].sum() / math.log(2))
    out: Values = {
        "quant.bytes": f"{n:,}",
        "quant.precision": str(CODER_PRECISION),
        "quant.vocab": str(rows.shape[1]),
        "quant.reserved.10": num(100.0 * rows.shape[1] / 2**10, 1),
    }
    table_rows = []
    for prec in (10, 12, 16, 20, CODER_PRECISION):
        f = quantized_free_weights(rows, precision=prec).astype(np.float64) + 1.0
        lq = np.log(f) - prec * math.log(2)
        kl = kl_divergence(p_log_probs=rows, q_log_probs=lq, base=2)
        data_bits = float(-lq[np.arange(n), ids].sum() / math.log(2))
        table_rows.append(
            [
                str(prec),
                sci(float(np.mean(kl))),
                sci(float(np.max(kl))),
                num(float(np.sum(kl)), 3),
                num(data_bits - model_bits, 3),
            ]
        )
        if prec == CODER_PRECISION:
            q_bits = data_bits
    out["quant.table"] = table(
        [
            "P",
            "mean D(p‖q̂) (bits/symbol)",
            "max D(p‖q̂) (bits/symbol)",
            "sum of D(p‖q̂) over the file (bits)",
            "actual extra code length on the file (bits)",
        ],
        table_rows,
    )
    src = tmp / "text.txt"
    src.write_bytes(text.encode())
    stats = compress(src, tmp / "text.il", model="ngram")
    d = stats.to_dict()
    assert math.isclose(stats.model_bits, model_bits, rel_tol=1e-9)
    assert math.isclose(stats.quantized_bits, q_bits, rel_tol=1e-9)
    out |= {
        "quant.model_bits": num(stats.model_bits, 2),
        "quant.quantized_bits": num(stats.quantized_bits, 2),
        "quant.diff_bits": num(stats.quantized_bits - stats.model_bits, 4),
        "quant.model_bpb": num(d["model_bits_per_byte"], 4),
        "quant.payload_bytes": f"{stats.payload_bytes:,}",
        "quant.quantized_bytes": num(d["quantized_bytes"], 1),
        "quant.coder_overhead": num(d["coder_overhead_bytes"], 1),
        "quant.header_bytes": f"{stats.header_bytes:,}",
        "quant.compressed_bytes": f"{stats.compressed_bytes:,}",
    }
    return out


# --------------------------------------------------------------------------- the page


def compute() -> Values:
    """Every number of the page, formatted as the page shows it."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out: Values = {}
        out |= case_half_precision()
        out |= case_zero_log_zero()
        out |= case_kl_div()
        out |= case_windows(tmp)
        out |= case_truncation()
        out |= case_plugin_bias()
        out |= case_quantisation(tmp)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, metavar="PAGE", help="refresh PAGE's numbers in place")
    ap.add_argument("--check", type=Path, metavar="PAGE", help="exit 1 if PAGE is stale")
    ap.add_argument("--figure", type=Path, metavar="PNG", help="draw the plug-in bias figure")
    args = ap.parse_args(argv)
    if args.figure:
        figure(args.figure)
    if not (args.write or args.check):
        if not args.figure:
            print(json.dumps(compute(), indent=1, ensure_ascii=False))
        return 0
    values = compute()
    path = args.write or args.check
    page = path.read_text(encoding="utf-8")
    new = render(page, values)
    if args.write:
        if new != page:
            path.write_text(new, encoding="utf-8")
        print(f"{path}: {len(markers(new))} markers, {'updated' if new != page else 'unchanged'}")
        return 0
    if new != page:
        print(f"{path} is stale: run python scripts/divergence_cases.py --write {path}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
