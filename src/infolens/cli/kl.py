"""``infolens kl``: how well the sampled-token KL estimators k1, k2, k3 track the exact
KL between a policy and a reference, on completions sampled from the policy.

Only options and formatting: the numbers come from
:func:`infolens.kl_diagnostics.kl_estimator_report`.
"""

from __future__ import annotations

import textwrap
from typing import Any

import click

from infolens.cli import main
from infolens.cli._common import debug_option, echo_json, emit, fmt
from infolens.cli._options import (
    check_hf_options,
    check_outputs,
    load_model_option,
    read_prompts,
    sampling_options,
)
from infolens.errors import InputError
from infolens.models.hf import DEVICES, DTYPES


def _row(name: str, s: dict[str, Any]) -> str:
    neg = f"{s['negative_fraction']:.3f}"
    return (f"  {name:<6}{fmt(s['mean']):>10}{fmt(s['bias']):>10} ± {fmt(s['bias_se']):<8}"
            f"{fmt(s['std']):>9}{fmt(s['std_over_true'], 2):>10}{fmt(s['relative_error'], 2):>10}"
            f"{neg:>8}")  # fmt: skip


def report_text(d: dict[str, Any]) -> list[str]:
    """The human table of a report's :meth:`~infolens.kl_diagnostics.KLEstimatorReport.to_dict`."""
    u = d["unit"]
    chain = {k: v for k, v in d["sampling"].items() if k not in ("order", "min_tokens_to_keep")}
    chain_s = ", ".join(f"{k}={v}" for k, v in chain.items()) or "none (the policy's own softmax)"
    lines = [
        f"policy      {d['policy']}",
        f"ref         {d['ref']} (at temperature {d['ref_temperature']:g}, not truncated)",
        f"sampling    {chain_s}",
        f"samples     {d['n_sequences']:,} completions ({d['samples']:,} per prompt, "
        f"{d['n_prompts']:,} prompt{'s' if d['n_prompts'] != 1 else ''}), {d['n_tokens']:,} tokens, "
        f"seed {d['seed']}",
        "",
    ]
    ex = d["exact"]
    for level, what in (("per_token", "per token"), ("per_sequence", "per sequence")):
        e = ex[level]
        exact_name = "exact KL_t" if level == "per_token" else "sum_t KL_t (Rao-Blackwellised)"
        lines += [
            f"{what}: {exact_name} = {fmt(e['mean'])} ± {fmt(e['mean_se'])} {u}"
            + (f", std {fmt(e['std'])}" if level == "per_sequence" else ""),
            f"  {'':<6}{'mean':>10}{'bias':>10}   {'(se)':<8}{'std':>9}{'std/true':>10}"
            f"{'rel.err':>10}{'k<0':>8}",
        ]
        for k, v in d["estimators"].items():
            lines.append(_row(k, v[level]))
        lines.append("")
    lines += textwrap.wrap(
        f"how to read: {u}; exact = D(pi||pi_ref) over the full vocabulary at each position "
        "of the sampled completions. bias = mean(k - exact) ± its standard error "
        "(k1: 0 up to noise; k3 too without truncation); std/true = std(k) / mean exact (Schulman's figure); "
        "rel.err = RMS(k - exact) / mean exact; k<0 = fraction of negative values. Per "
        "sequence, k is summed over the completion and compared with sum_t KL_t.",
        92,
    )
    if d["ref_mass_outside"] > 0:
        lines += textwrap.wrap(
            f"truncation: the reference puts {d['ref_mass_outside']:.4g} of its probability "
            "(mean per token) on tokens the sampling chain removed; k3's expected bias is "
            "minus that, in nats per token (E[r] < 1); k1 stays unbiased.",
            92,
        )
    if d["max_logprob_gap"] > 1e-6:
        lines.append(f"note: teacher-forced and generation log-probs differ by up to "
                     f"{d['max_logprob_gap']:.2g} nats (float rounding of the KV cache)")  # fmt: skip
    return lines


# fmt: off
@main.command("kl")
@click.option("--policy", "policy_spec", required=True, metavar="SPEC",
              help="The policy: completions are sampled from it (e.g. ngram, hf:PATH).")
@click.option("--ref", "ref_spec", required=True, metavar="SPEC",
              help="The reference model (same tokenizer and vocabulary).")
@click.option("--prompts", "prompts_path", required=True, metavar="FILE",
              help="Prompts, one per non-empty line ('-': stdin).")
@click.option("--jsonl", "jsonl_field", default=None, metavar="FIELD",
              help="Read --prompts as JSON Lines, the prompt in FIELD.")
@click.option("--samples", "-n", type=int, default=64, show_default=True,
              help="Completions per prompt.")
@click.option("--max-new-tokens", type=int, default=32, show_default=True, help="Tokens per completion.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the samples.")
@sampling_options(temperature_help="Temperature T > 0 (the reference is taken at the same T).")
@click.option("--base", type=click.Choice(["e", "2"]), default="e", show_default=True,
              help="Units: e for nats, 2 for bits.")
@click.option("--dtype", type=click.Choice(DTYPES), default=None, help="hf: weights dtype.")
@click.option("--device", type=click.Choice(DEVICES), default=None, help="hf: device.")
@click.option("--allow-download", is_flag=True, default=None, help="hf: allow downloading.")
@click.option("--trust-remote-code", is_flag=True, default=None, help="hf: run model code.")
@click.option("--report", "report_path", default=None, metavar="FILE.html",
              help="Also write an HTML page with figures (per-position estimates, errors).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@debug_option
def kl(policy_spec: str, ref_spec: str, prompts_path: str, jsonl_field: str | None,
       samples: int, max_new_tokens: int, seed: int, chain: dict[str, Any], order: str,
       base: str, dtype: str | None,
       device: str | None, allow_download: bool | None, trust_remote_code: bool | None,
       report_path: str | None, as_json: bool) -> None:
    """Compare the RLHF KL estimators k1, k2, k3 with the exact KL D(policy || ref) on
    completions sampled from the policy, per token and per sequence (nats).

    \b
    Examples:
      infolens kl --policy ngram --ref ngram:order=2 --prompts prompts.txt
      infolens kl --policy hf:./policy --ref hf:./ref --prompts p.txt -n 32 -t 0.7 --top-p 0.9
      infolens kl --policy ngram --ref ngram:order=3 --prompts p.txt --json --report kl.html
    """
    from infolens.kl_diagnostics import kl_estimator_report

    hf = {k: v for k, v in {"dtype": dtype, "device": device, "allow_download": allow_download,
                            "trust_remote_code": trust_remote_code}.items() if v is not None}
    check_hf_options(hf, [policy_spec, ref_spec],
                     shown=f", got --policy {policy_spec} --ref {ref_spec}")
    if samples < 1:
        raise InputError(f"--samples: expected >= 1, got {samples}")
    if max_new_tokens < 1:
        raise InputError(f"--max-new-tokens: expected >= 1, got {max_new_tokens}")
    inputs = [prompts_path] if prompts_path != "-" else []
    to_stderr = check_outputs({"--report": report_path}, inputs)
    prompts = read_prompts(prompts_path, jsonl_field)
    policy = load_model_option("--policy", policy_spec, hf)
    ref = policy if ref_spec == policy_spec else load_model_option("--ref", ref_spec, hf)
    try:
        r = kl_estimator_report(policy, ref, prompts, samples, max_new_tokens=max_new_tokens,
                                seed=seed, base=2 if base == "2" else None, order=order, **chain)
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(str(exc).splitlines()[0]) from None
    d = r.to_dict()
    if report_path is not None:
        from infolens.report.kl_report import write_kl_report

        write_kl_report(report_path, r)
    if as_json:
        echo_json(d, err=to_stderr)
        return
    emit("\n".join(report_text(d)), err=to_stderr)
# fmt: on
