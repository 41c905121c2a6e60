"""``infolens semantic-entropy``: sample answers to a prompt, cluster them by meaning and
report semantic entropy next to the naive and white-box uncertainties.

Only options and formatting: the numbers come from :func:`infolens.generation.generate`
and :mod:`infolens.uncertainty`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from infolens.cli import main
from infolens.cli._common import debug_option, echo_json, emit, fmt
from infolens.cli._options import (
    check_hf_options,
    load_model_option,
    read_prompts,
    sampling_options,
)
from infolens.errors import InputError
from infolens.models import DEFAULT_MODEL
from infolens.models.hf import DEVICES, DTYPES


def _shown(s: str, width: int = 40) -> str:
    r = repr(s)[1:-1]
    return r if len(r) <= width else r[: width - 1] + "…"


def _nli(path: str) -> Any:
    from infolens.uncertainty import nli_equivalence

    if not Path(path).is_dir():
        raise InputError(f"--nli: expected a local directory with an NLI model, got {path!r}")
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ModuleNotFoundError as exc:
        raise InputError(f"--nli: needs transformers and torch ({exc.name} is missing)") from None
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # diagnostics, not data: keep the load quiet
    hf_logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # whatever the folder holds that cannot load: its fault
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(
            f"--nli {path}: expected a sequence-classification model and tokenizer, got an error: {first}"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    model = model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    return nli_equivalence(model, tok)


def _text(r: dict[str, Any], unit: str) -> list[str]:
    lines = [
        f"prompt {r['prompt_index']}  {_shown(r['prompt'], 60)}",
        "",
        f"  clusters ({len(r['clusters'])}; p = normalised cluster probability):",
        f"  {'#':>4}  {'count':>5}  {'p':>8}  answers",
    ]
    for k, c in enumerate(r["clusters"]):
        distinct = list(dict.fromkeys(c["answers"]))
        more = f"  (+{len(distinct) - 3} more)" if len(distinct) > 3 else ""
        shown = " | ".join(_shown(a, 24) for a in distinct[:3])
        lines.append(f"  {k:>4}  {c['count']:>5}  {c['probability']:>8.4f}  {shown}{more}")
    w = r["white_box"]
    pmi = r["prompt_information"]
    mean_pmi = sum(pmi) / len(pmi)
    lines += [
        "",
        f"  {'estimate':<44}{unit:>10}",
        f"  {'semantic entropy (Rao; the paper reports it)':<44}{fmt(r['semantic_entropy']):>10}",
        f"  {'semantic entropy (Monte Carlo over samples)':<44}{fmt(r['semantic_entropy_mc']):>10}",
        f"  {'discrete semantic entropy (frequencies)':<44}{fmt(r['discrete_semantic_entropy']):>10}",
        f"  {'predictive entropy (naive, -mean log p)':<44}{fmt(r['predictive_entropy']):>10}",
        f"  {'mean token entropy':<44}{fmt(w['mean_token_entropy']):>10}",
        f"  {'prompt information (mean PMI per token)':<44}{fmt(mean_pmi):>10}",
        f"  {'maximum sequence probability (1 - max p)':<44}{fmt(w['maximum_sequence_probability']):>10}",
    ]
    return lines


# fmt: off
@main.command("semantic-entropy")
@click.option("--model", "-m", "model_spec", default=None, metavar="SPEC",
              help=f"Model (default {DEFAULT_MODEL}: built in, offline).")
@click.option("--prompt", "-p", default=None, help="The prompt (tokenised without special tokens).")
@click.option("--prompts", "prompts_file", default=None, metavar="FILE.jsonl",
              help='Prompts, one {"prompt": ...} object per line.')
@click.option("--samples", "-n", "n_samples", type=int, default=10, show_default=True,
              help="Answers sampled per prompt.")
@click.option("--max-new-tokens", type=int, default=32, show_default=True, help="Tokens per answer.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the samples.")
@sampling_options()
@click.option("--stop", multiple=True, help="End an answer at this string (repeatable).")
@click.option("--logprob", "logprob_kind", type=click.Choice(["mean", "sum"]), default="mean",
              show_default=True,
              help="Each answer's log-likelihood: mean per token (the paper's code) or sum.")
@click.option("--nli", "nli_path", default=None, metavar="DIR",
              help="Cluster with this local NLI model (two-way entailment) instead of "
              "normalised exact match.")
@click.option("--bits", is_flag=True, help="Entropies in bits (default nats).")
@click.option("--dtype", type=click.Choice(DTYPES), default=None, help="hf: weights dtype.")
@click.option("--device", type=click.Choice(DEVICES), default=None, help="hf: device.")
@click.option("--allow-download", is_flag=True, default=None, help="hf: allow downloading.")
@click.option("--trust-remote-code", is_flag=True, default=None, help="hf: run model code.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@debug_option
def semantic_entropy_command(
    model_spec: str | None, prompt: str | None, prompts_file: str | None, n_samples: int,
    max_new_tokens: int, seed: int, chain: dict[str, Any], order: str, stop: tuple[str, ...],
    logprob_kind: str,
    nli_path: str | None, bits: bool, dtype: str | None, device: str | None,
    allow_download: bool | None, trust_remote_code: bool | None, as_json: bool,
) -> None:
    """Sample answers, cluster them by meaning, and print semantic entropy (Rao and Monte
    Carlo estimates, the discrete one) next to naive predictive entropy and white-box
    uncertainties.

    \b
    Examples:
      infolens semantic-entropy -p "the cat sat on the" --samples 10 --max-new-tokens 8
      infolens semantic-entropy -m hf:./qwen -p "Q: capital of France? A:" -t 1 --stop "\\n"
      infolens semantic-entropy -m hf:./qwen --prompts questions.jsonl --nli ./deberta-mnli --json
    """
    from infolens.generation import generate
    from infolens.uncertainty import prompt_information, semantic_entropy, sequence_uncertainties

    spec = DEFAULT_MODEL if model_spec is None else model_spec
    hf = {k: v for k, v in {"dtype": dtype, "device": device, "allow_download": allow_download,
                            "trust_remote_code": trust_remote_code}.items() if v is not None}
    check_hf_options(hf, [spec], shown=f", got --model {spec}")
    if (prompt is None) == (prompts_file is None):
        raise InputError("--prompt/--prompts: expected exactly one of them, got "
                         + ("both" if prompt is not None else "neither"))
    if n_samples < 1:
        raise InputError(f"--samples: expected an integer >= 1, got {n_samples}")
    if max_new_tokens < 1:
        raise InputError(f"--max-new-tokens: expected an integer >= 1, got {max_new_tokens}")
    prompts = [prompt] if prompt is not None else read_prompts(str(prompts_file), "prompt")
    equivalent: Any = _nli(nli_path) if nli_path is not None else "exact"
    model = load_model_option("--model", spec, hf)
    base = 2.0 if bits else None
    try:
        samples = generate(model, prompts, n=n_samples, max_new_tokens=max_new_tokens, seed=seed,
                           stop=list(stop) or None, order=order, **chain)
    except ValueError as exc:
        raise InputError(str(exc).splitlines()[0]) from None
    results = []
    for i, p in enumerate(prompts):
        group = [s for s in samples if s.prompt_index == i]
        lls = [float(s.logprob_model.mean() if logprob_kind == "mean" else s.logprob_model.sum())
               for s in group]
        se = semantic_entropy([s.text for s in group], lls, equivalent, base=base)
        wb = sequence_uncertainties(group, base=base)
        r: dict[str, Any] = {"prompt_index": i, "prompt": p, **se.to_dict(),
                             "white_box": wb.to_dict(),
                             "prompt_information": prompt_information(model, group, base=base)}
        r["samples"] = [{"text": s.text, "logprob": ll, "finish_reason": s.finish_reason,
                         "cluster": next(k for k, c in enumerate(se.clusters) if j in c)}
                        for j, (s, ll) in enumerate(zip(group, lls))]
        results.append(r)
    unit = "bits" if bits else "nats"
    d = {"model": model.name, "unit": unit,
         "equivalence": "nli:" + str(nli_path) if nli_path else "exact",
         "settings": {"samples": n_samples, "max_new_tokens": max_new_tokens, "seed": seed,
                      "logprob": logprob_kind, "stop": list(stop), **chain},
         "results": results}
    if as_json:
        echo_json(d)
        return
    head = ", ".join(f"{k}={v}" for k, v in chain.items()) or "model's distribution"
    lines = [f"model       {model.name}",
             f"sampling    {n_samples} answers per prompt, {max_new_tokens} tokens at most, "
             f"{head}, seed {seed}",
             f"clustering  {d['equivalence']} (two-way); log p per answer: {logprob_kind} over tokens",
             ""]
    for r in results:
        lines += [*_text(r, unit), ""]
    lines.append("how to read: semantic entropy spreads probability over meanings, predictive "
                 "entropy over strings; 0 = every answer means the same.")
    emit("\n".join(lines))
# fmt: on
