"""Options and helpers shared by the commands that run models (``score``, ``compare``).

:func:`run_options` adds, in this order, the window options (``--max-length``,
``--stride``, ``--bos``), the input options (``--jsonl``, ``--glob``) and the ``hf:``
options (``--dtype``, ``--device``, ``--batch-size``, ``--allow-download``,
``--trust-remote-code``); the ``hf:`` options reach the command as one dict ``hf`` of the
options given. :func:`check_hf_options` and :func:`load_model_option` check and use them;
:class:`Progress` is the progress line on stderr.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from infolens._atomic import check_writable
from infolens.errors import InputError
from infolens.models import load_model
from infolens.models.base import LanguageModel, ModelSpecError
from infolens.models.hf import DEVICES, DTYPES
from infolens.windows import BOS_POLICIES

__all__ = [
    "HF_OPTIONS",
    "Progress",
    "check_hf_options",
    "check_outputs",
    "load_model_option",
    "run_options",
]

#: The ``hf:``-only options, as keyword arguments of :func:`infolens.models.load_model`.
HF_OPTIONS = ("dtype", "device", "batch_size", "allow_download", "trust_remote_code")


def run_options(*, two_models: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the window, input and ``hf:`` options to a click command.

    Parameters
    ----------
    two_models : bool
        Word the help for a command that runs two models (defaults "of both models").

    Returns
    -------
    callable
        A decorator. The command receives ``max_length``, ``stride``, ``bos``,
        ``jsonl_field``, ``glob`` and ``hf``: a dict of the ``hf:`` options given (those
        left out are absent), ready for :func:`load_model_option`.
    """
    the_model = "the smaller model context" if two_models else "the model's context"
    has_bos = "both models have" if two_models else "the model has"
    of_models = " of both models" if two_models else ""
    model_s = "models" if two_models else "the model"
    options = [
        click.option("--max-length", type=int, default=None, metavar="L",
                     help=f"Input positions per window (default: {the_model}, at most 2048)."),
        click.option("--stride", type=int, default=None, metavar="S",
                     help="Step between window starts, 1 <= S <= L (default L // 2)."),
        click.option("--bos", type=click.Choice(BOS_POLICIES), default=None,
                     help=f"BOS policy (default: first if {has_bos} a BOS token, else none)."),
        click.option("--jsonl", "jsonl_field", default=None, metavar="FIELD",
                     help="Read inputs as JSON Lines, one document per line, text in FIELD."),
        click.option("--glob", "glob", default=None, metavar="PATTERN",
                     help="Files to read inside directory arguments, e.g. '*.txt' or '**/*.md'."),
        click.option("--dtype", type=click.Choice(DTYPES),
                     default=None,
                     help=f"hf: weights dtype{of_models} (default auto: float32 on CPU)."),
        click.option("--device", type=click.Choice(DEVICES), default=None,
                     help="hf: device (default auto)."),
        click.option("--batch-size", type=int, default=None,
                     help="hf: windows per forward pass (default 8)."),
        click.option("--allow-download", is_flag=True, default=None,
                     help=f"hf: allow downloading {model_s} from the Hugging Face Hub "
                     "(offline otherwise)."),
        click.option("--trust-remote-code", is_flag=True, default=None,
                     help="hf: run model code shipped with the checkpoint."),
    ]  # fmt: skip

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_hf(*args: Any, **kwargs: Any) -> Any:
            given = {k: kwargs.pop(k) for k in HF_OPTIONS}
            kwargs["hf"] = {k: v for k, v in given.items() if v is not None}
            return command(*args, **kwargs)

        f: Callable[..., Any] = with_hf
        for option in reversed(options):  # click lists options in decorator order
            f = option(f)
        return f

    return decorate


def check_hf_options(hf: Mapping[str, Any], specs: Sequence[str], *, shown: str = "") -> None:
    """Refuse ``hf:`` options when none of the model ``specs`` is an ``hf:`` model.

    Parameters
    ----------
    hf : mapping
        The ``hf:`` options given (:func:`run_options`).
    specs : sequence of str
        The model specs of the command.
    shown : str
        Appended to the error, e.g. ``", got --model ngram"``.

    Raises
    ------
    InputError
        ``--dtype, --device: only apply to hf: models``.
    """
    if hf and not any(s.startswith("hf:") for s in specs):
        names = ", ".join("--" + k.replace("_", "-") for k in hf)
        raise InputError(f"{names}: only apply to hf: models{shown}")


def _same_path(a: str, b: str) -> bool:
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links, case-insensitive file systems
    except OSError:
        return False


def check_outputs(
    outputs: Mapping[str, str | None],
    inputs: Iterable[str] = (),
    *,
    directories: Collection[str] = (),
) -> bool:
    """Refuse output paths that cannot or must not be written, before any model runs.

    Parameters
    ----------
    outputs : mapping of str to str or None
        ``{option: path}``, e.g. ``{"--tokens": "t.jsonl", "--report": None}``; ``None``
        (the option not given) is skipped.
    inputs : iterable of str
        The input paths (``-`` for stdin is ignored): an output naming one of them is
        refused, so that no input is overwritten.
    directories : collection of str
        The options whose path is a directory (``--plots``); the others name files.

    Returns
    -------
    bool
        Whether an output is ``-`` (standard output): the command then prints its summary
        on stderr.

    Raises
    ------
    InputError
        One line naming the option: an empty path, ``-`` for a directory or for two
        outputs, a path that is a directory (or a file for a directory option), a socket,
        block device or read-only file (:func:`infolens._atomic.output_kind`), a folder
        that does not exist or cannot be written in (probed), a path that is also an
        input, or two options naming one path.

    Examples
    --------
    >>> check_outputs({"--report": "-"})
    True
    >>> check_outputs({"--tokens": "README.md"}, ["README.md"])
    Traceback (most recent call last):
    ...
    infolens.errors.InputError: --tokens: README.md is also an input; refusing to overwrite it
    """
    ins = [p for p in inputs if p != "-"]
    given: list[tuple[str, str]] = []
    to_stdout: list[str] = []
    for option, path in outputs.items():
        if path is None:
            continue
        if path == "":
            raise InputError(f"{option}: expected a path, got ''")
        if path == "-":
            if option in directories:
                raise InputError(f"{option}: expected a directory, got '-'")
            to_stdout.append(option)
            if len(to_stdout) > 1:
                raise InputError(f"{' and '.join(to_stdout)}: only one output can be '-' (stdout)")
            continue
        p = Path(path)
        if option in directories:
            if p.exists() and not p.is_dir():
                raise InputError(f"{option}: {path} exists and is not a directory")
            _probe_directory(option, p if p.is_dir() else p.parent)
        else:
            check_writable(path, option)
        for src in ins:
            if _same_path(path, src):
                raise InputError(f"{option}: {path} is also an input; refusing to overwrite it")
        for other, other_path in given:
            if _same_path(path, other_path):
                raise InputError(f"{other} and {option}: both name {path}")
        given.append((option, path))
    return bool(to_stdout)


def _probe_directory(option: str, d: Path) -> None:
    """``d`` exists and a file can be created in it."""
    if not d.is_dir():
        raise InputError(f"{option}: {d}: no such directory")
    try:
        with tempfile.TemporaryFile(dir=d):
            pass
    except OSError as exc:
        raise InputError(f"{option}: cannot write in {d}: {exc.strerror or exc}") from None


def load_model_option(option: str, spec: str, hf: Mapping[str, Any]) -> LanguageModel:
    """Load the model ``spec`` given to ``option`` (``--model``, ``--base``).

    The ``hf`` options go to ``hf:`` models only. A bad spec or a model type whose
    dependencies are missing is an :class:`InputError` naming ``option``.
    """
    try:
        return load_model(spec, **(hf if spec.startswith("hf:") else {}))
    except ModelSpecError as exc:
        raise InputError(str(exc).replace("--model", option, 1)) from None
    except ModuleNotFoundError as exc:
        raise InputError(
            f"{option} {spec}: this model type is not available ({exc.name} is missing)"
        ) from None


class Progress:
    """``WHAT: N tokens, R tokens/s`` on stderr, redrawn at most 5 times a second.

    Parameters
    ----------
    enabled : bool
        Draw at all (the commands pass: not ``--quiet`` and stderr is a terminal).
    what : str
        The line's first word, e.g. ``"scoring"``.
    """

    def __init__(self, enabled: bool, what: str) -> None:
        self.enabled, self.what = enabled, what
        self.tokens = 0
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.drawn = False

    def __call__(self, n: int) -> None:
        """Count ``n`` more tokens (the ``progress`` callback of the library functions)."""
        self.tokens += n
        now = time.perf_counter()
        if self.enabled and now - self.last >= 0.2:
            self.last = now
            rate = self.tokens / max(now - self.t0, 1e-9)
            click.echo(
                f"\r{self.what}: {self.tokens:,} tokens, {rate:,.0f} tokens/s   ",
                err=True,
                nl=False,
            )
            self.drawn = True

    def close(self) -> None:
        """Erase the line if it was drawn."""
        if self.drawn:
            click.echo("\r" + " " * 60 + "\r", err=True, nl=False)
