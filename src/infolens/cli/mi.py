"""``infolens mi``: mutual information between columns of a CSV, JSON Lines or Parquet
file. Only options and formatting: the numbers come from
:func:`infolens.mi_columns.mutual_information_columns`."""

from __future__ import annotations

from typing import Any

import click

from infolens.cli import main
from infolens.cli._common import debug_option, echo_json, emit, fmt
from infolens.estimate import ENTROPY_ESTIMATORS
from infolens.mi_columns import KINDS


def _summary(r: dict[str, Any]) -> str:
    cols = f"{r['x']} ; {r['y']}" + (f" | {r['z']}" if r["z"] else "")
    kinds = ", ".join(f"{c} {k}" for c, k in r["kinds"].items())
    k = f", k = {r['k']}" if r["k"] else ""
    lines = [f"file        {r['file']}", f"samples     {r['samples']:,}",
             f"kinds       {kinds}", f"method      {r['method']}{k}", "",
             f"{r['quantity']} ({cols})   {fmt(r['value'], 6)} {r['unit']}"]  # fmt: skip
    if r["interval"] is not None:
        lo, hi = r["interval"]
        lines.append(f"{round(r['confidence'] * 100)}% interval        [{fmt(lo, 6)}, {fmt(hi, 6)}] "
                     f"({r['interval_method']})")  # fmt: skip
    if r["p_value"] is not None:
        lines.append(
            f"independence p-value  {fmt(r['p_value'])} ({r['permutations']:,} permutations, seed {r['seed']})"
        )
    lines += ["", "how to read (docs/estimate.md): not clipped at 0 — a negative value is the",
              "estimator's bias showing; the p-value is the chance of so large an estimate",
              "when x and y are independent (y shuffled)."]  # fmt: skip
    return "\n".join(lines)


# fmt: off
@main.command("mi")
@click.argument("path", metavar="FILE")
@click.option("--x", "x", required=True, metavar="COL", help="The first column.")
@click.option("--y", "y", required=True, metavar="COL", help="The second column.")
@click.option("--z", "z", default=None, metavar="COL", help="Condition on this column: I(X;Y|Z).")
@click.option("--x-kind", type=click.Choice(KINDS), default="auto", show_default=True)
@click.option("--y-kind", type=click.Choice(KINDS), default="auto", show_default=True)
@click.option("--z-kind", type=click.Choice(KINDS), default="auto", show_default=True)
@click.option("--estimator", type=click.Choice(ENTROPY_ESTIMATORS), default="plugin",
              show_default=True, help="Entropy estimator for discrete columns.")
@click.option("--k", "k", type=int, default=3, show_default=True,
              help="Neighbours for continuous columns (KSG, Ross, Frenzel-Pompe).")
@click.option("--base", type=float, default=None, help="Logarithm base (2: bits; default nats).")
@click.option("--permutations", type=int, default=200, show_default=True,
              help="Permutations for the independence p-value (0: none).")
@click.option("--intervals", type=int, default=200, show_default=True,
              help="Resamples for the interval (0: none).")
@click.option("--confidence", type=float, default=0.95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@debug_option
def mi(path: str, x: str, y: str, z: str | None, x_kind: str, y_kind: str, z_kind: str,
       estimator: str, k: int, base: float | None, permutations: int, intervals: int,
       confidence: float, seed: int, as_json: bool) -> None:
    """Mutual information between columns COL of FILE (.csv, .tsv, .jsonl, .parquet).

    Discrete or continuous is read from each column (floats that are not all whole numbers
    are continuous) or set with --x-kind etc.: two discrete columns use the --estimator
    of entropy, two continuous ones KSG, one of each Ross's estimator; with --z, the
    conditional MI. Nats unless --base says otherwise.

    \b
    Examples:
      infolens mi data.csv --x label --y cluster --estimator chao_shen
      infolens mi emb.parquet --x a --y b --json
    """
    from infolens.mi_columns import mutual_information_columns

    r = mutual_information_columns(path, x, y, z, x_kind=x_kind, y_kind=y_kind, z_kind=z_kind,
                                   estimator=estimator, k=k, base=base,
                                   permutations=permutations, intervals=intervals,
                                   confidence=confidence, seed=seed)
    if as_json:
        echo_json(r)
    else:
        emit(_summary(r))
# fmt: on
