"""``infolens measure``: the core measures on distributions typed on the command line."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import click

from infolens import measures
from infolens.cli import main
from infolens.cli._common import debug_option, echo_json, emit
from infolens.errors import InputError

_ONE = {"entropy": measures.entropy}
_TWO = {
    "cross-entropy": measures.cross_entropy,
    "kl": measures.kl_divergence,
    "js": measures.js_divergence,
    "tv": measures.total_variation,
}


def _parse(text: str, opt: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(f"{opt}: expected comma-separated numbers, got {text!r}") from None


def _run(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a measure; its ``ValueError`` (bad numbers) is bad input, named as options."""
    try:
        return f(*args, **kwargs)
    except ValueError as exc:
        msg = re.sub(r"^(p|q|base)(?:_logits)?:", r"--\1:", str(exc))
        raise InputError(msg.replace("normalize=True", "--normalize")) from None


@main.command()
@click.argument("measure", type=click.Choice(sorted([*_ONE, *_TWO])))
@click.option("--p", "p_text", required=True, help="Distribution p, e.g. 0.5,0.5.")
@click.option("--q", "q_text", help="Distribution q (for two-distribution measures).")
@click.option("--logits", is_flag=True, help="Read --p/--q as logits instead of probabilities.")
@click.option("--base", type=float, default=None, help="Log base: omit for nats, 2 for bits.")
@click.option("--normalize", is_flag=True, help="Renormalise counts or weights.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@debug_option
def measure(
    measure: str,
    p_text: str,
    q_text: str | None,
    logits: bool,
    base: float | None,
    normalize: bool,
    as_json: bool,
) -> None:
    """Compute MEASURE (entropy, cross-entropy, kl, js, tv) of distributions given inline.

    \b
    Example:
      infolens measure entropy --p 0.5,0.5 --base 2      # 1 bit
      infolens measure kl --p 0.5,0.5 --q 0.9,0.1        # D(p||q) in nats
    """
    p = _parse(p_text, "--p")
    if logits and normalize:
        raise InputError("--normalize: not with --logits (logits are normalised anyway)")
    if measure == "tv" and base is not None:
        raise InputError("--base: tv is a probability, not in a log base; drop --base")
    if measure in _TWO:
        if q_text is None:
            raise InputError(f"--q: expected a second distribution for {measure}, got none")
        q = _parse(q_text, "--q")
        kw: dict[str, Any] = {"normalize": normalize}
        if measure != "tv":
            kw["base"] = base
        if logits:
            value = _run(_TWO[measure], p_logits=p, q_logits=q, **kw)
        else:
            value = _run(_TWO[measure], p, q, **kw)
    else:
        if q_text is not None:
            raise InputError(f"--q: {measure} takes one distribution (--p), got --q too")
        if logits:
            value = _run(_ONE[measure], logits=p, base=base)
        else:
            value = _run(_ONE[measure], p, base=base, normalize=normalize)
    unit = (
        ""
        if measure == "tv"
        else ("nats" if base is None else ("bits" if base == 2 else f"log base {base:g}"))
    )
    if as_json:
        echo_json({"measure": measure, "value": float(value), "unit": unit or None})
    else:
        emit(f"{measure} = {float(value):.10g} {unit}".rstrip())
