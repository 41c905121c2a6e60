"""The compiled row kernel (``infolens._native``) against the numpy array path and mpmath."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from infolens import _kernels

_native = pytest.importorskip("infolens._native", reason="compiled kernel not built")
mpmath = pytest.importorskip("mpmath")
hyp = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
hnp = pytest.importorskip("hypothesis.extra.numpy")
given, settings = hyp.given, hyp.settings

NINF = -np.inf
FLOAT_KEYS = (
    "lse_p",
    "entropy_p",
    "lse_q",
    "entropy_q",
    "kl_pq",
    "kl_qp",
    "cross_pq",
    "cross_qp",
    "surprisal_p",
    "surprisal_q",
    "js",
)
INT_KEYS = ("argmax_p", "argmax_q", "rank_p", "rank_q")


def native(a, b=None, t=None, rank=False, threads=1, js=True):
    return _native.fused_rows(a, b, t, rank, js, threads)


def array_path(a, b=None, t=None, rank=False, js=True):
    with np.errstate(all="ignore"):
        return _kernels._chunk(_kernels._Ops(False), a, b, t, js, rank)


def expected_keys(b, t, rank, js=True):
    keys = {"lse_p", "entropy_p", "max_p"}
    if b is not None:
        keys |= {"lse_q", "entropy_q", "max_q", "kl_pq", "kl_qp", "cross_pq", "cross_qp"}
        keys |= {"argmax_p", "argmax_q"} | ({"js"} if js else set())
    if t is not None:
        keys |= {"surprisal_p"} | ({"surprisal_q"} if b is not None else set())
        if rank:
            keys |= {"rank_p"} | ({"rank_q"} if b is not None else set())
    return keys


def assert_close(got, want, rtol, atol, what=""):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    inf_w = np.isinf(want)
    np.testing.assert_array_equal(np.isinf(got), inf_w, err_msg=f"{what}: inf pattern")
    np.testing.assert_array_equal(got[inf_w], want[inf_w], err_msg=f"{what}: inf sign")
    np.testing.assert_allclose(got[~inf_w], want[~inf_w], rtol=rtol, atol=atol, err_msg=what)


# --------------------------------------------------------------------------- mpmath reference


def mp_row(a, b=None, t=None):
    """Exact (50-digit) statistics of one row, from the float values as given."""
    mp = mpmath.mp
    with mpmath.workdps(50):

        def stats(x):
            fin = [mp.mpf(float(v)) for v in x if v != NINF]
            lse = mp.log(mp.fsum(mp.exp(v) for v in fin))
            logp = [None if v == NINF else mp.mpf(float(v)) - lse for v in x]
            return lse, logp

        lse_a, lpa = stats(a)
        out = {"lse_p": lse_a}
        out["entropy_p"] = -mp.fsum(mp.exp(lp) * lp for lp in lpa if lp is not None)
        if b is not None:
            lse_b, lpb = stats(b)
            out["lse_q"] = lse_b
            out["entropy_q"] = -mp.fsum(mp.exp(lp) * lp for lp in lpb if lp is not None)

            def kl_ce(lx, ly):
                if any(x is not None and y is None for x, y in zip(lx, ly)):
                    return mp.inf, mp.inf
                kl = mp.fsum(mp.exp(x) * (x - y) for x, y in zip(lx, ly) if x is not None)
                ce = -mp.fsum(mp.exp(x) * y for x, y in zip(lx, ly) if x is not None)
                return kl, ce

            out["kl_pq"], out["cross_pq"] = kl_ce(lpa, lpb)
            out["kl_qp"], out["cross_qp"] = kl_ce(lpb, lpa)
            js = mp.mpf(0)
            for x, y in zip(lpa, lpb):
                p = mp.mpf(0) if x is None else mp.exp(x)
                q = mp.mpf(0) if y is None else mp.exp(y)
                m = (p + q) / 2
                js += (p * mp.log(p / m) if p else 0) + (q * mp.log(q / m) if q else 0)
            out["js"] = js / 2
        if t is not None:
            out["surprisal_p"] = mp.inf if a[t] == NINF else lse_a - mp.mpf(float(a[t]))
            if b is not None:
                out["surprisal_q"] = mp.inf if b[t] == NINF else out["lse_q"] - mp.mpf(float(b[t]))
        return {k: float(v) for k, v in out.items()}


def check_vs_mpmath(a, b, t, rtol, atol):
    res = native(a, b, t, rank=t is not None, threads=2)
    for r in range(a.shape[0]):
        ref = mp_row(a[r], None if b is None else b[r], None if t is None else int(t[r]))
        for k, v in ref.items():
            assert_close(res[k][r], v, rtol, atol, what=f"{k} row {r}")


# --------------------------------------------------------------------------- strategies

finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)
moderate = st.floats(-30, 30, allow_nan=False, allow_infinity=False, width=32)
entry = st.one_of(finite, moderate, moderate, st.just(NINF))


@st.composite
def logit_pair(draw, max_v=13):
    n = draw(st.integers(1, 3))
    v = draw(st.integers(1, max_v))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    a = np.array(draw(st.lists(entry, min_size=n * v, max_size=n * v)), dtype=dtype)
    b = np.array(draw(st.lists(entry, min_size=n * v, max_size=n * v)), dtype=dtype)
    a, b = a.reshape(n, v), b.reshape(n, v)
    if draw(st.booleans()):  # often q shares p's support
        b[np.isneginf(a)] = NINF
        b[np.isneginf(b) & ~np.isneginf(a)] = 0.0
    # every row needs one finite entry
    for x in (a, b):
        dead = np.all(np.isneginf(x), axis=1)
        x[dead, draw(st.integers(0, v - 1))] = draw(moderate)
    t = np.array(draw(st.lists(st.integers(0, v - 1), min_size=n, max_size=n)), dtype=np.int64)
    return a, b, t


# --------------------------------------------------------------------------- tests


@settings(max_examples=120, deadline=None)
@given(logit_pair())
def test_matches_mpmath(case):
    a, b, t = case
    f64 = a.dtype == np.float64
    # float64 must be within 1e-12; float32 inputs are computed in double too, but the
    # documented contract for them is 1e-5 relative / 1e-6 absolute
    rtol, atol = (1e-12, 1e-12) if f64 else (1e-5, 1e-6)
    check_vs_mpmath(a, b, t, rtol, atol)
    check_vs_mpmath(a, None, t, rtol, atol)


@settings(max_examples=80, deadline=None)
@given(logit_pair(max_v=40), st.booleans())
def test_matches_array_path(case, with_b):
    a, b, t = case
    b = b if with_b else None
    got = native(a, b, t, rank=True)
    want = array_path(a, b, t, rank=True)
    assert set(got) == expected_keys(b, t, True)
    assert set(native(a, b, t, rank=True, js=False)) == expected_keys(b, t, True, js=False)
    for k in FLOAT_KEYS:
        if k in want:
            assert_close(got[k], want[k], 1e-11, 1e-11, what=k)
    for k in INT_KEYS:
        if k in want:
            assert got[k].dtype == np.int64
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    np.testing.assert_array_equal(got["max_p"], np.max(a, axis=1).astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("v", [1, 7, 8, 9, 1003])
def test_random_rows_and_threads(dtype, v):
    rng = np.random.default_rng(v)
    n = 37
    a = (rng.standard_normal((n, v)) * 3).astype(dtype)
    b = (rng.standard_normal((n, v)) * 3).astype(dtype)
    a[rng.random((n, v)) < 0.05] = NINF
    b[rng.random((n, v)) < 0.05] = NINF
    a[:, 0] = np.where(np.isneginf(a[:, 0]), 0.0, a[:, 0])
    b[:, 0] = np.where(np.isneginf(b[:, 0]), 0.0, b[:, 0])
    a[3] = a[3, 0]  # ties: argmax is the first index, ranks count strict greater
    t = rng.integers(0, v, n)
    one = native(a, b, t, rank=True, threads=1)
    for threads in (2, 3, 64):
        many = native(a, b, t, rank=True, threads=threads)
        for k in one:
            np.testing.assert_array_equal(one[k], many[k], err_msg=f"{k} threads={threads}")
    want = array_path(a, b, t, rank=True)
    for k in want:
        if k in FLOAT_KEYS:
            assert_close(one[k], want[k], 1e-12, 1e-12, what=k)
        else:
            np.testing.assert_array_equal(one[k], want[k], err_msg=k)


def test_support_mismatch_is_inf_even_when_underflowed():
    # p puts ~e^-2000 on index 1, where q is -inf: still infinite KL(p||q) and H(p,q)
    a = np.array([[0.0, -2000.0, 1.0]])
    b = np.array([[0.0, NINF, 2.0]])
    r = native(a, b)
    assert r["kl_pq"][0] == np.inf and r["cross_pq"][0] == np.inf
    assert np.isfinite(r["kl_qp"][0]) and np.isfinite(r["cross_qp"][0])
    # both -inf at the same index: no mismatch
    r = native(np.array([[0.0, NINF]]), np.array([[1.0, NINF]]))
    assert r["kl_pq"][0] == 0.0 and r["kl_qp"][0] == 0.0


def test_surprisal_of_impossible_target():
    a = np.array([[0.0, NINF, 1.0]], dtype=np.float32)
    r = native(a, a.copy(), np.array([1]), rank=True)
    assert r["surprisal_p"][0] == np.inf and r["surprisal_q"][0] == np.inf
    assert r["rank_p"][0] == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bad_rows_report_max_and_do_not_hang(dtype):
    a = np.zeros((4, 21), dtype=dtype)
    a[0, 3] = np.nan
    a[1, 20] = np.inf
    a[2] = NINF
    a[3, 5] = np.inf
    a[3, 6] = np.nan
    b = np.zeros_like(a)
    for bb in (None, b, a):
        r = native(a, bb, np.zeros(4, dtype=np.int64), rank=True, threads=2)
        assert np.isnan(r["max_p"][0]) and np.isnan(r["max_p"][3])
        assert r["max_p"][1] == np.inf and r["max_p"][2] == -np.inf


def test_public_entry_point_uses_native_and_validates(monkeypatch):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 50))
    b = rng.standard_normal((5, 50))
    fast = _kernels.fused_rows(a, b, np.arange(5), rank=True).as_dict()
    monkeypatch.setattr(_kernels, "_native", None)
    slow = _kernels.fused_rows(a, b, np.arange(5), rank=True).as_dict()
    assert set(fast) == set(slow)
    for k in fast:
        np.testing.assert_allclose(fast[k], slow[k], rtol=1e-12, atol=1e-12, err_msg=k)
    monkeypatch.undo()
    bad = a.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _kernels.fused_rows(bad, b)
    bad[2] = -np.inf
    with pytest.raises(ValueError, match="all -inf"):
        _kernels.fused_rows(a, bad)


def test_argument_checks():
    a = np.zeros((2, 3))
    with pytest.raises(ValueError):
        native(np.zeros((2, 6))[:, ::2])
    with pytest.raises(ValueError):
        native(a, a.astype(np.float32))
    with pytest.raises(ValueError):
        native(a.astype(np.int32))
    with pytest.raises(ValueError):  # uint16 only as bfloat16 bits, with the flag
        native(a.astype(np.uint16))
    with pytest.raises(ValueError):
        _native.fused_rows(a.astype(np.float16), None, None, False, False, 1, True)
    with pytest.raises(ValueError):
        native(a, None, np.array([0, 3]))
    with pytest.raises(TypeError):
        native([[0.0]])


_ISA_SCRIPT = """
import sys, numpy as np
from infolens import _native
rng = np.random.default_rng(5)
a = (rng.standard_normal((9, 203)) * 4).astype(sys.argv[1])
b = (rng.standard_normal((9, 203)) * 4).astype(sys.argv[1])
a[a < -5] = -np.inf
b[b < -5] = -np.inf
b[3] = a[3]  # JS exactly 0
r = _native.fused_rows(a, b, np.arange(9, dtype=np.int64), True, True, 2)
assert r["js"][3] == 0.0
np.savez(sys.argv[2], isa=_native.isa(), **r)
"""


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_instruction_set_variants_agree(tmp_path, dtype):
    """Each compiled variant (forced with INFOLENS_NATIVE_ISA) gives the same numbers."""
    if not sys.platform.startswith("linux") or os.uname().machine != "x86_64":
        pytest.skip("x86-64 dispatch only")
    results = {}
    for isa in ("default", "avx2", "baseline"):
        env = dict(os.environ)
        if isa != "default":
            env["INFOLENS_NATIVE_ISA"] = isa
        out = tmp_path / f"{isa}.npz"
        subprocess.run([sys.executable, "-c", _ISA_SCRIPT, dtype, str(out)], env=env, check=True)
        results[isa] = dict(np.load(out))
    ref = results["default"]
    for isa in ("avx2", "baseline"):
        if str(results[isa]["isa"]) != isa:  # this CPU lacks it
            continue
        for k in ref:
            if k == "isa":
                continue
            if k in FLOAT_KEYS:
                assert_close(results[isa][k], ref[k], 1e-13, 1e-13, what=f"{isa} {k}")
            else:
                np.testing.assert_array_equal(results[isa][k], ref[k], err_msg=f"{isa} {k}")


# --------------------------------------------------------------------------- Jensen-Shannon


@settings(max_examples=60, deadline=None)
@given(logit_pair(max_v=40))
def test_js_identical_rows_exactly_zero_symmetric_bounded(case):
    a, b, _ = case
    for path in (native, array_path):
        assert (path(a, a.copy())["js"] == 0.0).all(), path
        assert not np.signbit(path(a, a.copy())["js"]).any()
        ab, ba = path(a, b)["js"], path(b, a)["js"]
        np.testing.assert_allclose(ab, ba, rtol=1e-15, atol=0)
        assert ((ab >= 0) & (ab <= np.log(2.0))).all(), ab


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_js_edge_cases(dtype):
    ln2 = np.log(2.0)
    a = np.array([[0.0, NINF, 1.0, NINF], [0.0, 1e4, -1e4, 3.0], [5.0, NINF, NINF, NINF]])
    b = np.array([[NINF, 0.0, NINF, 2.0], [0.0, -1e4, 1e4, 3.0], [5.0, NINF, NINF, NINF]])
    a, b = a.astype(dtype), b.astype(dtype)
    for path in (native, array_path):
        js = path(a, b)["js"]
        assert js[2] == 0.0  # one shared point
        # disjoint supports; all mass on index 1 vs index 2 (the rest ~e^-1e4)
        np.testing.assert_allclose(js[:2], ln2, rtol=1e-15)
    # the mixture is almost all q: terms with p ~ e^-2e4 vanish, no overflow anywhere
    c = np.array([[0.0, -2e4, 3.0]], dtype=dtype)
    d = np.array([[-2e4, 0.0, 3.0]], dtype=dtype)
    assert_close(native(c, d)["js"], array_path(c, d)["js"], 1e-13, 1e-16, what="far")


def test_js_public_entry_point_uses_native(monkeypatch):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((6, 300)) * 4
    b = a + rng.standard_normal((6, 300)) * 0.1
    a[:, 5] = NINF
    calls = []
    real = _native.fused_rows
    monkeypatch.setattr(
        _kernels, "_native", type("N", (), {"fused_rows": lambda *x: calls.append(1) or real(*x)})
    )
    fast = _kernels.fused_rows(a, b, js=True).js
    assert calls
    monkeypatch.setattr(_kernels, "_native", None)
    slow = _kernels.fused_rows(a, b, js=True).js
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-15)
    monkeypatch.undo()
    assert (_kernels.fused_rows(a, a.copy(), js=True).js == 0.0).all()


def test_js_torch_exact_zero_and_cpu_native():
    torch = pytest.importorskip("torch")
    from infolens import compare_logits, js_divergence

    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 5, 50)).astype(np.float32) * 3
    x[..., 7] = NINF
    t = rng.integers(0, 50, (2, 5))
    assert compare_logits(x, x.copy(), t)["js"] == 0.0
    assert compare_logits(torch.from_numpy(x), torch.from_numpy(x.copy()), t)["js"] == 0.0
    a = torch.tensor(x[0], dtype=torch.float64, requires_grad=True)
    js = js_divergence(p_logits=a, q_logits=a.detach().clone())  # array path, autograd
    assert (js == 0.0).all()
    js.sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()


# --------------------------------------------------------------------------- half precision

_HALF_SCRIPT = """
import sys, numpy as np
from infolens import _native
# every finite float16 and bfloat16 bit pattern, read by the kernel's vector loads (rows of 8)
# and by its scalar tail loads (rows of 5); the row maximum is the widened value itself
h = np.arange(65536, dtype=np.uint16)
for kind in ("f16", "bf16"):
    vals = h.view(np.float16).astype(np.float64) if kind == "f16" else (
        (h.astype(np.uint32) << 16).view(np.float32).astype(np.float64))
    fin = np.isfinite(vals)
    for w in (8, 5):
        n = fin.sum() // w * w
        bits, ref = h[fin][:n].reshape(-1, w), vals[fin][:n].reshape(-1, w)
        arg = bits.view(np.float16) if kind == "f16" else bits
        r = _native.fused_rows(np.ascontiguousarray(arg), None, None, False, False, 1, kind == "bf16")
        e = _native.fused_rows(np.ascontiguousarray(ref), None, None, False, False, 1)
        assert np.array_equal(r["max_p"], ref.max(axis=1)), (kind, w)
        assert np.array_equal(r["entropy_p"], e["entropy_p"]), (kind, w)
    # inf and NaN patterns reach the row checks (max is +inf or NaN)
    special = h[~fin]
    arg = special.view(np.float16) if kind == "f16" else special
    r = _native.fused_rows(np.ascontiguousarray(arg.reshape(-1, 1)), None, None, False, False, 1, kind == "bf16")
    ref = vals[~fin]
    assert np.array_equal(r["max_p"], ref, equal_nan=True), kind
print(_native.isa())
"""


@pytest.mark.parametrize("isa", ["default", "avx2", "baseline"])
def test_half_precision_loads_exact_for_every_bit_pattern(isa):
    """Each compiled variant widens all 65,536 float16 and bfloat16 patterns exactly."""
    env = dict(os.environ)
    if isa != "default":
        if not sys.platform.startswith("linux") or os.uname().machine != "x86_64":
            pytest.skip("x86-64 dispatch only")
        env["INFOLENS_NATIVE_ISA"] = isa
    subprocess.run([sys.executable, "-c", _HALF_SCRIPT], env=env, check=True)


@settings(max_examples=40, deadline=None)
@given(logit_pair(max_v=40))
def test_half_precision_equals_the_widened_float64_rows(case):
    """float16 (numpy) and bfloat16/float16 (torch) rows give exactly the numbers of the same
    values widened to float64: the kernel widens as it reads."""
    a, b, _ = case
    with np.errstate(over="ignore"):
        a16, b16 = a.astype(np.float16), b.astype(np.float16)
    a16[np.isnan(a16) | np.isposinf(a16)] = 0
    b16[np.isnan(b16) | np.isposinf(b16)] = 0
    a16[:, 0], b16[:, 0] = 0, 0  # no all -inf rows
    targets = np.zeros(a.shape[0], dtype=np.int64)
    got = _kernels.fused_rows(a16, b16, targets, js=True, rank=True).as_dict()
    ref = _kernels.fused_rows(
        a16.astype(np.float64), b16.astype(np.float64), targets, js=True, rank=True
    ).as_dict()
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    torch = pytest.importorskip("torch")
    for dt in (torch.bfloat16, torch.float16):
        ta, tb = torch.from_numpy(a16.astype(np.float32)).to(dt), torch.from_numpy(b16.astype(np.float32)).to(dt)
        got = _kernels.fused_rows(ta, tb, torch.from_numpy(targets), js=True, rank=True).as_dict()
        ref = _kernels.fused_rows(ta.double(), tb.double(), torch.from_numpy(targets), js=True, rank=True).as_dict()
        for k in ref:
            np.testing.assert_array_equal(got[k].numpy(), ref[k].numpy(), err_msg=f"{dt} {k}")
