"""The measures under hostile input: logits up to +-1.8e308 (against 50-digit arithmetic,
on the compiled kernel, its instruction-set variants and the array code), and the inputs
and keywords that must be refused with one line (or converted exactly, as documented).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _numeric import kernel_path
from infolens import (
    cross_entropy,
    entropy,
    js_divergence,
    kl_divergence,
    renyi_divergence,
    renyi_entropy,
    surprisal,
    total_variation,
)
from infolens._backend import as_array
from infolens.errors import InputError

NINF = -math.inf
LN2 = math.log(2.0)
BIG = 1.7976931348623157e308  # the largest finite float64
#: |a - m| at or above this rounds to inf in float64 (2^1024 - 2^970: half an ulp above BIG)
OVERFLOW = mpmath.mpf(2) ** 1024 - mpmath.mpf(2) ** 970


# --------------------------------------------------------------------------- reference


def mp_logp(row: list[float]) -> list[Any]:
    """Exact log-probabilities of one row of logits (``None`` = probability 0).

    The documented contract: a -inf logit, or one whose distance below the row's maximum
    is outside the float64 range, is probability 0; every other entry is computed exactly.
    """
    with mpmath.workdps(60):
        fin = [mpmath.mpf(v) for v in row if v != NINF]
        m = max(fin)
        xs = [
            None if v == NINF or m - mpmath.mpf(v) >= OVERFLOW else mpmath.mpf(v) - m for v in row
        ]
        logz = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in xs if x is not None))
        return [None if x is None else x - logz for x in xs]


def _p(lp: Any) -> Any:
    return mpmath.mpf(0) if lp is None else mpmath.exp(lp)


def mp_measures(a: list[float], b: list[float], t: int) -> dict[str, Any]:
    """Every measure of one pair of logit rows, in 60-digit arithmetic."""
    la, lb = mp_logp(a), mp_logp(b)
    out: dict[str, Any] = {}
    with mpmath.workdps(60):
        out["entropy"] = -mpmath.fsum(_p(x) * x for x in la if x is not None)
        both = [(x, y) for x, y in zip(la, lb) if x is not None and y is not None]
        miss = any(x is not None and y is None for x, y in zip(la, lb))
        miss_r = any(y is not None and x is None for x, y in zip(la, lb))
        # without a support mismatch, the terms with p_i > 0 are those in `both`
        out["kl"] = mpmath.inf if miss else mpmath.fsum(_p(x) * (x - y) for x, y in both)
        out["kl_reverse"] = mpmath.inf if miss_r else mpmath.fsum(_p(y) * (y - x) for x, y in both)
        out["cross_entropy"] = mpmath.inf if miss else -mpmath.fsum(_p(x) * y for x, y in both)
        out["cross_entropy_reverse"] = (
            mpmath.inf if miss_r else -mpmath.fsum(_p(y) * x for x, y in both)
        )
        js = []
        for x, y in zip(la, lb):
            p, q = _p(x), _p(y)
            if p or q:
                lm = mpmath.log((p + q) / 2)
                js += [p * (x - lm)] if p else []
                js += [q * (y - lm)] if q else []
        out["js"] = mpmath.fsum(js) / 2
        out["surprisal"] = mpmath.inf if la[t] is None else -la[t]
        out["tv"] = mpmath.fsum(abs(_p(x) - _p(y)) for x, y in zip(la, lb)) / 2
        fin = [x for x in la if x is not None]
        for alpha in RENYI_ALPHAS:
            if alpha == 0:
                h = mpmath.log(len(fin))
                d = -mpmath.log(mpmath.fsum(mpmath.exp(y) for _, y in both)) if both else None
            elif math.isinf(alpha):
                h = -max(fin)
                d = mpmath.inf if miss else max(x - y for x, y in both)
            else:
                h = mpmath.log(mpmath.fsum(mpmath.exp(alpha * x) for x in fin)) / (1 - alpha)
                s = mpmath.fsum(mpmath.exp(alpha * x + (1 - alpha) * y) for x, y in both)
                d = mpmath.inf if (miss and alpha > 1) or not s else mpmath.log(s) / (alpha - 1)
            out[f"renyi_entropy[{alpha}]"] = h
            out[f"renyi_div[{alpha}]"] = mpmath.inf if d is None else d
    return out


RENYI_ALPHAS = (0.0, 0.5, 2.0, 3.0, math.inf)
#: Rényi divergences of order > 1 weigh p^alpha q^(1 - alpha): with log-probabilities near
#: -1e308 that amplifies the rounding of any float computation, so they are compared with
#: the reference only on the fixed cases below (whose huge entries have probability 0).
ILL_CONDITIONED = ("renyi_div[2.0]", "renyi_div[3.0]")


def calls(a: Any, b: Any, t: Any) -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {
        "entropy": lambda: entropy(logits=a),
        "kl": lambda: kl_divergence(p_logits=a, q_logits=b),
        "kl_reverse": lambda: kl_divergence(p_logits=b, q_logits=a),
        "cross_entropy": lambda: cross_entropy(p_logits=a, q_logits=b),
        "cross_entropy_reverse": lambda: cross_entropy(p_logits=b, q_logits=a),
        "js": lambda: js_divergence(p_logits=a, q_logits=b),
        "surprisal": lambda: surprisal(t, logits=a),
        "tv": lambda: total_variation(p_logits=a, q_logits=b),
    }
    for alpha in RENYI_ALPHAS:
        out[f"renyi_entropy[{alpha}]"] = lambda al=alpha: renyi_entropy(logits=a, alpha=al)
        out[f"renyi_div[{alpha}]"] = lambda al=alpha: renyi_divergence(
            p_logits=a, q_logits=b, alpha=al
        )
    return out


def values(x: Any) -> list[float]:
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64).reshape(-1).tolist()
    return np.asarray(x, dtype=np.float64).reshape(-1).tolist()


def check(got: float, ref: Any, what: str, rtol: float = 1e-12, atol: float = 1e-12) -> None:
    """``got`` equals the exact ``ref`` (a float64 overflow of ``ref`` must be +inf)."""
    r = float(ref)  # rounds a value beyond the float64 range to +-inf
    assert not math.isnan(got), f"{what}: got nan, exact {mpmath.nstr(ref, 17)}"
    if math.isinf(r):
        assert got == r, f"{what}: got {got!r}, exact {mpmath.nstr(ref, 17)}"
        return
    err = abs(got - r)
    assert err <= max(rtol * abs(r), atol), (
        f"{what}: got {got!r}, exact {mpmath.nstr(ref, 20)}, abs err {err:.3e}"
    )


def check_all(a: np.ndarray, b: np.ndarray, t: np.ndarray, how: str, skip: tuple = ()) -> None:
    """Every measure of the rows of ``a``, ``b`` on one path against the reference."""
    if how == "torch-grad":  # autograd: the array code, on torch
        ta = torch.tensor(a, requires_grad=True)
        tb = torch.tensor(b, requires_grad=True)
        ctx, args = kernel_path("any"), (ta, tb, torch.tensor(t))
    elif how == "torch":  # CPU tensors without grad: the compiled kernel, zero-copy
        ctx, args = kernel_path("native"), (torch.tensor(a), torch.tensor(b), torch.tensor(t))
    else:
        ctx, args = kernel_path(how), (a, b, t)
    refs = [mp_measures(a[i].tolist(), b[i].tolist(), int(t[i])) for i in range(a.shape[0])]
    failures = []
    with ctx as native_calls:
        got = {what: values(call()) for what, call in calls(*args).items() if what not in skip}
    if how == "torch-grad":
        assert not native_calls, "a tensor that requires grad reached the compiled kernel"
    for what, vals in got.items():
        for i, g in enumerate(vals):
            try:
                check(g, refs[i][what], f"{what} row {i} [{how}] a={a[i]} b={b[i]}")
            except AssertionError as exc:
                failures.append(str(exc))
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- +-1e308


def _huge_cases() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = [
        # the issue's cases: entropy 0 (was NaN), KL ln 2 (was 0), entropy ln 2
        ([1e308, -1e308], [1e308, 1e308]),
        ([1e308, 1e308], [1e308, -1e308]),
        ([-1e308, -1e308], [BIG, -BIG]),
        ([BIG, -BIG], [-BIG, BIG]),  # disjoint supports: JS = ln 2, KL = inf
        ([BIG, BIG], [BIG, BIG]),
        # the shifted logits are finite but near -1.8e308: exact, no overflow
        ([0.0, -8.9e307], [0.0, 0.0]),
        ([-1e308, -1.5e308], [-1.5e308, -1e308]),
        # several terms near -1.7e308 weighted ~1/V: their sum overflows, their mean not
        ([0.0, 0.0, 0.0, 0.0], [0.0, -1.7e308, -1.7e308, -1.7e308]),
        ([0.0, -1.7e308, -1.7e308, -1.7e308], [0.0, 0.0, 0.0, 0.0]),
        # -inf, huge and ordinary logits in one row
        ([1e308, NINF, -1e308, 5.0], [1e308, 1e308, NINF, 1e308]),
        ([3.0, -1e308, 1.0, 1e-300], [2.0, 1.0, -1e308, 0.5]),
    ]
    v = max(len(r[0]) for r in rows)
    a = np.full((len(rows), v), NINF)
    b = np.full((len(rows), v), NINF)
    for i, (x, y) in enumerate(rows):
        a[i, : len(x)] = x
        b[i, : len(y)] = y
    t = np.array([i % len(rows[i][0]) for i in range(len(rows))])
    return a, b, t


HUGE = _huge_cases()


@pytest.mark.parametrize("how", ["native", "array", "torch", "torch-grad"])
def test_huge_logits_are_exact(how: str) -> None:
    a, b, t = HUGE
    check_all(a, b, t, how)


def test_issue_examples() -> None:
    for how in ("native", "array"):
        with kernel_path(how):
            assert entropy(logits=[1e308, -1e308]) == 0.0
            assert entropy(logits=[1e308, 1e308]) == pytest.approx(LN2, rel=1e-15)
            kl = kl_divergence(p_logits=[1e308, -1e308], q_logits=[1e308, 1e308])
            assert kl == pytest.approx(LN2, rel=1e-15)
            assert surprisal(0, logits=[1e308, 1e308]) == pytest.approx(LN2, rel=1e-15)
            # p > 0 where q's log-probability is below the float64 range: +inf
            assert kl_divergence(p_logits=[1e308, 1e308], q_logits=[1e308, -1e308]) == math.inf


def test_huge_float32_and_tensor_float16() -> None:
    """The largest float32 and float16 logits (far from overflowing in float64)."""
    f32 = float(np.finfo(np.float32).max)
    a = np.array([[f32, -f32, 0.0], [f32, f32, -f32]], dtype=np.float32)
    with kernel_path("native"):
        assert entropy(logits=a).tolist() == [0.0, pytest.approx(LN2, rel=1e-7)]
        assert kl_divergence(p_logits=a, q_logits=a[::-1].copy()).tolist() == [
            pytest.approx(LN2, rel=1e-7),  # p = (1, 0, 0) vs q = (1/2, 1/2, 0)
            # q_2 = exp(-2 f32) is tiny but its log is in range: -log 2 + f32, finite
            pytest.approx(f32, rel=1e-15),
        ]
    h = torch.tensor([[65504.0, 65504.0, -65504.0]], dtype=torch.float16)
    for path in ("native", "array"):  # the kernel reads float16 itself; the array code too
        with kernel_path(path):
            assert float(entropy(logits=h)[0]) == pytest.approx(LN2, rel=1e-7)
            got = float(surprisal(torch.tensor([2]), logits=h)[0])
            assert got == pytest.approx(131008 + LN2)


_ISA_SCRIPT = """
import json, sys
import numpy as np
from infolens import _native
a, b, t = (np.array(x) for x in json.loads(sys.stdin.read()))
out = {}
for js, rank in ((True, True), (False, False)):
    r = _native.fused_rows(a, b, t.astype(np.int64), rank, js, 2)
    out.update({k: v.tolist() for k, v in r.items()})
r = _native.fused_rows(a, None, t.astype(np.int64), False, False, 1)
out["single_entropy"] = r["entropy_p"].tolist()
out["single_surprisal"] = r["surprisal_p"].tolist()
out["isa"] = _native.isa()
print(json.dumps(out))
"""


@pytest.mark.parametrize("isa", ["default", "avx2", "baseline"])
def test_huge_logits_every_instruction_set(isa: str) -> None:
    """The AVX-512, AVX2 and baseline copies of the kernel, forced one at a time."""
    pytest.importorskip("infolens._native", reason="compiled kernel not built")
    x86 = sys.platform.startswith("linux") and os.uname().machine == "x86_64"
    if isa != "default" and not x86:
        pytest.skip("x86-64 dispatch only")
    a, b, t = HUGE
    env = dict(os.environ)
    if isa != "default":
        env["INFOLENS_NATIVE_ISA"] = isa
    res = subprocess.run(
        [sys.executable, "-c", _ISA_SCRIPT],
        input=json.dumps([a.tolist(), b.tolist(), t.tolist()]),  # -inf as -Infinity
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    got = json.loads(res.stdout)
    if isa != "default" and got["isa"] != isa:
        pytest.skip(f"this CPU lacks {isa}")
    keys = {
        "entropy_p": "entropy",
        "single_entropy": "entropy",
        "kl_pq": "kl",
        "kl_qp": "kl_reverse",
        "cross_pq": "cross_entropy",
        "cross_qp": "cross_entropy_reverse",
        "js": "js",
        "surprisal_p": "surprisal",
        "single_surprisal": "surprisal",
    }
    for i in range(a.shape[0]):
        ref = mp_measures(a[i].tolist(), b[i].tolist(), int(t[i]))
        for k, what in keys.items():
            check(got[k][i], ref[what], f"{k} row {i} [{got['isa']}]")


# --------------------------------------------------------------------------- properties

#: every finite float64, with the extremes and ordinary values drawn often enough
finite64 = st.floats(allow_nan=False, allow_infinity=False)
extreme = st.sampled_from([BIG, -BIG, 1e308, -1e308, 8.9e307, -8.9e307, 5e-324, 0.0])
entry = st.one_of(finite64, finite64, extreme, st.floats(-40, 40), st.just(NINF))


@st.composite
def full_range_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 3))
    v = draw(st.integers(1, 6))
    a = np.array(draw(st.lists(entry, min_size=n * v, max_size=n * v))).reshape(n, v)
    b = np.array(draw(st.lists(entry, min_size=n * v, max_size=n * v))).reshape(n, v)
    for x in (a, b):  # every row needs one finite entry
        dead = np.all(np.isneginf(x), axis=1)
        x[dead, draw(st.integers(0, v - 1))] = draw(finite64)
    t = np.array(draw(st.lists(st.integers(0, v - 1), min_size=n, max_size=n)))
    return a, b, t


@settings(max_examples=60, deadline=None)
@given(full_range_pairs())
def test_full_range_logits_match_mpmath(case: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Logits from the whole finite float64 range: every measure on both kernels equals
    the 60-digit reference (+inf exactly where the contract says), never NaN."""
    a, b, t = case
    for how in ("native", "array"):
        check_all(a, b, t, how, skip=ILL_CONDITIONED)


@settings(max_examples=40, deadline=None)
@given(full_range_pairs())
def test_full_range_renyi_above_one_is_never_nan(
    case: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Orders > 1, ill-conditioned near -1e308 (see ILL_CONDITIONED): still never NaN or
    negative, and +inf wherever p > 0 = q; Rényi entropies finite and >= 0."""
    a, b, _ = case
    for alpha in (2.0, 3.0, 7.5, 1e300):
        got = renyi_divergence(p_logits=a, q_logits=b, alpha=alpha)
        assert not np.isnan(got).any() and (got >= 0).all(), (alpha, got)
        h = renyi_entropy(logits=a, alpha=alpha)
        assert np.isfinite(h).all() and (h >= 0).all(), (alpha, h)
        for i in range(a.shape[0]):
            la, lb = mp_logp(a[i].tolist()), mp_logp(b[i].tolist())
            miss = any(x is not None and y is None for x, y in zip(la, lb))
            assert (got[i] == math.inf) >= miss, (alpha, i, got[i])


# --------------------------------------------------------------------------- refused inputs


def _one_line(exc: pytest.ExceptionInfo[BaseException], *parts: str) -> None:
    msg = str(exc.value)
    assert isinstance(exc.value, InputError) and isinstance(exc.value, ValueError)
    assert "\n" not in msg, msg
    for part in parts:
        assert part in msg, (part, msg)


ARG_CALLS: list[tuple[str, Callable[[Any], Any]]] = [
    ("p", lambda x: entropy(x)),
    ("logits", lambda x: entropy(logits=x)),
    ("log_probs", lambda x: surprisal(0, log_probs=x)),
    ("q", lambda x: kl_divergence([0.5, 0.5], x)),
    ("p_logits", lambda x: js_divergence(p_logits=x, q_logits=[0.0, 0.0])),
    ("q_log_probs", lambda x: cross_entropy([0.5, 0.5], q_log_probs=x)),
    ("logits", lambda x: renyi_entropy(logits=x, alpha=2.0)),
    ("q_logits", lambda x: total_variation([0.5, 0.5], q_logits=x)),
]
BAD_DTYPES: list[tuple[str, Callable[[], Any]]] = [
    ("bool", lambda: np.array([True, False])),
    ("torch.bool", lambda: torch.tensor([True, False])),
    ("complex128", lambda: np.array([0.5 + 0j, 0.5 + 0j])),
    ("torch.complex64", lambda: torch.tensor([0.5 + 0.5j, 0.5 + 0j])),
    ("torch.complex128", lambda: torch.tensor([0.5, 0.5], dtype=torch.complex128)),
    ("<U3", lambda: np.array(["0.5", "0.5"])),
    ("object", lambda: np.array([0.5, None])),
    ("datetime64", lambda: np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[D]")),
]


@pytest.mark.parametrize(
    ("name", "call"), ARG_CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ARG_CALLS)]
)
@pytest.mark.parametrize(("dtype", "make"), BAD_DTYPES, ids=[d for d, _ in BAD_DTYPES])
def test_bool_complex_and_non_numbers_are_refused(
    name: str, call: Callable[[Any], Any], dtype: str, make: Callable[[], Any]
) -> None:
    with pytest.raises(InputError, match=rf"^{name}: expected an array of real numbers") as exc:
        call(make())
    _one_line(exc, dtype)


def test_torch_complex_is_not_cut_to_its_real_part() -> None:
    z = torch.tensor([0.5 + 0.1j, 0.5 - 0.1j])
    with pytest.raises(InputError, match=r"^p: .*torch\.complex64"):
        entropy(z)
    with pytest.raises(InputError, match=r"^q_logits: .*torch\.complex64"):
        kl_divergence(p_logits=torch.zeros(2), q_logits=z)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"])
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_integers_are_converted_exactly_to_float64(dtype: str, lib: str) -> None:
    counts = [[3, 0, 1, 6], [1, 1, 1, 1]]
    logits = (
        [[3, -2, 1, 6], [0, 1, 2, 3]] if not dtype.startswith("u") else [[3, 2, 1, 6], [0, 1, 2, 3]]
    )

    def arr(x: list[list[int]]) -> Any:
        return (
            torch.tensor(x, dtype=getattr(torch, dtype))
            if lib == "torch"
            else np.array(x, dtype=dtype)
        )

    def f64(x: list[list[int]]) -> Any:
        return (
            torch.tensor(x, dtype=torch.float64)
            if lib == "torch"
            else np.array(x, dtype=np.float64)
        )

    for got, want in [
        (entropy(arr(counts), normalize=True), entropy(f64(counts), normalize=True)),
        (entropy(logits=arr(logits)), entropy(logits=f64(logits))),
        (
            kl_divergence(p_logits=arr(logits), q_logits=arr(counts)),
            kl_divergence(p_logits=f64(logits), q_logits=f64(counts)),
        ),
        (
            surprisal(np.array([0, 3]), logits=arr(logits)),
            surprisal(np.array([0, 3]), logits=f64(logits)),
        ),
        (
            renyi_entropy(arr(counts), 2.0, normalize=True),
            renyi_entropy(f64(counts), 2.0, normalize=True),
        ),
    ]:
        assert type(got) is type(want)
        assert str(got.dtype) in ("float64", "torch.float64"), got.dtype
        assert values(got) == values(want)  # the same float64 values: bit-exact
    # and the values agree with scipy's, independently
    import scipy.stats

    np.testing.assert_allclose(
        values(entropy(arr(counts), normalize=True)),
        scipy.stats.entropy(np.array(counts, dtype=float), axis=1),
        rtol=1e-14,
    )


def test_integers_beyond_2_53_round_to_nearest_as_documented() -> None:
    x = as_array(np.array([2**53 + 1, 2**62 + 2**9 + 1], dtype=np.int64), "p")
    assert x.dtype == np.float64 and x.tolist() == [2.0**53, 2.0**62 + 2**10]
    t = as_array(torch.tensor([2**53 + 1]), "p")
    assert t.dtype == torch.float64 and t.tolist() == [2.0**53]


@pytest.mark.parametrize(
    ("dtype", "result"),
    [
        (">f8", np.float64),
        (">f4", np.float32),
        (">f2", np.float32),
        (">i4", np.float64),
        ("<f8", np.float64),
    ],
)
def test_non_native_byte_order_is_converted_exactly(dtype: str, result: type) -> None:
    rng = np.random.default_rng(3)
    a64 = rng.normal(size=(3, 5)) * 3
    b64 = rng.normal(size=(3, 5)) * 3
    if dtype.endswith("i4"):
        a64, b64 = np.round(a64), np.round(b64)
    native = np.dtype(dtype).newbyteorder("=")
    a_sw, b_sw = a64.astype(dtype), b64.astype(dtype)
    a_n, b_n = a64.astype(native), b64.astype(native)
    assert a_sw.tolist() == a_n.tolist()  # the same values, another byte order
    for how in ("native", "array") if native.kind == "f" and native.itemsize >= 4 else ("any",):
        with kernel_path(how):
            for fn in (kl_divergence, js_divergence, cross_entropy, total_variation):
                got = fn(p_logits=a_sw, q_logits=b_sw)
                want = fn(p_logits=a_n, q_logits=b_n)
                assert got.dtype == result, (fn.__name__, got.dtype)
                assert got.tolist() == want.tolist(), fn.__name__
            got = entropy(logits=a_sw)
            assert got.dtype == result and got.tolist() == entropy(logits=a_n).tolist()
    # probabilities too, and mixed with a torch tensor
    p = np.array([0.25, 0.75], dtype=">f8")
    assert entropy(p).dtype == np.float64
    assert float(entropy(p)) == float(entropy(np.array([0.25, 0.75])))
    mixed = kl_divergence(p, torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert float(mixed) == float(kl_divergence([0.25, 0.75], [0.5, 0.5]))


@pytest.mark.parametrize(
    ("mask", "came"),
    [
        (lambda: np.array([1.0, 0.0]), "float64"),
        (lambda: np.array([1, 0]), "int64"),
        (lambda: [1, 0], "int64"),
        (lambda: torch.tensor([1.0, 0.0]), "torch.float32"),
        (lambda: torch.tensor([1, 0]), "torch.int64"),
        (lambda: np.array(["a", "b"]), "<U1"),
        (lambda: 1.0, "float64"),
    ],
    ids=["np-float", "np-int", "list-int", "torch-float", "torch-int", "str", "python-float"],
)
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_where_must_be_bool(mask: Callable[[], Any], came: str, lib: str) -> None:
    x = np.zeros((2, 3)) if lib == "numpy" else torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(InputError, match=r"^where: expected a bool mask") as exc:
        entropy(logits=x, where=mask())
    _one_line(exc, came)


def test_where_accepts_bools() -> None:
    x = np.array([[0.0, 0.0], [0.0, -np.inf]])
    want = [LN2, 0.0]
    for w in ([True, False], np.array([True, False]), torch.tensor([True, False])):
        assert values(entropy(logits=x, where=w)) == pytest.approx(want, rel=1e-15)
    for w in (True, np.True_):
        assert values(entropy(logits=x, where=w)) == pytest.approx([LN2, 0.0], rel=1e-15)
    assert values(entropy(logits=x, where=False)) == [0.0, 0.0]


BAD_REALS = [
    ("2", "str '2'"),
    (b"2", "bytes b'2'"),
    (True, "bool True"),
    (np.True_, "bool"),
    (None, "NoneType None"),
    ([2.0], "list [2.0]"),
    (np.array([2.0]), "ndarray of shape (1,)"),
    (torch.tensor([2.0]), "Tensor of shape (1,)"),
    (torch.tensor(True), "torch.bool"),
    (2 + 0j, "complex"),
]


@pytest.mark.parametrize(("value", "came"), BAD_REALS, ids=[c for _, c in BAD_REALS])
def test_alpha_must_be_a_real_number(value: Any, came: str) -> None:
    for call in (
        lambda: renyi_entropy([0.5, 0.5], value),
        lambda: renyi_divergence([0.5, 0.5], [0.25, 0.75], alpha=value),
    ):
        with pytest.raises(InputError, match=r"^alpha: expected an order >= 0") as exc:
            call()
        _one_line(exc, came)


@pytest.mark.parametrize(
    ("value", "came"),
    [v for v in BAD_REALS if v[0] is not None],
    ids=[c for v, c in BAD_REALS if v is not None],
)
def test_base_must_be_a_real_number(value: Any, came: str) -> None:
    for call in (
        lambda: entropy([0.5, 0.5], base=value),
        lambda: kl_divergence([0.5, 0.5], [0.25, 0.75], base=value),
        lambda: surprisal(0, [0.5, 0.5], base=value),
    ):
        with pytest.raises(
            InputError, match=r"^base: expected a positive number other than 1"
        ) as exc:
            call()
        _one_line(exc, came)


@pytest.mark.parametrize(
    "alpha", [2, 2.0, np.float32(2), np.int64(2), np.array(2.0), torch.tensor(2.0), Fraction(2)]
)
def test_real_numbers_are_accepted_for_alpha_and_base(alpha: Any) -> None:
    p, q = [0.5, 0.25, 0.25], [0.25, 0.25, 0.5]
    # closed forms: H_2 = -log sum p^2, D_2 = log sum p^2 / q
    assert float(renyi_entropy(p, alpha)) == pytest.approx(-math.log(0.375), rel=1e-15)
    assert float(renyi_divergence(p, q, alpha)) == pytest.approx(math.log(1.375), rel=1e-14)
    assert float(entropy([0.5, 0.5], base=alpha)) == pytest.approx(1.0, rel=1e-15)


@pytest.mark.parametrize(
    ("value", "came"),
    [
        ("no", "str 'no'"),
        (0, "int 0"),
        (1, "int 1"),
        (None, "NoneType"),
        (np.array(True), "ndarray"),
        (1.0, "float"),
    ],
)
def test_normalize_must_be_a_bool(value: Any, came: str) -> None:
    for call in (
        lambda: entropy([3.0, 1.0], normalize=value),
        lambda: kl_divergence([3.0, 1.0], [1.0, 1.0], normalize=value),
        lambda: renyi_entropy([3.0, 1.0], 2.0, normalize=value),
        lambda: total_variation([3.0, 1.0], [1.0, 1.0], normalize=value),
    ):
        with pytest.raises(InputError, match=r"^normalize: expected True or False") as exc:
            call()
        _one_line(exc, came)
    # numpy bools are bools
    assert float(entropy([3.0, 1.0], normalize=np.True_)) == pytest.approx(
        0.5623351446188083, rel=1e-15
    )
    with pytest.raises(InputError, match=r"^p: expected probabilities that sum to 1"):
        entropy([3.0, 1.0], normalize=np.False_)


@pytest.mark.parametrize(
    ("value", "came"),
    [(1.5, "float 1.5"), (True, "bool True"), ("0", "str '0'"), (None, "NoneType")],
)
def test_axis_must_be_an_integer(value: Any, came: str) -> None:
    with pytest.raises(InputError, match=r"^axis: expected an integer axis") as exc:
        entropy(np.full((2, 2), 0.5), axis=value)
    _one_line(exc, came)
    assert entropy(np.full((2, 2), 0.5), axis=np.int64(0)).tolist() == [LN2, LN2]
