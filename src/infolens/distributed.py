r"""``--engine ray``: score and compare documents on Ray, exactly as one process does.

The driver reads the documents with the same reader as the single-process run (so the
same names, order and errors), gives each a stable id (its position in the input) and
hands them to Ray Data (``ray.data.from_items``): regular files as their paths (the workers
read them), other documents (stdin, JSON-lines records) as their text. Ray Data shards them
into batches of ``batch_documents`` and runs them on an **actor pool** (``map_batches``
with a callable class): each actor loads the model once and scores every document of a
batch on its own, returning, per document id, the single-document result (its exact,
mergeable accumulator states) or the error that document raised.

Ray runs work *at least once*: an actor that dies is restarted and its batch retried, and
blocks come back in any order. The driver therefore keeps **one result per id** (a
retried document gives the same bytes: scoring is deterministic) and merges them **in
id order**. Every accumulator is exact (integer sums in units of ``2^-1126``, per-token
series concatenated in order, batch-means blocks that never span documents), so the
merged result is the single-process result bit for bit: the same JSON, intervals
included. A document that fails for a reason of its own (invalid UTF-8 for a token model)
is not retried: the driver raises its error, by name, as the single-process run would
(the first failing document in input order).

``--tokens DIR``: each batch writes ``DIR/shard-FIRST-LAST.jsonl`` (ids of its first and
last document) atomically, so a retried batch replaces its shard instead of adding one;
the driver then writes ``DIR/manifest.json`` listing the shards in order with their
documents and record counts.

Needs ``ray`` (``pip install 'infolens[ray]'``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from infolens.documents import Document
from infolens.errors import InfolensError, InputError

__all__ = ["RayOptions", "compare_documents_ray", "require_ray", "score_documents_ray"]


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error naming the extra."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise InputError(
            "--engine ray: needs Ray, which is not installed (pip install 'infolens[ray]')"
        ) from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run.

    Attributes
    ----------
    address : str or None
        A running cluster (``ray://HOST:10001`` or ``auto``); ``None`` starts a local Ray
        on this machine (``num_cpus`` sized to the workers).
    workers : int
        Actors in the pool, each holding one model instance.
    gpus_per_worker : float
        GPUs each actor reserves (0: CPU only).
    batch_documents : int
        Documents per batch handed to an actor (the unit Ray retries).
    cpus_per_worker : float
        CPUs each actor reserves.
    """

    address: str | None = None
    workers: int = 2
    gpus_per_worker: float = 0.0
    batch_documents: int = 16
    cpus_per_worker: float = 1.0

    def check(self) -> None:
        if self.workers < 1:
            raise InputError(f"--workers: expected >= 1, got {self.workers}")
        if self.batch_documents < 1:
            raise InputError(f"--batch-documents: expected >= 1, got {self.batch_documents}")
        if self.gpus_per_worker < 0:
            raise InputError(f"--gpus-per-worker: expected >= 0, got {self.gpus_per_worker}")


#: Object store of a local Ray started by infolens (bytes).
LOCAL_OBJECT_STORE = 300 << 20


# ----------------------------------------------------------------------------- items


def _item(i: int, doc: Document) -> dict[str, Any]:
    """One document as a row for Ray Data: a path for a lazily read file, else its text."""
    row: dict[str, Any] = {"id": i, "name": doc.name, "path": "", "text": "", "data": b"",
                           "is_bytes": False, "allow_bytes": doc.allow_bytes}  # fmt: skip
    if doc.lazy:
        row["path"] = doc._path
        row["max_bytes"] = doc._max_bytes
    else:
        t = doc.text
        if isinstance(t, bytes):
            row["data"], row["is_bytes"] = t, True
        else:
            row["text"] = t
    row.setdefault("max_bytes", 0)
    return row


def _document(row: dict[str, Any]) -> Document:
    if row["path"]:
        return Document.from_file(str(row["path"]), allow_bytes=bool(row["allow_bytes"]),
                                  max_bytes=int(row["max_bytes"]))  # fmt: skip
    return Document(str(row["name"]), bytes(row["data"]) if row["is_bytes"] else str(row["text"]))


# ----------------------------------------------------------------------------- worker


class _Worker:
    """A Ray Data actor: one model instance, loaded once; scores each document alone."""

    #: The job (model spec, settings), set on the subclass :func:`_run` makes, so that it
    #: travels with the class rather than as constructor arguments in the object store
    #: (which a restarted actor could lose).
    JOB: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        from infolens.models import load_model

        job = self.JOB
        self.job = job
        self.pid = os.getpid()
        self.base: Any = None
        # a model that cannot load (a bad spec, a missing file or package) is the run's
        # own error, not a worker failure: it comes back as every document's error (and the
        # driver raises it once, as one line) instead of killing the actor, which Ray would
        # restart and fail again
        self.init_error = ""
        try:
            self.model = load_model(job["model"], **job["model_options"])
            if job["task"] == "compare":
                self.base = load_model(job["base"], **job["base_options"])
        except ModuleNotFoundError as exc:
            self.init_error = (f"--engine ray: a worker cannot load the model: this model type "
                               f"is not available there ({exc.name} is missing)")  # fmt: skip
        except (InfolensError, ValueError, OSError) as exc:
            self.init_error = " ".join(str(exc).split()) or type(exc).__name__

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        n = len(batch["id"])
        if self.init_error:
            return {"id": [int(i) for i in batch["id"]], "state": [b""] * n,
                    "error": [self.init_error] * n, "pid": [self.pid] * n}  # fmt: skip
        rows = [{k: batch[k][i] for k in batch} for i in range(n)]
        ids, states, errors = [], [], []
        shard = _TokenShard(self.job.get("tokens_dir"), self.model, rows) if rows else None
        delay = float(self.job.get("test_delay", 0.0))
        for row in rows:
            if delay:  # tests: slow a worker down so that it can be killed mid-run
                time.sleep(delay)
            doc = _document(row)
            try:
                res = self._run(doc, shard)
                states.append(pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
                errors.append("")
            except InfolensError as exc:
                states.append(b"")
                errors.append(str(exc) or type(exc).__name__)
            ids.append(int(row["id"]))
        if shard is not None:
            shard.close()
        return {"id": ids, "state": states, "error": errors, "pid": [self.pid] * n}

    def _run(self, doc: Document, shard: _TokenShard | None) -> Any:
        s = self.job["settings"]
        if self.job["task"] == "compare":
            from infolens.compare import compare_documents

            return compare_documents(self.model, self.base, [doc], max_length=s["max_length"],
                                     stride=s["stride"], bos=s["bos"])  # fmt: skip
        from infolens.score import score_documents

        on_rows = shard.on_rows(doc) if shard is not None and shard.writer is not None else None
        return score_documents(
            self.model, [doc], max_length=s["max_length"], stride=s["stride"], bos=s["bos"],
            block_tokens=s["block_tokens"], compressors=s["compressors"],
            ranks=on_rows is not None, on_rows=on_rows,
        )  # fmt: skip


class _TokenShard:
    """``--tokens DIR``: this batch's records in ``shard-FIRST-LAST.jsonl``, atomically."""

    def __init__(self, tokens_dir: str | None, model: Any, rows: list[dict[str, Any]]) -> None:
        self.writer: Any = None
        self._cm: Any = None
        if not tokens_dir:
            return
        from infolens.tokens import open_token_writer, token_decoder

        first, last = int(rows[0]["id"]), int(rows[-1]["id"])
        self.path = Path(tokens_dir) / f"shard-{first:09d}-{last:09d}.jsonl"
        self._cm = open_token_writer(str(self.path))
        self.writer = self._cm.__enter__()
        self.decode = token_decoder(model)

    def on_rows(self, doc: Document) -> Callable[[Any], None]:
        text = doc.text
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        offset = [0]  # the document index inside the single-document run is always 0

        def write(batch: Any) -> None:
            offset[0] += 1
            self.writer.write_rows(batch, data, self.decode)

        return write

    def close(self) -> None:
        if self._cm is not None:
            self._cm.__exit__(None, None, None)


# ----------------------------------------------------------------------------- driver

#: The lines Ray's C++ core writes to the driver's stderr ("[2026-12-02 14:41:52,817 E 24056
#: 24056] core_worker.cc:2465: ...") and the raylet's notices it relays ("(raylet) A worker
#: died ..."): failures reach infolens as exceptions, and a retry is said in one line.
_RAY_LOG_LINE = re.compile(
    rb"^(\[\d{4}-\d\d-\d\d [\d:,]+ [DIWEF] \d+ \d+\] [\w./]+\.cc:\d+: |(\x1b\[\d+m)?\(raylet\))"
)


@contextlib.contextmanager
def _ray_stderr_filtered() -> Iterator[None]:
    """Drop Ray's own C++ log lines from this process's stderr (file descriptor 2) while
    Ray runs; every other line (infolens's, Python's) passes through unchanged."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (a test runner)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    r, w = os.pipe()
    os.dup2(w, fd)
    os.close(w)

    def pump() -> None:
        with os.fdopen(r, "rb") as src:
            for line in src:
                if not _RAY_LOG_LINE.match(line):
                    os.write(saved, line)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)  # closes the pipe's last writer here: the pump ends
        t.join(timeout=5)
        os.close(saved)



def _init(ray: Any, opts: RayOptions) -> float:
    """Start (or join) Ray, quietly (no progress bars or logs on stderr: stdout and stderr
    are infolens's); returns the seconds it took."""
    import logging

    for name in ("ray", "ray.data", "ray._private", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "enable_operator_progress_bars"):
        ctx.enable_operator_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    _quiet_raylet_notices()
    t = time.perf_counter()
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}  # fmt: skip
        if opts.address:
            ray.init(address=opts.address, **kw)
        else:
            # a local Ray: logical CPUs for the actors (and one for Ray Data's own tasks), a
            # small object store (results are kilobytes per document)
            ray.init(num_cpus=max(1, int(opts.workers * opts.cpus_per_worker + 0.999)) + 1,
                     object_store_memory=LOCAL_OBJECT_STORE, **kw)  # fmt: skip
    return time.perf_counter() - t


def _quiet_raylet_notices() -> None:
    """Keep the raylet's notices ("(raylet) A worker died ...", "Task ... will be
    retried") off the driver's stdout, which carries infolens's data (Ray's driver prints
    them there from a background thread; a retry is said on stderr in one line instead),
    and send whatever else Ray prints there to stderr."""
    try:
        from ray._private import worker as rw
    except ImportError:  # pragma: no cover - another Ray layout: its notices stay
        return
    orig = getattr(rw, "print_to_stdstream", None)
    if orig is None or getattr(orig, "_infolens_quiet", False):
        return

    def quiet(data: dict[str, Any], *args: Any, **kw: Any) -> None:
        if data.get("pid") == "raylet":
            return
        # anything else Ray's driver prints (the autoscaler's warnings, workers' output)
        # is a diagnostic: stderr, never stdout
        orig({**data, "is_err": True}, *args, **kw)

    quiet._infolens_quiet = True  # type: ignore[attr-defined]
    rw.print_to_stdstream = quiet


def _run(
    job: dict[str, Any],
    documents: Iterable[Document],
    opts: RayOptions,
    notify: Callable[[str], None] | None,
    merge: Callable[[Iterator[Any]], Any],
) -> tuple[Any, dict[str, Any]]:
    """Run ``job`` over ``documents`` and ``merge`` the results as they come, in order
    (``None`` for no documents), with Ray's own log lines kept off stderr."""
    ray = require_ray()
    opts.check()
    with _ray_stderr_filtered(), warnings.catch_warnings():
        # Ray's own Python warnings (actor-pool sizing hints, deprecations) are not the
        # user's business: stderr carries infolens's diagnostics
        warnings.filterwarnings("ignore", module=r"ray(\.|$)")
        states, info = _run_filtered(ray, job, documents, opts, notify)
        if not info["documents"]:
            return None, info
        merged = merge(_results(states))
        # the merge runs while the results arrive: what it adds is the time after the last
        t0 = info.pop("_t0")
        info["merge_seconds_after_last_result"] = time.perf_counter() - t0 - info["seconds"]
        return merged, info


def _run_filtered(
    ray: Any,
    job: dict[str, Any],
    documents: Iterable[Document],
    opts: RayOptions,
    notify: Callable[[str], None] | None,
) -> tuple[Iterator[bytes], dict[str, Any]]:
    startup = _init(ray, opts)
    t0 = time.perf_counter()
    items = [_item(i, d) for i, d in enumerate(documents)]
    info: dict[str, Any] = {"documents": len(items), "startup_seconds": startup, "_t0": t0}
    if not items:
        return iter(()), info
    ds = ray.data.from_items(items)
    # a class name of this run's own, to find its actors in Ray's actor table afterwards
    name = f"InfolensWorker_{os.getpid()}_{time.time_ns()}"
    info["_class"] = name
    worker = type(name, (_Worker,), {"JOB": job, "__module__": __name__})
    # Ray Data's actor pools restart dead actors and retry their tasks without limit by
    # default (max_restarts=-1, max_task_retries=-1): at least once, never lost
    out = ds.map_batches(
        worker,
        batch_size=opts.batch_documents,
        compute=ray.data.ActorPoolStrategy(size=opts.workers),
        num_cpus=opts.cpus_per_worker,
        num_gpus=opts.gpus_per_worker or None,
    )
    return _in_order(out.iter_rows(), items, opts, info, t0, notify), info


def _in_order(
    rows: Iterable[dict[str, Any]],
    items: list[dict[str, Any]],
    opts: RayOptions,
    info: dict[str, Any],
    t0: float,
    notify: Callable[[str], None] | None,
) -> Iterator[bytes]:
    """The workers' results in id order, each once, as soon as every earlier one is in
    (only the results that came early are held); a document's own error is raised when
    its turn comes, as the single-process run raises it."""
    n = len(items)
    seen = bytearray(n)
    pending: dict[int, tuple[bytes, str]] = {}
    pids: set[int] = set()
    duplicates = 0
    nxt = 0
    for row in rows:
        i = int(row["id"])
        pids.add(int(row["pid"]))
        if seen[i]:  # at least once: a retried batch's documents may come twice
            duplicates += 1
            continue
        seen[i] = 1
        pending[i] = (bytes(row["state"]), str(row["error"]))
        while nxt in pending:
            state, error = pending.pop(nxt)
            if error:
                raise InputError(error)
            yield state
            nxt += 1
    info.update(seconds=time.perf_counter() - t0, worker_processes=len(pids),
                duplicates=duplicates)  # fmt: skip
    if nxt != n:
        raise InfolensError(f"--engine ray: {n - nxt} documents came back from no worker "
                            f"(first: {items[nxt]['name']})")  # fmt: skip
    restarts = _restarts(info.pop("_class"), opts.workers)
    info["actor_restarts"] = restarts
    if notify and (restarts or len(pids) > opts.workers or duplicates):
        notify(
            f"infolens: ray: a worker failed and its work was retried ({restarts} actor "
            f"restart(s), {len(pids)} worker processes for {opts.workers} workers, "
            f"{duplicates} duplicate results dropped); every document was counted once"
        )


def _restarts(class_name: str, workers: int) -> int:
    """Restarts of this run's actors, from Ray's actor table (``NumRestarts``, plus any
    actor beyond the pool's size that replaced a dead one)."""
    try:
        from ray._private import state

        mine = [a for a in state.actors().values() if class_name in str(a.get("ActorClassName"))]
    except Exception:  # the table is a diagnostic: never fail the run for it
        return 0
    return sum(int(a.get("NumRestarts") or 0) for a in mine) + max(0, len(mine) - workers)


def _results(states: Iterable[bytes]) -> Iterator[Any]:
    """The workers' single-document results, unpickled one at a time (never all held),
    with the cyclic garbage collector paused: it would rescan the growing list of merged
    documents on every few hundred objects, turning a million documents from seconds into
    minutes."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        for b in states:
            yield pickle.loads(b)
    finally:
        if enabled:
            gc.enable()


def _write_manifest(tokens_dir: str, names: list[str]) -> None:
    from infolens._atomic import atomic_output

    shards = sorted(p.name for p in Path(tokens_dir).glob("shard-*.jsonl"))
    entries = []
    for name in shards:
        first, last = (int(x) for x in name[6:-6].split("-"))
        with open(Path(tokens_dir) / name, "rb") as f:
            records = sum(1 for _ in f)
        entries.append({"file": name, "first_document": first, "last_document": last,
                        "records": records})  # fmt: skip
    docs = [{"id": i, "name": n} for i, n in enumerate(names)]
    with atomic_output(Path(tokens_dir) / "manifest.json", encoding="utf-8") as f:
        json.dump({"format": "infolens-token-shards", "version": 1, "shards": entries,
                   "documents": docs}, f, indent=1)  # fmt: skip
        f.write("\n")


def merge_score_states(states: Iterable[bytes]) -> Any:
    """:func:`merge_score_results` of the workers' pickled results (what the driver does
    with what comes back)."""
    return merge_score_results(_results(states))


def merge_score_results(parts: Iterable[Any]) -> Any:
    """Merge single-document :class:`~infolens.score.ScoreResult` s in order, in O(n)
    (each part is merged and dropped: only its document entry is kept). The sums are
    exact, so this is the corpus result itself.

    Examples
    --------
    >>> from infolens import Document, load_model, score_documents
    >>> m = load_model("ngram")
    >>> docs = [Document("a", "abc abc"), Document("b", "xyz")]
    >>> merged = merge_score_results(score_documents(m, [d]) for d in docs)
    >>> merged.to_dict() == score_documents(m, docs).to_dict()
    True
    """
    from infolens.score import ScoreResult

    it = iter(parts)
    first = next(it)
    stats = first.stats.copy()
    docs = list(first.documents)
    comp = first.compressors.copy() if first.compressors is not None else None
    for p in it:
        if (p.model, p.settings) != (first.model, first.settings):
            raise InfolensError("--engine ray: workers scored with different settings")
        stats.merge(p.stats)
        docs.extend(p.documents)
        if comp is not None:
            comp.merge(p.compressors)
    return ScoreResult(first.model, first.settings, stats, docs, comp, first.entropy_is)


def merge_compare_results(parts: Iterable[Any]) -> Any:
    """Merge single-document :class:`~infolens.compare.CompareResult` s in order."""
    from infolens.compare import CompareResult

    it = iter(parts)
    first = next(it)
    acc = first.accumulator
    docs = list(first.documents)
    for p in it:
        acc.merge(p.accumulator)
        docs.extend(p.documents)
    return CompareResult(first.model, first.base, first.settings, acc, docs, first.base_file,
                         first.base_top_k)  # fmt: skip


def score_documents_ray(
    model: str,
    documents: Iterable[Document],
    *,
    model_options: dict[str, Any] | None = None,
    max_length: int | None = None,
    stride: int | None = None,
    bos: str | None = None,
    block_tokens: int | None = None,
    compressors: bool | None = None,
    tokens_dir: str | None = None,
    options: RayOptions | None = None,
    notify: Callable[[str], None] | None = None,
    info: dict[str, Any] | None = None,
    _test_delay: float = 0.0,
) -> Any:
    """:func:`infolens.score.score_documents` on Ray (see the module docstring): the same
    :class:`~infolens.score.ScoreResult`, bit for bit.

    Parameters
    ----------
    model : str
        The model spec (each actor loads it; ``model_options`` as for ``load_model``).
    documents : iterable of Document
    max_length, stride, bos, block_tokens, compressors
        As for :func:`~infolens.score.score_documents`.
    tokens_dir : str, optional
        Write per-token records as shards in this directory, with a manifest.
    options : RayOptions
    notify : callable, optional
        Gets one line when a retry happened.
    info : dict, optional
        Filled with ``startup_seconds``, ``seconds``, ``worker_processes``,
        ``duplicates``, ``documents``.
    """
    from infolens.stream import DEFAULT_BLOCK_TOKENS

    opts = options or RayOptions()
    if tokens_dir is not None:
        Path(tokens_dir).mkdir(parents=True, exist_ok=True)
    block = block_tokens or DEFAULT_BLOCK_TOKENS
    job: dict[str, Any] = {"task": "score", "model": model, "model_options": model_options or {},
           "tokens_dir": tokens_dir, "test_delay": _test_delay,
           "settings": {"max_length": max_length, "stride": stride, "bos": bos,
                        "block_tokens": block,
                        "compressors": compressors}}  # fmt: skip
    merged, run_info = _run(job, documents, opts, notify, merge_score_results)
    if info is not None:
        info.update(run_info)
    if merged is None:
        from infolens.models import load_model
        from infolens.score import score_documents

        return score_documents(load_model(model, **(model_options or {})), [],
                               max_length=max_length, stride=stride, bos=bos,
                               block_tokens=block,
                               compressors=compressors)  # fmt: skip
    if tokens_dir is not None:
        _write_manifest(tokens_dir, [d.name for d in merged.documents])
    return merged


def compare_documents_ray(
    model: str,
    base: str,
    documents: Iterable[Document],
    *,
    model_options: dict[str, Any] | None = None,
    base_options: dict[str, Any] | None = None,
    max_length: int | None = None,
    stride: int | None = None,
    bos: str | None = None,
    options: RayOptions | None = None,
    notify: Callable[[str], None] | None = None,
    info: dict[str, Any] | None = None,
) -> Any:
    """:func:`infolens.compare.compare_documents` on Ray: the same result, bit for bit
    (against a base *model*; a saved base file is read by one process)."""
    opts = options or RayOptions()
    job = {"task": "compare", "model": model, "model_options": model_options or {},
           "base": base, "base_options": base_options or {},
           "settings": {"max_length": max_length, "stride": stride, "bos": bos}}  # fmt: skip
    merged, run_info = _run(job, documents, opts, notify, merge_compare_results)
    if info is not None:
        info.update(run_info)
    if merged is None:
        from infolens.compare import compare_documents
        from infolens.models import load_model

        return compare_documents(load_model(model, **(model_options or {})),
                                 load_model(base, **(base_options or {})), [],
                                 max_length=max_length, stride=stride, bos=bos)  # fmt: skip
    return merged
