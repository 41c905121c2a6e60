"""Exercise the C extensions; run by ``test_sanitizers.py`` under ASan + UBSan.

Not a test module: ``python _sanitize_exercise.py WORKDIR`` with ``PYTHONPATH`` pointing at
a copy of infolens whose ``_native`` and ``_ngram_native`` were built with
``-fsanitize=address,undefined``. A memory error or undefined behaviour aborts the process
(``abort_on_error=1``, ``halt_on_error=1``); a failed check exits non-zero with a message.
Prints one ``ok ...`` line per section.

Sections: the fused kernel (``infolens._native``) on ordinary, -inf, +-1e308, NaN/+inf,
empty and single-column inputs, float64, float32, float16 and bfloat16, 1..4 threads, with targets, ranks and
Jensen-Shannon; the ngram model (fit, score, save, load, score again); then corrupt model
files through the public loader ``infolens.models.ngram.load_ngram_file``: variants made
here (arrays edited at the numpy level and written with valid checksums, bit flips and
truncations of a saved file) and every file in the directory named by
``INFOLENS_FAULT_DIR`` if set (the fault suite's corrupt model files). Each must give a
one-line ``ValueError`` (``InputError``) or load and score without a crash.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def fail(msg: str) -> None:
    print(f"FAIL {msg}", flush=True)
    sys.exit(3)


# --------------------------------------------------------------------------- fused kernel


def kernel() -> None:
    import infolens
    from infolens import _kernels, _native

    want = os.environ.get("INFOLENS_SANITIZED_BUILD")
    if want and Path(_native.__file__).resolve().parent != Path(want).resolve():
        fail(f"not the sanitized build: {_native.__file__}")
    rng = np.random.default_rng(0)
    NINF = -np.inf
    cases: list[tuple[str, np.ndarray, np.ndarray]] = []
    for v in (1, 7, 8, 9, 203):
        a = rng.standard_normal((11, v)) * 3
        b = rng.standard_normal((11, v)) * 3
        a[rng.random(a.shape) < 0.2] = NINF
        b[rng.random(b.shape) < 0.2] = NINF
        a[:, 0] = np.where(np.isneginf(a[:, 0]), 0.0, a[:, 0])
        b[:, -1] = np.where(np.isneginf(b[:, -1]), 0.0, b[:, -1])
        cases.append((f"normal-V{v}", a, b))
    huge = np.array(
        [[1e308, -1e308, 0.0], [1.7976931348623157e308] * 3, [0.0, -1.7e308, -1.7e308],
         [-1e308, -1.5e308, NINF], [5e-324, -5e-324, 1e308]]
    )  # fmt: skip
    cases.append(("huge", huge, huge[::-1].copy()))
    bad = np.zeros((5, 9))
    bad[0, 3] = np.nan
    bad[1, 8] = np.inf
    bad[2] = NINF
    bad[3, 1], bad[3, 2] = np.inf, np.nan
    cases.append(("nan-inf-rows", bad, np.zeros((5, 9))))
    cases.append(("empty", np.zeros((0, 5)), np.zeros((0, 5))))
    cases.append(("one-column", rng.standard_normal((6, 1)), rng.standard_normal((6, 1))))
    n_calls = 0
    for name, a, b in cases:
        for dtype in (np.float64, np.float32, np.float16, "bf16"):
            with np.errstate(over="ignore"):
                if dtype == "bf16":  # bfloat16 bits: the top half of each float32
                    a_t, b_t = ((x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
                                for x in (a, b))  # fmt: skip
                else:
                    a_t, b_t = a.astype(dtype), b.astype(dtype)
            flag = dtype == "bf16"
            t = (np.arange(a.shape[0]) * 7) % a.shape[1]
            for threads in (1, 2, 4):
                for bb, tt, rank, js in (
                    (None, None, False, False),
                    (None, t, True, False),
                    (b_t, None, False, True),
                    (b_t, t, True, True),
                    (b_t, t, False, False),
                ):
                    r = _native.fused_rows(a_t, bb, tt, rank, js, threads, flag)
                    n_calls += 1
                    for k, x in r.items():
                        if x.shape != (a.shape[0],):
                            fail(f"kernel {name} {k}: shape {x.shape}")
    # the argument checks of the C glue: refused, not read out of bounds
    a = np.zeros((3, 4))
    for args in (
        (np.zeros((3, 8))[:, ::2], None, None),  # not contiguous
        (a, a.astype(np.float32), None),  # dtype mismatch
        (a.astype(np.int32), None, None),
        (a.astype(np.uint16), None, None),  # bfloat16 bits without the flag
        (a, None, np.array([0, 4, 1])),  # target out of range (int64)
        (a, None, np.array([0, -1, 1])),
        (a, None, np.array([0, 1], dtype=np.int64)),  # wrong length
        (a, np.zeros((3, 5)), None),  # shape mismatch
        (a.astype(">f8"), None, None),  # byte-swapped
    ):
        try:
            _native.fused_rows(*args, True, True, 2)
        except (ValueError, TypeError):
            pass
        else:
            fail(f"kernel accepted bad arguments {[getattr(x, 'shape', x) for x in args]}")
    try:  # the bfloat16 flag with anything but uint16
        _native.fused_rows(a.astype(np.float16), None, None, True, True, 2, True)
    except ValueError:
        pass
    else:
        fail("kernel took float16 as bfloat16 bits")
    # and through the public measures (validation, ±1e308, threads from the environment)
    os.environ["INFOLENS_NUM_THREADS"] = "3"
    big = rng.standard_normal((64, 1000)).astype(np.float32)
    big[:, :10] = NINF
    infolens.kl_divergence(p_logits=big, q_logits=big[::-1].copy())
    infolens.js_divergence(p_logits=huge, q_logits=huge[::-1].copy())
    st = _kernels.fused_rows(big, big[::-1].copy(), np.arange(64) % 1000, js=True, rank=True)
    if not np.isfinite(st.js).all():
        fail("kernel: JS not finite")
    print(f"ok kernel ({n_calls} calls, isa {_native.isa()})", flush=True)


# --------------------------------------------------------------------------- ngram model

TEXT = (
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. "
    "Sphinx of black quartz, judge my vow! \u00e9t\u00e9 \u2014 na\u00efve caf\u00e9.\n"
) * 8


def score(model: Any) -> float:
    from infolens.models import Window

    tok = model.tokenize(TEXT)
    total = 0.0
    for rows in model.logits([Window(tok.ids, 0), Window(tok.ids, 17)], max_rows=64):
        if not np.isfinite(rows).all():
            fail("ngram: non-finite log-probabilities")
        total += float(rows.sum())
    return total


def ngram(work: Path) -> tuple[Path, Any]:
    from infolens.models import ngram as ng

    m = ng.NgramModel(order=4)  # adaptive, with the match model
    score(m)
    src = work / "train.txt"
    src.write_text(TEXT * 3, encoding="utf-8")
    for order in (0, 1, 3, 8):
        fitted = ng.fit_ngram([src, TEXT.encode()], order=order)
        score(fitted)
        path = work / f"m{order}.model"
        fitted.save(path)
        for adapt in (False, True):
            loaded = ng.load_ngram_file(path, adapt=adapt)
            score(loaded)
    fitted = ng.fit_ngram([TEXT.encode()], order=3)
    path = work / "base.model"
    fitted.save(path)
    print("ok ngram (fit, score, save, load, score)", flush=True)
    return path, fitted


#: Known findings to step around (comma-separated in ``INFOLENS_SAN_KNOWN``; none at present),
#: each run on its own by a test: ``empty-copy`` -- copying a model (fixed in Model_copy)
#: with no symbols (``adapt=1`` on a file with empty tables).
KNOWN = set(filter(None, os.environ.get("INFOLENS_SAN_KNOWN", "").split(",")))


def expect_refused_or_loads(path: Path, what: str, must_refuse: bool) -> str:
    """Load ``path``: a one-line ValueError, or a model that then scores (frozen, and
    adapting from it)."""
    from infolens.models import ngram as ng

    try:
        model = ng.load_ngram_file(path)
    except ValueError as exc:  # InputError is a ValueError
        msg = str(exc)
        if "\n" in msg or not msg:
            fail(f"{what}: not one line: {msg!r}")
        return "refused"
    except Exception as exc:  # a traceback: the failure reported
        fail(f"{what}: {type(exc).__name__}: {exc}")
    if must_refuse:
        fail(f"{what}: accepted")
    score(model)
    adaptive = ng.load_ngram_file(path, adapt=True)
    if "empty-copy" not in KNOWN or adaptive.info().get("contexts", 1):
        score(adaptive)
    return "loaded"


def crafted(work: Path, fitted: Any) -> int:
    """Arrays of a fitted model edited at the numpy level, written with valid checksums."""
    from infolens.models import ngram as ng

    writer: Callable[..., Any] | None = getattr(ng, "write_model_arrays", None)
    if writer is None:
        print("skip crafted (no infolens.models.ngram.write_model_arrays)", flush=True)
        return 0
    orders, ctx, nsym, sym, cnt, sse = (np.array(x) for x in fitted._core.export())
    base = {"orders": orders, "contexts": ctx, "nsym": nsym, "symbols": sym, "counts": cnt,
            "sse": sse}  # fmt: skip
    order = fitted.order

    def edit(name: str, fn: Callable[[np.ndarray], Any]) -> dict[str, np.ndarray]:
        arrays = {k: v.copy() for k, v in base.items()}
        out = fn(arrays[name])
        if out is not None:
            arrays[name] = out
        return arrays

    big = int(np.argmax(nsym))  # a context with several symbols
    top = np.flatnonzero(orders == orders.max())  # two contexts of one order
    first = int(np.cumsum(nsym)[big] - nsym[big])

    def setv(i: int, value: Any) -> Callable[[np.ndarray], None]:
        def f(a: np.ndarray) -> None:
            a[i] = value

        return f

    limit = int(fitted._core.COUNT_LIMIT) if hasattr(fitted._core, "COUNT_LIMIT") else None
    if limit is None:
        from infolens import _ngram_native

        limit = int(_ngram_native.COUNT_LIMIT)
    rest = int(cnt[first : first + nsym[big]].sum(dtype=np.int64)) - int(cnt[first])

    variants: list[tuple[str, dict[str, np.ndarray], dict[str, Any] | None]] = [
        # valid, at the edge: a context's counts sum to exactly the limit, then adapt on
        ("counts-at-limit", edit("counts", setv(first, limit - rest)), None),
        ("count-0", edit("counts", setv(first, 0)), None),
        ("count-max", edit("counts", setv(first, 0xFFFFFFFF)), None),
        ("counts-overflow", edit("counts", lambda a: np.full_like(a, 0x80000000)), None),
        ("orders-above", edit("orders", setv(0, order + 1)), None),
        ("orders-255", edit("orders", setv(len(orders) - 1, 255)), None),
        ("nsym-huge", edit("nsym", setv(big, 0xFFFF)), None),
        ("nsym-257", edit("nsym", setv(big, 257)), None),
        ("nsym-0", edit("nsym", setv(big, 0)), None),
        ("context-too-long", edit("contexts", setv(0, 2**64 - 1)), None),
        ("duplicate-context", edit("contexts", setv(int(top[1]), ctx[top[0]])), None),
        ("duplicate-symbol", edit("symbols", setv(first + 1, sym[first])), None),
        ("sse-nan", edit("sse", lambda a: a.__setitem__((0, 0, 0), np.nan)), None),
        ("sse-inf", edit("sse", lambda a: a.__setitem__((1, 0, 0), np.inf)), None),
        ("sse-negative", edit("sse", lambda a: a.__setitem__((0, 1, 1), -1.0)), None),
        ("sse-hits-above-trials", edit("sse", lambda a: a.__setitem__((0, 2, 2), 1e9)), None),
        ("symbols-short", edit("symbols", lambda a: a[:-1]), None),
        ("counts-long", edit("counts", lambda a: np.append(a, 1)), None),
        ("sse-shape", edit("sse", lambda a: a.reshape(-1)[:-1]), None),
        ("empty-tables", {k: (v[:0] if k != "sse" else v) for k, v in base.items()}, None),
        ("header-order-3.7", base, {"order": 3.7}),
        ("header-order-99", base, {"order": 99}),
        ("header-order-lower", base, {"order": max(0, order - 1)}),
        ("header-version", base, {"version": 99}),
        ("header-k-2**31", base, {"match_min": 2**31}),
        ("header-arrays-huge", base, {"arrays": [["orders", "<u1", [2**40]]]}),
    ]
    outcomes: dict[str, str] = {}
    direct = direct_load(order, [(name, arrays) for name, arrays, header in variants if not header])
    for name, arrays, header in variants:
        path = work / f"crafted-{name}.model"
        try:
            writer(path, order, arrays, header=header)
        except Exception as exc:  # the writer may refuse what it cannot write
            outcomes[name] = f"unwritable ({type(exc).__name__})"
            continue
        # every variant but these breaks a documented rule of the file format
        may_load = name in ("empty-tables", "counts-at-limit")
        outcomes[name] = expect_refused_or_loads(path, f"crafted {name}", not may_load)
    print(f"ok crafted ({len(variants)} variants: {outcomes}; C load: {direct})", flush=True)
    return len(variants)


def direct_load(order: int, variants: list[tuple[str, dict[str, np.ndarray]]]) -> dict[str, str]:
    """The same arrays straight into the C loader (``Model.load``), past the Python checks:
    it must refuse them with a ValueError itself, or load something that scores."""
    from infolens.models import ngram as ng

    new_core = getattr(ng, "_new_core", None)
    if new_core is None:
        return {"skipped": "no infolens.models.ngram._new_core"}
    dtypes = {"orders": np.uint8, "contexts": np.uint64, "nsym": np.uint16,
              "symbols": np.uint8, "counts": np.uint32, "sse": np.float64}  # fmt: skip
    out = {}
    for name, arrays in variants:
        core = new_core(order, True)
        args = [np.ascontiguousarray(arrays[k], dtype=dt) for k, dt in dtypes.items()]
        try:
            core.load(*args)
        except ValueError as exc:
            out[name] = f"refused ({exc})"
            continue
        if "empty-copy" in KNOWN and core.info()["contexts"] == 0:
            out[name] = "loaded (empty: not scored adaptively, known finding)"
            continue
        for adapt in (False, True):
            score(ng.NgramModel(order, adapt=adapt, core=core))
        out[name] = "loaded"
    return out


def bytes_level(work: Path, path: Path) -> int:
    """Bit flips and truncations of a saved model at spread offsets."""
    data = path.read_bytes()
    n = 0
    step = max(1, len(data) // 97)
    for off in [*range(0, len(data), step), len(data) - 1]:
        for mask in (0x01, 0x80):
            bad = bytearray(data)
            bad[off] ^= mask
            p = work / "flip.model"
            p.write_bytes(bytes(bad))
            expect_refused_or_loads(p, f"flip offset {off} mask {mask:#x}", True)
            n += 1
        p = work / "trunc.model"
        p.write_bytes(data[:off])
        expect_refused_or_loads(p, f"truncated at {off}", True)
        n += 1
    print(f"ok bytes ({n} flipped or truncated files of {len(data)} bytes)", flush=True)
    return n


def fault_dir() -> int:
    d = os.environ.get("INFOLENS_FAULT_DIR")
    if not d:
        print("skip fault dir (INFOLENS_FAULT_DIR not set)", flush=True)
        return 0
    files = sorted(p for p in Path(d).rglob("*") if p.is_file())
    seen: dict[str, int] = {}
    for p in files:
        r = expect_refused_or_loads(p, f"fault file {p}", False)
        seen[r] = seen.get(r, 0) + 1
    print(f"ok fault dir {d} ({len(files)} files: {seen})", flush=True)
    return len(files)


def empty_copy(work: Path) -> None:
    """The known finding alone: a model with no symbols, loaded to keep adapting."""
    from infolens.models import ngram as ng

    path = work / "empty.model"
    empty = {"orders": np.zeros(0, np.uint8), "contexts": np.zeros(0, np.uint64),
             "nsym": np.zeros(0, np.uint16), "symbols": np.zeros(0, np.uint8),
             "counts": np.zeros(0, np.uint32), "sse": np.zeros((2, 16, 12))}  # fmt: skip
    ng.write_model_arrays(path, 3, empty)
    score(ng.load_ngram_file(path, adapt=True))
    print("ok empty-copy", flush=True)


def main() -> None:
    work = Path(sys.argv[1])
    work.mkdir(parents=True, exist_ok=True)
    sections = sys.argv[2].split(",") if len(sys.argv) > 2 else ["kernel", "ngram"]
    if "kernel" in sections:
        kernel()
    if "empty-copy" in sections:
        empty_copy(work)
    if "ngram" in sections:
        path, fitted = ngram(work)
        crafted(work, fitted)
        bytes_level(work, path)
        fault_dir()
    print("done", flush=True)


if __name__ == "__main__":
    main()
