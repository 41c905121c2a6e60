"""``infolens sample``: what temperature and truncation do to a next-token distribution,
and samples drawn with them.

Only options and formatting: the numbers come from
:func:`infolens.next_token.describe_next_token` and :func:`infolens.generation.generate`.
"""

from __future__ import annotations

from typing import Any

import click

from infolens.cli import main
from infolens.cli._common import debug_option, echo_json, emit, fmt
from infolens.cli._options import (
    check_hf_options,
    check_outputs,
    load_model_option,
    sampling_options,
)
from infolens.errors import InputError
from infolens.models import DEFAULT_MODEL
from infolens.models.hf import DEVICES, DTYPES


def _temperatures(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--temperatures: expected numbers separated by commas, got {text!r}") from None
    if not values or any(not (v >= 0) for v in values):
        raise InputError(f"--temperatures: expected values >= 0, got {text!r}")
    return values


def _shown(s: str, width: int = 14) -> str:
    r = repr(s)[1:-1]
    return r if len(r) <= width else r[: width - 1] + "…"


def _tops(top: list[dict[str, Any]], k: int = 5) -> str:
    return "  ".join(f"{_shown(t['text'], 10)!s}:{t['prob']:.3f}" for t in top[:k])


def _distribution_text(d: dict[str, Any]) -> list[str]:
    dist = d["distribution"]
    lines = [
        f"model       {d['model']}",
        f"prompt      {_shown(d['prompt'], 60)} ({d['prompt_tokens']:,} tokens)",
        "",
        "next-token distribution (T = 1):",
        f"  entropy               {fmt(dist['entropy_bits'])} bits",
        f"  effective vocabulary  {fmt(dist['effective_vocabulary'])} tokens (exp of the entropy in nats)",
        "  top                   " + _tops(dist["top"], 8),
        "",
        "temperature (softmax(z / T)):",
        f"  {'T':>6}  {'entropy':>9}  {'eff. vocab':>10}  top tokens",
    ]
    for t in d["temperatures"]:
        lines.append(f"  {t['temperature']:>6g}  {fmt(t['entropy_bits']):>9}  "
                     f"{fmt(t['effective_vocabulary']):>10}  {_tops(t['top'])}")  # fmt: skip
    chain = d["chain"]
    head = ("the chain " + ", ".join(f"{k}={v}" for k, v in chain.items()) + f" ({d['order']} order)"
            if chain else "each truncation alone (at T = 1)")  # fmt: skip
    lines += ["", f"{head}:",
              f"  {'step':<20}{'kept':>8}{'mass kept':>11}{'H before':>10}{'H after':>9}"
              f"{'eff. vocab':>11}{'KL':>9}"]  # fmt: skip
    for s in d["steps"]:
        lines.append(
            f"  {s['name'] + '=' + format(s['value'], 'g'):<20}{s['kept']:>8,}{s['mass']:>11.4f}"
            f"{fmt(s['entropy_before_bits']):>10}{fmt(s['entropy_after_bits']):>9}"
            f"{fmt(s['effective_vocabulary_after']):>11}{fmt(s['kl_bits']):>9}"
        )
    if d["final"] is not None:
        f = d["final"]
        lines.append(f"  result: {f['kept']:,} tokens, {fmt(f['entropy_bits'])} bits; "
                     + _tops(f["top"]))  # fmt: skip
    lines += [
        "",
        "how to read: entropies H in bits; 'mass kept' is the probability the kept tokens had "
        "before the step; KL(after || before) in bits, = -log2(mass kept) for a truncation.",
    ]
    return lines


def _samples_text(samples: list[dict[str, Any]]) -> list[str]:
    lines = ["", f"samples ({len(samples)}):",
             f"  {'#':>3}  {'tokens':>6}  {'end':<7}{'NLL model':>11}{'H model':>9}"
             f"{'H sampled':>10}  text"]  # fmt: skip
    ln2 = 0.6931471805599453
    for s in samples:
        n = len(s["token_ids"])
        hm = sum(s["entropy_model_nats"]) / n / ln2 if n else None
        hs = sum(s["entropy_sampling_nats"]) / n / ln2 if n else None
        lines.append(f"  {s['index']:>3}  {n:>6}  {s['finish_reason']:<7}"
                     f"{fmt(s['nll_model_nats'] / ln2):>11}{fmt(hm):>9}{fmt(hs):>10}  "
                     f"{_shown(s['text'], 60)}")  # fmt: skip
    lines.append("  (NLL model: bits of the sample under the model at T = 1; H: mean entropy "
                 "per token, bits, of the model's and of the sampled distribution)")  # fmt: skip
    return lines


# fmt: off
@main.command("sample")
@click.option("--model", "-m", "model_spec", default=None, metavar="SPEC",
              help=f"Model (default {DEFAULT_MODEL}: built in, offline).")
@click.option("--prompt", "-p", required=True, help="The prompt (tokenised without special tokens).")
@sampling_options()
@click.option("--temperatures", default="0,0.5,0.7,1,1.5,2", show_default=True, metavar="T,T,...",
              help="Temperatures at which to show the distribution (0: the argmax limit).")
@click.option("--top", type=int, default=10, show_default=True, help="Tokens listed per distribution.")
@click.option("-n", "n_samples", type=int, default=0, help="Also draw N samples.")
@click.option("--max-new-tokens", type=int, default=32, show_default=True, help="Tokens per sample.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the samples.")
@click.option("--stop", multiple=True, help="End a sample at this string (repeatable).")
@click.option("--dtype", type=click.Choice(DTYPES), default=None, help="hf: weights dtype.")
@click.option("--device", type=click.Choice(DEVICES), default=None, help="hf: device.")
@click.option("--allow-download", is_flag=True, default=None, help="hf: allow downloading.")
@click.option("--trust-remote-code", is_flag=True, default=None, help="hf: run model code.")
@click.option("--report", "report_path", default=None, metavar="FILE.html",
              help="Also write an HTML page with the figures (entropy against T, mass kept).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@debug_option
def sample(model_spec: str | None, prompt: str, chain: dict[str, Any], order: str,
           temperatures: str, top: int,
           n_samples: int, max_new_tokens: int, seed: int, stop: tuple[str, ...],
           dtype: str | None, device: str | None, allow_download: bool | None,
           trust_remote_code: bool | None, report_path: str | None, as_json: bool) -> None:
    """Show what temperature and truncation do to the next-token distribution after a
    prompt (entropy, effective vocabulary, mass and tokens kept), and draw samples.

    \b
    Examples:
      infolens sample --prompt "The capital of France is"
      infolens sample -p "def main():" --temperature 0.7 --top-p 0.9
      infolens sample -p "Once upon a time" -t 0.8 --min-p 0.05 -n 5 --max-new-tokens 40
      infolens sample -p "x = " --order llama.cpp --top-k 40 --top-p 0.95 -t 0.8 --json
    """
    from infolens.generation import generate
    from infolens.next_token import describe_next_token

    spec = DEFAULT_MODEL if model_spec is None else model_spec
    hf = {k: v for k, v in {"dtype": dtype, "device": device, "allow_download": allow_download,
                            "trust_remote_code": trust_remote_code}.items() if v is not None}
    check_hf_options(hf, [spec], shown=f", got --model {spec}")
    if n_samples < 0:
        raise InputError(f"-n: expected >= 0, got {n_samples}")
    temps = _temperatures(temperatures)
    to_stderr = check_outputs({"--report": report_path})
    model = load_model_option("--model", spec, hf)
    try:
        d = describe_next_token(model, prompt, temperatures=temps, top=top, order=order, **chain)
        samples = (generate(model, prompt, n=n_samples, max_new_tokens=max_new_tokens, seed=seed,
                            stop=list(stop) or None, order=order, **chain)
                   if n_samples else [])
    except ValueError as exc:
        raise InputError(str(exc).splitlines()[0]) from None
    d["samples"] = [s.to_dict() for s in samples]
    if report_path is not None:
        from infolens.report.sample_report import write_sample_report

        write_sample_report(report_path, d, model)
    if as_json:
        echo_json(d, err=to_stderr)
        return
    lines = _distribution_text(d)
    if samples:
        lines += _samples_text(d["samples"])
    emit("\n".join(lines), err=to_stderr)
# fmt: on
