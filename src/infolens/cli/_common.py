"""Shared plumbing for CLI commands: error handling, JSON output, summary tables."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import click

from infolens.errors import InfolensError


class InfolensGroup(click.Group):
    """A click group that turns infolens errors into one clear line and exit status 2.

    Reported as one line: :class:`~infolens.errors.InfolensError` (bad input, which the
    library raises as :class:`~infolens.errors.InputError` where it checks what users
    give) and :class:`OSError` (a file that cannot be read or written). Anything else is a
    bug and keeps its traceback. ``--debug`` (:func:`debug_option`) re-raises those two
    as well.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (InfolensError, OSError) as exc:
            # read after the command ran: --debug is parsed with the subcommand's options
            if ctx.meta.get("infolens.debug"):
                raise
            click.echo(f"infolens: error: {exc}", err=True)
            ctx.exit(2)


def debug_option(f: Any) -> Any:
    """``--debug``: show tracebacks instead of one-line errors."""

    def _cb(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            ctx.find_root().meta["infolens.debug"] = True
        return value

    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=_cb,
        is_eager=True,
        help="Show full tracebacks on errors.",
    )(f)


def _clean(obj: Any) -> Any:
    """Make ``obj`` strict JSON: non-finite floats become strings ``"inf"``/``"nan"``."""
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _clean(obj.item())
    return obj


def echo_json(obj: Any) -> None:
    """Print ``obj`` as one strict JSON document on stdout."""
    click.echo(json.dumps(_clean(obj), indent=2, allow_nan=False))


def document_names(docs: Sequence[Mapping[str, Any]], widest: int = 48) -> tuple[int, list[str]]:
    """The name column of a per-document table: its width and the names to print.

    The width fits the longest name (at least 8, at most ``widest`` characters) plus two
    spaces; a longer name keeps its end, after ``…``.
    """
    width = min(widest, max(8, *(len(x["name"]) for x in docs))) + 2
    names = [
        x["name"] if len(x["name"]) <= width - 2 else "…" + x["name"][-(width - 3) :] for x in docs
    ]
    return width, names
