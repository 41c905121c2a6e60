"""Shared plumbing for CLI commands: error handling, JSON output, summary tables."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from infolens._atomic import Terminated, terminate_cleanly
from infolens.errors import InfolensError

if TYPE_CHECKING:
    from infolens.documents import Document


class InfolensGroup(click.Group):
    """A click group that turns infolens errors into one clear line and exit status 2.

    Reported as one line: :class:`~infolens.errors.InfolensError` (bad input, which the
    library raises as :class:`~infolens.errors.InputError` where it checks what users
    give) and :class:`OSError` (a file that cannot be read or written). Anything else is a
    bug and keeps its traceback. ``--debug`` (:func:`debug_option`) re-raises those two
    as well.

    Signals and standard output, the conventional way:

    * Ctrl-C (``SIGINT``) exits 130 and ``SIGTERM`` exits 143, each after every output's
      temporary file is removed (:func:`infolens._atomic.terminate_cleanly`);
    * a reader that goes away (``infolens score --json | head -c 10``: a broken pipe)
      ends the command quietly with status 141, like a process killed by ``SIGPIPE``;
    * a closed standard output (``>&-``) or one that fails (``> /dev/full``) is an error,
      never a silent success.
    """

    def invoke(self, ctx: click.Context) -> Any:
        if sys.stdout is None:
            click.echo("infolens: error: standard output is closed; nothing can be written", err=True)
            ctx.exit(2)
        try:
            with terminate_cleanly():
                result = super().invoke(ctx)
                _flush_stdout()  # a write error surfaces here, not at exit
                return result
        except KeyboardInterrupt:
            click.echo("\ninfolens: interrupted", err=True)
            ctx.exit(130)
        except Terminated:
            click.echo("infolens: terminated", err=True)
            ctx.exit(143)
        except BrokenPipeError:
            _quiet_stdout()
            ctx.exit(141)
        except (InfolensError, OSError) as exc:
            # read after the command ran: --debug is parsed with the subcommand's options
            if ctx.meta.get("infolens.debug"):
                raise
            click.echo(f"infolens: error: {exc}", err=True)
            ctx.exit(2)


def _flush_stdout() -> None:
    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise InfolensError(f"cannot write standard output: {exc.strerror or exc}") from None


def _quiet_stdout() -> None:
    """Point standard output at /dev/null so that the interpreter's last flush of a broken
    pipe raises nothing (where stdout is a real descriptor)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


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


def emit(text: str, *, err: bool = False) -> None:
    """Print a line of results on stdout (``err``: on stderr, when an output is ``-``); a
    failed write is one error line naming standard output."""
    try:
        click.echo(text, err=err)
    except BrokenPipeError:
        raise
    except OSError as exc:
        where = "standard error" if err else "standard output"
        raise InfolensError(f"cannot write {where}: {exc.strerror or exc}") from None


def echo_json(obj: Any, *, err: bool = False) -> None:
    """Print ``obj`` as one strict JSON document on stdout (``err``: on stderr, when an
    output is ``-``)."""
    emit(json.dumps(_clean(obj), indent=2, allow_nan=False), err=err)


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


def fmt(v: Any, digits: int = 4) -> str:
    """A number for the tables: ``-`` for ``None``, thousands separators for integers,
    ``digits`` decimals for floats (``g`` format from a million up), lists in brackets.

    Examples
    --------
    >>> [fmt(None), fmt(12345), fmt(3.14159), fmt(2.5e7, 3), fmt([1.0, 2.0], 1)]
    ['-', '12,345', '3.1416', '2.5e+07', '[1.0, 2.0]']
    """
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e6 else f"{v:.{digits}g}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x, digits) for x in v) + "]"
    return str(v)


def windows_lines(
    d: Mapping[str, Any], *, unbounded: str = "the model has no context limit"
) -> list[str]:
    r"""The summary's ``windows`` line(s): what ``max_length``, ``stride`` and ``bos`` of a
    result mean (docs/scoring.md, "Effective context").

    ``max_length`` ``None`` means one window per document, ``unbounded`` saying why.

    Examples
    --------
    >>> print("\n".join(windows_lines({"max_length": None, "stride": None, "bos": "none"})))
    windows     none: one pass over each document (the model has no context limit), bos none
    >>> print("\n".join(windows_lines({"max_length": 1024, "stride": 512, "bos": "first"})))
    windows     1,024 input positions, stride 512, bos first
                each token predicted once; past the first window with 513 to 1,024 positions of context
    """
    L, S, bos = d["max_length"], d["stride"], d["bos"]
    if L is None:
        return [f"windows     none: one pass over each document ({unbounded}), bos {bos}"]
    low = L - S + 1
    context = f"{L:,}" if low == L else f"{low:,} to {L:,}"
    return [
        f"windows     {L:,} input positions, stride {S:,}, bos {bos}",
        f"            each token predicted once; past the first window with {context} "
        "positions of context",
    ]


#: A column of :func:`document_table`: header, width, and the cell of one document.
Column = tuple[str, int, Callable[[Mapping[str, Any]], str]]


def document_table(docs: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> list[str]:
    """The per-document table's lines (a blank line first), or none for one document.

    Examples
    --------
    >>> docs = [{"name": "a.txt", "tokens": 3}, {"name": "b.txt", "tokens": 1200}]
    >>> print("\\n".join(document_table(docs, [("tokens", 8, lambda d: fmt(d["tokens"]))])))
    <BLANKLINE>
    document    tokens
    a.txt            3
    b.txt        1,200
    """
    if len(docs) <= 1:
        return []
    name_w, names = document_names(docs)
    lines = ["", "document".ljust(name_w) + "".join(h.rjust(w) for h, w, _ in columns)]
    for name, d in zip(names, docs):
        row = name.ljust(name_w) + "".join(cell(d).rjust(w) for _, w, cell in columns)
        lines.append(row.rstrip())
    return lines


def note_empty_documents(docs: Iterable[Mapping[str, Any]], what: str) -> None:
    """``infolens: note: NAME: empty document, 0 tokens WHAT`` on stderr for each document
    with no token (``no token to predict`` when it has bytes but a single token)."""
    for d in docs:
        if d["tokens"] == 0:
            why = "empty document" if d.get("bytes") == 0 else "no token to predict"
            click.echo(f"infolens: note: {d['name']}: {why}, 0 tokens {what}", err=True)


class TextKeeper:
    """Wraps a document stream and keeps the bytes of the documents still being processed.

    The library reads documents lazily, a window batch ahead of the rows it reports, so
    several documents can be in flight; their rows arrive in document order. A text is
    dropped as soon as rows of a later document arrive (or the run ends), so memory is
    bounded by one window batch of documents. Texts are kept by input index, so a file
    given twice is two documents.
    """

    def __init__(self, documents: Iterable[Document]) -> None:
        self.documents = documents
        self.texts: dict[int, bytes] = {}

    def __iter__(self) -> Iterator[Document]:
        for index, doc in enumerate(self.documents):
            if doc.lazy:  # a large file: its raw bytes (per-token output needs them all)
                self.texts[index] = b"".join(p for p in doc.pieces() if isinstance(p, bytes))
            else:
                t = doc.text
                self.texts[index] = t if isinstance(t, bytes) else t.encode("utf-8", "replace")
            yield doc

    def text(self, index: int) -> bytes | None:
        """The bytes of document ``index``; earlier documents are forgotten."""
        for k in [k for k in self.texts if k < index]:
            del self.texts[k]
        return self.texts.get(index)

    def offer(self, texts: dict[str, str | bytes], index: int, name: str) -> bytes | None:
        """Leave in ``texts`` (a report's text lookup by name) only document ``index``'s
        text, under ``name``; return it. Call on the first rows of each document."""
        data = self.text(index)
        texts.clear()
        if data is not None:
            texts[name] = data
        return data
