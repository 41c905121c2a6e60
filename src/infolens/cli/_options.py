"""Options and helpers shared by the commands that run models (``score``, ``compare``).

:func:`run_options` adds, in this order, the window options (``--max-length``,
``--stride``, ``--bos``), the input options (``--jsonl``, ``--glob``,
``--max-document-bytes``) and the ``hf:`` options (``--dtype``, ``--device``,
``--batch-size``, ``--allow-download``, ``--trust-remote-code``, ``--special-tokens``); the
``hf:`` options reach the command as one dict ``hf`` of the options given. :func:`check_hf_options` and :func:`load_model_option` check and use them;
:class:`Progress` is the progress bar on stderr.
"""

from __future__ import annotations

import functools
import json
import os
import stat
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from infolens._atomic import check_writable, output_kind, probe_directory
from infolens.documents import DEFAULT_MAX_DOCUMENT_BYTES
from infolens.errors import InputError
from infolens.models import load_model
from infolens.models.base import LanguageModel, ModelSpecError
from infolens.models.hf import DEVICES, DTYPES, SPECIAL_TOKENS
from infolens.windows import BOS_POLICIES

if TYPE_CHECKING:
    from infolens.documents import Document

__all__ = [
    "HF_OPTIONS",
    "Progress",
    "check_hf_options",
    "check_outputs",
    "input_bytes",
    "load_model_option",
    "run_options",
]

#: The ``hf:``-only options, as keyword arguments of :func:`infolens.models.load_model`.
HF_OPTIONS = (
    "dtype", "device", "batch_size", "allow_download", "trust_remote_code", "special_tokens",
)  # fmt: skip


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
        ``jsonl_field``, ``glob``, ``max_document_bytes`` (for
        :func:`infolens.documents.read_documents`'s ``max_bytes``; check it with
        :func:`infolens.documents.check_max_bytes`) and ``hf``: a dict of the ``hf:`` options given (those
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
                     help="Read inputs as records, text in FIELD: JSON Lines (one document "
                     "per line) or, for *.parquet files, one document per row of column FIELD."),
        click.option("--glob", "glob", default=None, metavar="PATTERN",
                     help="Files to read inside directory arguments, e.g. '*.txt' or '**/*.md'."),
        click.option("--max-document-bytes", type=int, default=DEFAULT_MAX_DOCUMENT_BYTES,
                     show_default=True, metavar="N",
                     help="Refuse a document (or JSON Lines file) larger than N bytes, in one "
                     "line, before it is scored (an endless input such as /dev/zero stops "
                     "there)."),
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
        click.option("--special-tokens", type=click.Choice(SPECIAL_TOKENS), default=None,
                     help="hf: a literal special-token string in a document, such as "
                     "'<|endoftext|>': 'parse' it as the special token (default, as "
                     "lm-evaluation-harness does) or tokenise it as ordinary 'text'."),
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


#: The orders of the sampling steps (:func:`infolens.sampling.apply`).
ORDERS = ("transformers", "llama.cpp")
#: The sampling-step options, in the order they are listed: (option, parameter, type, help).
_STEPS = (
    ("--top-k", "top_k", int, "Keep the k most probable tokens (ties kept)."),
    ("--top-p", "top_p", float, "Nucleus: smallest set with mass >= p."),
    ("--min-p", "min_p", float, "Keep p_i >= min_p * max p."),
    ("--typical-p", "typical_p", float, "Locally typical sampling mass."),
    ("--epsilon", "epsilon", float, "Epsilon cutoff: keep p_i >= epsilon."),
    ("--eta", "eta", float, "Eta cutoff (entropy-dependent)."),
    ("--top-h", "top_h", float, "Top-H: entropy budget alpha in (0, 1]."),
    ("--top-n-sigma", "top_n_sigma", float,
     "Keep logits >= max - n * std (llama.cpp; needs --order llama.cpp)."),
)  # fmt: skip


def sampling_options(
    *, temperature_help: str = "Temperature T > 0."
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the temperature, truncation-step and ``--order`` options to a click command.

    The command receives ``chain`` (a dict of the steps given, ready for
    :func:`infolens.sampling.apply` or :func:`infolens.generate`) and ``order``.
    """
    options = [click.option("--temperature", "-t", "temperature", type=float, default=None,
                            help=temperature_help)]  # fmt: skip
    options += [click.option(flag, name, type=kind, default=None, help=text)
                for flag, name, kind, text in _STEPS]  # fmt: skip
    options.append(click.option(
        "--order", type=click.Choice(ORDERS), default="transformers", show_default=True,
        help="Order of the steps: transformers' (temperature first) or llama.cpp's default "
        "chain (temperature last)."))  # fmt: skip
    names = ["temperature", *(name for _, name, _, _ in _STEPS)]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_chain(*args: Any, **kwargs: Any) -> Any:
            given = {k: kwargs.pop(k) for k in names}
            kwargs["chain"] = {k: v for k, v in given.items() if v is not None}
            return command(*args, **kwargs)

        f: Callable[..., Any] = with_chain
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def read_prompts(path: str, jsonl_field: str | None = None) -> list[str]:
    """The prompts of ``path`` (``-``: stdin): one per non-empty line, or with
    ``jsonl_field`` one JSON object per line with the prompt in that field.

    Raises
    ------
    InputError
        An unreadable file, a bad JSON line or field (naming the line), or no prompt.
    """
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except OSError as exc:
        raise InputError(f"--prompts: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"--prompts: {path} is not UTF-8 text") from None
    prompts: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if jsonl_field is None:
            prompts.append(line)
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"--prompts: {path}:{n}: not JSON ({exc.msg})") from None
        value = obj.get(jsonl_field) if isinstance(obj, dict) else None
        if not isinstance(value, str):
            raise InputError(f"--prompts: {path}:{n}: expected a string field {jsonl_field!r}")
        prompts.append(value)
    if not prompts:
        raise InputError(f"--prompts: no prompt in {path} (expected one per non-empty line)")
    return prompts


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
        Whether an output is standard output (``-``, ``/dev/stdout``): the command then
        prints its summary on stderr.

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
        if path == "-" and option in directories:
            raise InputError(f"{option}: expected a directory, got '-'")
        if option not in directories and output_kind(path, option) == "stdout":  # '-', /dev/stdout
            to_stdout.append(option)
            if len(to_stdout) > 1:
                raise InputError(f"{' and '.join(to_stdout)}: only one output can be '-' (stdout)")
            continue
        p = Path(path)
        if option in directories:
            if p.exists() and not p.is_dir():
                raise InputError(f"{option}: {path} exists and is not a directory")
            probe_directory(p if p.is_dir() else p.parent, option)
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


def input_bytes(paths: Iterable[str], glob: str | None = None) -> int | None:
    """The total size in bytes of the input files, or ``None`` when it cannot be known up
    front (``-``, a FIFO or device, a path that cannot be read: the reading reports it).

    Directories count the files ``glob`` matches in them.
    """
    total = 0
    for p in paths:
        if p == "-":
            return None
        try:
            st = os.stat(p)
            if stat.S_ISDIR(st.st_mode):
                if glob is None:
                    return None
                total += sum(q.stat().st_size for q in Path(p).glob(glob) if q.is_file())
            elif stat.S_ISREG(st.st_mode):
                total += st.st_size
            else:
                return None
        except (OSError, ValueError, NotImplementedError):
            return None
    return total


class Progress:
    """The progress bar on stderr (tqdm): bytes of the inputs done, out of their total.

    The total is the size of the input files (:func:`input_bytes`), known before any model
    loads; for stdin, FIFOs and devices it is unknown, and the bar shows the bytes done
    and the rate only. Bytes done: the documents already scored plus, in the current
    document, the end of the last scored token's byte span (:meth:`rows`, fed by an
    ``on_rows`` callback); where no rows are reported (``compare --save-base``), the bytes
    of the documents the library has taken (:meth:`documents`), which runs a window
    batch ahead of the scoring. A document's bytes are its text's UTF-8 bytes, so with
    ``--jsonl`` (JSON syntax and escapes are not text) the bar ends below 100%. The
    ``progress`` callback of the library counts tokens, shown after the bar.

    Parameters
    ----------
    enabled : bool
        Draw at all (the commands pass: not ``--quiet`` and stderr is a terminal).
    what : str
        The bar's label, e.g. ``"scoring"``.
    total : int, optional
        The inputs' size in bytes (``None``: unknown).
    rows : bool
        Bytes done come from :meth:`rows` (the command feeds it from ``on_rows``); False:
        from :meth:`documents` alone.
    """

    def __init__(
        self, enabled: bool, what: str, total: int | None = None, *, rows: bool = True
    ) -> None:
        self.enabled, self.what, self.total = enabled, what, total
        self.tokens = 0
        self._sizes: dict[int, int] = {}  # bytes of each document taken, not yet done
        self._taken = 0  # bytes of the documents taken by the library
        self._done = 0  # bytes of the documents scored
        self._current = -1
        self._offset = 0  # bytes scored in the current document
        self._rows = rows
        self._bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # a dependency, but an install without it still runs
                self.enabled = False
                return
            fmt = (
                "{desc}: {n_fmt}B [{elapsed}, {rate_fmt}{postfix}]"
                if total is None
                else "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B "
                "[{elapsed}<{remaining}, {rate_fmt}{postfix}]"
            )
            self._bar = tqdm(
                total=total, desc=what, unit="B", unit_scale=True, unit_divisor=1000,
                file=sys.stderr, leave=False, dynamic_ncols=True, mininterval=0.2,
                miniters=1, smoothing=0.1, bar_format=fmt,
            )  # fmt: skip

    def documents(self, docs: Iterable[Document]) -> Iterable[Document]:
        """Wrap the document stream given to the library: each document's UTF-8 bytes are
        counted when it is taken."""
        if not self.enabled:
            return docs

        def counted() -> Iterator[Document]:
            for index, doc in enumerate(docs):
                size = getattr(doc, "size_hint", None)  # a lazy document is not read here
                if size is None:
                    t = doc.text
                    size = len(t) if isinstance(t, bytes) else len(t.encode("utf-8", "replace"))
                self._sizes[index] = size
                self._taken += size
                yield doc
                self._draw()

        return counted()

    def rows(self, document: int, offsets: Any) -> None:
        """Record scored rows of document ``document`` (index in input order) whose byte
        spans are ``offsets`` (``[n, 2]``; negative where unknown)."""
        if not self.enabled:
            return
        if document != self._current:
            for i in [i for i in self._sizes if i < document]:
                self._done += self._sizes.pop(i)
            self._current = document
            self._offset = 0
        o = np.asarray(offsets).reshape(-1, 2)
        if o.size:
            end = int(np.max(np.where(o[:, 0] >= 0, o[:, 1], 0)))
            self._offset = max(self._offset, min(end, self._sizes.get(document, end)))
        self._draw()

    def __call__(self, n: int) -> None:
        """Count ``n`` more tokens (the ``progress`` callback of the library functions)."""
        self.tokens += n
        self._draw()

    def _draw(self) -> None:
        bar = self._bar
        if bar is None:
            return
        done = self._done + self._offset if self._rows else self._taken
        bar.set_postfix_str(f"{self.tokens:,} tokens", refresh=False)
        bar.update(done - bar.n)

    def close(self) -> None:
        """Erase the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def engine_options() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--engine`` and the Ray options of ``score`` and ``compare``; the command receives
    ``engine`` (``"local"`` or ``"ray"``) and ``ray_options`` (a dict for
    :class:`infolens.distributed.RayOptions`, the options given)."""
    options = [
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
                     show_default=True,
                     help="Where to run: this process, or Ray (a local Ray on this machine, "
                     "or --address; needs 'infolens[ray]'). Ray gives the same numbers."),
        click.option("--address", default=None, metavar="ADDR",
                     help="--engine ray: a running Ray cluster (e.g. 'auto' or "
                     "'ray://HEAD:10001'); default: start Ray on this machine."),
        click.option("--workers", type=int, default=None, metavar="N",
                     help="--engine ray: actors, each holding one model (default 2)."),
        click.option("--gpus-per-worker", type=float, default=None, metavar="G",
                     help="--engine ray: GPUs each actor reserves (default 0)."),
        click.option("--batch-documents", type=int, default=None, metavar="B",
                     help="--engine ray: documents per batch, the unit Ray retries "
                     "(default 16)."),
    ]  # fmt: skip

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, **kw: Any) -> Any:
            given = {k: kw.pop(k) for k in ("address", "workers", "gpus_per_worker",
                                            "batch_documents")}  # fmt: skip
            given = {k: v for k, v in given.items() if v is not None}
            if kw["engine"] != "ray" and given:
                names = ", ".join("--" + k.replace("_", "-") for k in given)
                raise InputError(f"{names}: only with --engine ray")
            kw["ray_options"] = given
            return f(*args, **kw)

        for opt in reversed(options):
            wrapper = opt(wrapper)
        return wrapper

    return deco


def ray_engine(ray_options: Mapping[str, Any]) -> Any:
    """The :class:`infolens.distributed.RayOptions` of the options given (checked), with
    Ray itself imported (a one-line error naming the extra when it is missing)."""
    from infolens.distributed import RayOptions, require_ray

    require_ray()
    opts = RayOptions(**ray_options)
    opts.check()
    return opts
