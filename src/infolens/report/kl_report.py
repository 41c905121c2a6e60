"""The ``infolens kl --report`` page: the KL estimators k1, k2, k3 against the exact KL,
per token and per sequence, with figures by generated position and per token."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from infolens.report import plots
from infolens.report._common import write_atomic
from infolens.report.html import (
    ColorScale,
    Column,
    Page,
    SummaryRow,
    TipSchema,
    figure,
    section,
    sortable_table,
    summary_table,
)

if TYPE_CHECKING:
    from infolens.kl_diagnostics import KLEstimatorReport

__all__ = ["kl_page", "write_kl_report"]

#: exact, k1, k2, k3
_COLORS = ("#000000", "#51127c", "#fc8961", "#2c728e")


def _scatter(r: KLEstimatorReport, max_points: int = 2000) -> Any:
    """Per-token estimates against the exact KL (a seeded subsample of at most
    ``max_points`` tokens), with the line k = exact."""
    plt = plots._pyplot()
    with plt.rc_context(plots._STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 3.2), layout="constrained")
        n = len(r.token_exact)
        idx = np.arange(n)
        if n > max_points:
            idx = np.sort(np.random.default_rng(0).choice(n, max_points, replace=False))
        x = r.token_exact[idx]
        for i, (name, k) in enumerate(r.token_k.items()):
            ax.scatter(x, k[idx], s=4, alpha=0.45, color=_COLORS[1 + i], label=name, linewidths=0)
        if n:
            hi = float(np.max(x))
            ax.plot([0, hi], [0, hi], color=_COLORS[0], linewidth=1.0, label="k = exact")
        ax.set_xlabel(f"exact KL_t ({r.unit})")
        ax.set_ylabel(f"estimate ({r.unit})")
        ax.set_title("per-token estimates against the exact KL")
        ax.legend(frameon=False)
    return fig


def _stat_rows(r: KLEstimatorReport, level: str) -> list[dict[str, Any]]:
    rows = []
    for name, e in [("exact", r.exact), *r.estimators.items()]:
        s = getattr(e, level)
        rows.append({"estimator": name, **s.to_dict()})
    return rows


def kl_page(r: KLEstimatorReport) -> str:
    """The page's HTML for a :class:`~infolens.kl_diagnostics.KLEstimatorReport`."""
    page = Page("infolens kl", ColorScale(vmax=1.0), TipSchema((), ()))
    u = r.unit
    chain = {k: v for k, v in r.sampling.items() if k not in ("order", "min_tokens_to_keep")}
    et, es = r.exact.per_token, r.exact.per_sequence
    page.add(section("KL estimators against the exact KL", summary_table([
        SummaryRow("policy", "policy", r.policy),
        SummaryRow("ref", "reference", r.ref,
                   help=f"at temperature {r.ref_temperature:g}, never truncated"),
        SummaryRow("sampling", "sampling", ", ".join(f"{k}={v}" for k, v in chain.items())
                   or "none (the policy's own softmax)"),
        SummaryRow("n_sequences", "completions", r.n_sequences,
                   help=f"{r.samples} per prompt, {r.n_prompts} prompts, seed {r.seed}"),
        SummaryRow("n_tokens", "tokens", r.n_tokens),
        SummaryRow("exact_token", f"exact KL per token ({u})", et.mean,
                   ci=None if et.mean_se is None else (et.mean - 1.96 * et.mean_se,
                                                        et.mean + 1.96 * et.mean_se),
                   help="D(π‖π_ref) over the full vocabulary, mean over sampled positions"),
        SummaryRow("exact_sequence", f"Σ_t KL_t per sequence ({u})", es.mean,
                   ci=None if es.mean_se is None else (es.mean - 1.96 * es.mean_se,
                                                        es.mean + 1.96 * es.mean_se),
                   help="the Rao-Blackwellised sequence KL, mean over completions"),
        SummaryRow("ref_mass_outside", "reference mass removed by truncation",
                   r.ref_mass_outside,
                   help="mean per token of π_ref on the tokens the chain removed: k3's "
                   "expected bias is minus this (nats); 0 without truncation"),
    ])))  # fmt: skip
    cols = [Column("estimator", "estimator", numeric=False), Column("mean", f"mean ({u})"),
            Column("bias", f"bias ({u})"), Column("bias_se", "bias s.e."),
            Column("std", f"std ({u})"), Column("std_over_true", "std / true"),
            Column("rmse", f"RMS error ({u})"), Column("relative_error", "relative error"),
            Column("negative_fraction", "fraction < 0")]  # fmt: skip
    intro = ("bias = mean(k − exact); std/true = std(k) / mean exact (Schulman's figure); "
             "relative error = RMS(k − exact) / mean exact. Per sequence the estimates are "
             "summed over the completion and compared with Σ_t KL_t.")  # fmt: skip
    page.add(section("Per token", sortable_table("per-token", cols, _stat_rows(r, "per_token")),
                     intro=intro))  # fmt: skip
    page.add(section("Per sequence", sortable_table("per-sequence", cols,
                                                    _stat_rows(r, "per_sequence"))))  # fmt: skip
    if plots.have_matplotlib() and r.n_tokens:
        pp = r.per_position
        fig1 = plots.line_figure(
            pp["position"],
            [("exact", pp["exact_mean"]), *[(k, pp[f"{k}_mean"]) for k in r.estimators]],
            xlabel="generated position t", ylabel=f"mean ({u})",
            title="mean estimate by position", colors=_COLORS,
        )  # fmt: skip
        fig2 = plots.line_figure(
            pp["position"],
            [(k, [np.nan if v is None else v for v in pp[f"{k}_error_std"]]) for k in r.estimators],
            xlabel="generated position t", ylabel=f"std of k − exact ({u})",
            title="estimator noise by position", colors=_COLORS[1:],
        )  # fmt: skip
        fig3 = _scatter(r)
        page.add(section("Figures",
                         figure("f-position", plots.to_svg(fig1, salt="p"),
                                "Mean exact KL and mean estimates at each generated position: "
                                "k1 and k3 follow the exact line up to noise, k2 drifts by "
                                "its bias.")
                         + figure("f-noise", plots.to_svg(fig2, salt="n"),
                                  "Standard deviation of k − exact at each position: the noise "
                                  "each sampled-token estimator adds to the exact value.")
                         + figure("f-scatter", plots.to_svg(fig3, salt="s"),
                                  "Each token's estimates against its exact KL (a sample of at "
                                  "most 2,000 tokens).")))  # fmt: skip
    seq_cols = [Column("prompt_index", "prompt", integer=True), Column("index", "#", integer=True),
                Column("tokens", "tokens", integer=True),
                Column("finish_reason", "end", numeric=False),
                Column("exact", f"Σ KL_t ({u})"),
                *[Column(k, f"Σ {k} ({u})") for k in r.estimators],
                Column("text", "text", numeric=False)]  # fmt: skip
    page.add(section("Completions", sortable_table("sequences", seq_cols, r.sequences[:500]),
                     intro="" if len(r.sequences) <= 500 else
                     f"The first 500 of {len(r.sequences):,} completions."))  # fmt: skip
    return page.render()


def write_kl_report(path: str | Path, r: KLEstimatorReport) -> None:
    """Write :func:`kl_page` to ``path`` atomically (``-``: stdout)."""
    write_atomic(Path(path), kl_page(r))
