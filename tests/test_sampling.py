"""infolens.sampling: parity with transformers' warpers, llama.cpp's chain order, step
reports, the entropy-temperature curve and its inverse.

References are independent: transformers' own warpers and ``generate()``'s processor list,
hand-computed probabilities, mpmath, and float64 torch loops.
"""

from __future__ import annotations

import itertools
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from infolens import sampling as S
from infolens.errors import InputError

torch = pytest.importorskip("torch")

INF = float("-inf")


def _transformers():
    return pytest.importorskip("transformers.generation.logits_process")


def logits(kind: str, dtype, n: int = 12, v: int = 257, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if kind == "ties":  # few distinct values: many ties at every cut
        x = torch.randint(-4, 5, (n, v), generator=g).float() * 0.75
    else:
        x = torch.randn(n, v, generator=g) * 3
    if kind in ("neginf", "ties"):
        x[torch.rand(n, v, generator=g) < 0.3] = INF
        x[:, 0] = 1.0  # every row keeps a finite entry
    return x.to(dtype)


DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
KINDS = ["plain", "neginf", "ties"]


def _warpers():
    L = _transformers()
    return {
        "top_k": (
            lambda v, m: L.TopKLogitsWarper(v, min_tokens_to_keep=m),
            S.top_k,
            [1, 2, 10, 300],
        ),
        "top_p": (
            lambda v, m: L.TopPLogitsWarper(v, min_tokens_to_keep=m),
            S.top_p,
            [0.0, 0.1, 0.5, 0.9, 0.99, 1.0],
        ),
        "min_p": (
            lambda v, m: L.MinPLogitsWarper(v, min_tokens_to_keep=m),
            S.min_p,
            [0.0, 0.05, 0.3, 1.0],
        ),
        "typical_p": (
            lambda v, m: L.TypicalLogitsWarper(v, min_tokens_to_keep=m),
            S.typical_p,
            [0.2, 0.5, 0.9, 0.99],
        ),
        "epsilon": (
            lambda v, m: L.EpsilonLogitsWarper(v, min_tokens_to_keep=m),
            S.epsilon_cutoff,
            [1e-4, 3e-3, 0.05, 0.5],
        ),
        "eta": (
            lambda v, m: L.EtaLogitsWarper(v, min_tokens_to_keep=m),
            S.eta_cutoff,
            [1e-4, 3e-3, 0.05, 0.5],
        ),
    }


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("step", ["top_k", "top_p", "min_p", "typical_p", "epsilon", "eta"])
def test_torch_identical_to_transformers(step, kind, dtype):
    make, ours, values = _warpers()[step]
    x = logits(kind, dtype)
    for v, m in itertools.product(values, [1, 3]):
        ref = make(v, m)(None, x.clone())
        got = ours(x, v, min_tokens_to_keep=m)
        assert got.dtype == x.dtype and got.shape == x.shape
        assert torch.equal(got, ref), (step, kind, dtype, v, m)
    assert torch.equal(x, logits(kind, dtype))  # the input is not modified


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", ["plain", "ties"])
def test_top_h_and_temperature_identical(kind, dtype):
    L = _transformers()
    x = logits(kind, dtype)
    for a in (0.1, 0.4, 0.9, 1.0):
        assert torch.equal(S.top_h(x, a), L.TopHLogitsWarper(a)(None, x.clone())), a
    for t in (0.3, 0.7, 1.0, 1.7):
        assert torch.equal(S.temperature(x, t), L.TemperatureLogitsWarper(t)(None, x.clone()))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("ties", [False, True])
def test_top_p_after_top_k_identical(dtype, ties):
    # few finite entries: the CPU path avoids the full sort, and must not show it
    L = _transformers()
    g = torch.Generator().manual_seed(1)
    v = 5000
    for trial in range(4):
        if ties:
            x = (torch.randint(-3, 4, (8, v), generator=g).float() * 0.5).to(dtype)
        else:
            x = (torch.randn(8, v, generator=g) * 3).to(dtype)
        for k, p, m in itertools.product([1, 7, 50, 400], [0.0, 0.5, 0.9, 0.95, 1.0], [1, 2, 9]):
            xk = L.TopKLogitsWarper(k)(None, x)
            ref = L.TopPLogitsWarper(p, min_tokens_to_keep=m)(None, xk.clone())
            assert torch.equal(S.top_p(xk, p, min_tokens_to_keep=m), ref), (trial, k, p, m)


def _processors(**cfg):
    transformers = pytest.importorskip("transformers")
    from transformers.generation.utils import GenerationMixin

    class Dummy:  # _get_logits_processor needs only this of the model
        _merge_criteria_processor_list = GenerationMixin._merge_criteria_processor_list

    g = transformers.GenerationConfig(do_sample=True, **cfg)
    g._eos_token_tensor = None
    return GenerationMixin._get_logits_processor(Dummy(), g, device="cpu")


CHAINS = [
    {"temperature": 0.7, "top_k": 50, "top_p": 0.9, "min_p": 0.05},
    {"temperature": 1.3, "top_p": 0.95, "typical_p": 0.9},
    {"temperature": 0.9, "top_h": 0.6, "top_k": 40, "epsilon_cutoff": 3e-4, "eta_cutoff": 1e-3},
    {"top_k": 5, "top_p": 1.0, "typical_p": 1.0, "temperature": 1.0},
    {"min_p": 0.1},
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("cfg", CHAINS, ids=lambda c: ",".join(c))
def test_apply_equals_generate_processor_list(cfg, dtype):
    procs = _processors(**cfg)
    kw = {{"epsilon_cutoff": "epsilon", "eta_cutoff": "eta"}.get(k, k): v for k, v in cfg.items()}
    for kind in KINDS:
        x = logits(kind, dtype, v=3000)
        ref = x.clone()
        for p in procs:
            ref = p(None, ref)
        assert torch.equal(S.apply(x, **kw), ref), kind
        # leading axes are batch axes
        got = S.apply(x.reshape(3, 4, -1), **kw)
        assert got.shape == (3, 4, x.shape[-1]) and torch.equal(got.reshape(x.shape), ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("kind", ["plain", "neginf"])
def test_numpy_equals_torch_and_transformers(kind, dtype):
    L = _transformers()
    tdt = {np.float32: torch.float32, np.float64: torch.float64, np.float16: torch.float16}[dtype]
    x = logits(kind, tdt)
    if dtype == np.float16:  # float16 randn has ties, which the two sorts order differently
        g = torch.Generator().manual_seed(2)
        perm = torch.stack([torch.randperm(x.shape[-1], generator=g) for _ in range(x.shape[0])])
        x = torch.where(x == INF, x, ((perm - 128) * 0.03).to(tdt))
    xn = x.numpy()
    for step, (make, ours, values) in _warpers().items():
        for v, m in itertools.product(values, [1, 3]):
            got = ours(xn, v, min_tokens_to_keep=m)
            assert isinstance(got, np.ndarray) and got.dtype == dtype
            np.testing.assert_array_equal(got, make(v, m)(None, x.clone()).numpy(), err_msg=step)
            np.testing.assert_array_equal(got, ours(x, v, min_tokens_to_keep=m).numpy())
    for t in (0.3, 0.7, 1.7):
        np.testing.assert_array_equal(
            S.temperature(xn, t), L.TemperatureLogitsWarper(t)(None, x.clone()).numpy()
        )
    for a in (0.1, 0.5, 0.9):  # alpha = 1 puts the cut exactly at the total: rounding
        if kind == "plain":
            np.testing.assert_array_equal(S.top_h(xn, a), L.TopHLogitsWarper(a)(None, x).numpy())
    np.testing.assert_array_equal(S.apply(xn, **CHAINS[0]), S.apply(x, **CHAINS[0]).numpy())


def test_numpy_ties_keep_whole_groups_or_later_indices():
    # numpy breaks ties by index (stable sort); the count kept matches torch
    x = logits("ties", torch.float32)
    for p in (0.3, 0.6, 0.9):
        a, b = S.top_p(x.numpy(), p), S.top_p(x, p).numpy()
        np.testing.assert_array_equal(np.isfinite(a).sum(-1), np.isfinite(b).sum(-1))


def test_lists_and_integers_become_float64():
    out = S.top_k([[3, 1, 2]], 2)
    assert out.dtype == np.float64 and out.tolist() == [[3.0, INF, 2.0]]


# --------------------------------------------------------------------------- other steps


def test_top_n_sigma_follows_llama_cpp():
    z = np.array([[5.0, 4.0, 1.0, 0.0, -2.0, INF], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    fin = z[0][np.isfinite(z[0])]
    sigma = math.sqrt(sum((v - fin.mean()) ** 2 for v in fin) / fin.size)  # population
    for n in (0.5, 1.0, 1.5, 3.0):
        keep = z[0] >= 5.0 - n * sigma
        got = S.top_n_sigma(z, n)
        np.testing.assert_array_equal(np.isfinite(got[0]), keep)
        np.testing.assert_array_equal(got[1], z[1])  # sigma 0: all tied at the max stay
    # temperature-invariant, torch equal to numpy, min_tokens_to_keep
    np.testing.assert_array_equal(
        np.isfinite(S.top_n_sigma(z / 0.3, 1.0)), np.isfinite(S.top_n_sigma(z, 1.0))
    )
    np.testing.assert_array_equal(
        S.top_n_sigma(torch.from_numpy(z), 1.0).numpy(), S.top_n_sigma(z, 1.0)
    )
    assert np.isfinite(S.top_n_sigma(z, 0.01, min_tokens_to_keep=3)[0]).sum() == 3


def test_llama_cpp_order_hand_made():
    # llama.cpp's default chain: top-k, top-p, min-p, then temperature last
    z = np.log(np.array([0.40, 0.25, 0.15, 0.10, 0.06, 0.04]))
    out = S.apply(z, top_k=5, top_p=0.8, min_p=0.4, temperature=2.0, order="llama.cpp")
    # top-k 5 drops 0.04; renormalised 0.4167, 0.2604, 0.1563, 0.1042, 0.0625: top-p 0.8
    # removes ascending cumulative mass <= 0.2 (0.0625, 0.1042); min-p 0.4 of the max
    # 0.5 (renormalised 0.5, 0.3125, 0.1875) removes 0.1875 < 0.2; then z / 2
    expect = np.array([z[0] / 2, z[1] / 2, INF, INF, INF, INF])
    np.testing.assert_allclose(out, expect)
    # transformers' order divides first: p ~ sqrt(p) is flatter, and top-k, top-p, min-p
    # then keep 4 tokens (renormalised 0.345, 0.272, 0.211, 0.172 after top-p; all
    # above 0.4 * 0.345)
    hf = S.apply(z, top_k=5, top_p=0.8, min_p=0.4, temperature=2.0)
    assert np.isfinite(hf).sum() == 4
    # an explicit order
    same = S.apply(
        z,
        top_k=5,
        top_p=0.8,
        min_p=0.4,
        temperature=2.0,
        order=["top_k", "top_p", "min_p", "temperature"],
    )
    np.testing.assert_array_equal(same, out)


# --------------------------------------------------------------------------- reports


def _ref_report(before, after, original):
    def lsm(x):
        x = x.astype(np.float64)
        return x - (
            np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))
            + x.max(-1, keepdims=True)
        )

    lb, la, lo = lsm(before), lsm(after), lsm(original)
    fin = np.isfinite(after)

    def h(lp):
        return -np.where(np.isfinite(lp), np.exp(lp) * np.where(np.isfinite(lp), lp, 0), 0).sum(-1)

    mass = np.where(fin, np.exp(lb), 0).sum(-1)
    kl = np.where(fin, np.exp(la) * (np.where(fin, la, 0) - np.where(fin, lb, 0)), 0).sum(-1)
    klo = np.where(fin, np.exp(la) * (np.where(fin, la, 0) - np.where(fin, lo, 0)), 0).sum(-1)
    return dict(
        kept=fin.sum(-1),
        mass=mass,
        mass_original=np.where(fin, np.exp(lo), 0).sum(-1),
        entropy_before=h(lb),
        entropy_after=h(la),
        kl=kl,
        kl_original=klo,
    )


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_return_steps_match_independent_computation(backend):
    x = logits("neginf", torch.float32, n=6, v=500).reshape(2, 3, 500)
    xin = x.numpy() if backend == "numpy" else x
    out, steps = S.apply(
        xin, temperature=0.8, top_k=40, top_p=0.9, min_p=0.02, return_steps=True, base=2
    )
    assert [s.name for s in steps] == ["temperature", "top_k", "top_p", "min_p"]
    prev = x.numpy()
    orig = x.numpy()
    for s, cur in zip(steps, [S.temperature(orig, 0.8)] * 1 + [None] * 3):
        nxt = (
            cur
            if cur is not None
            else {
                "top_k": lambda a: S.top_k(a, 40),
                "top_p": lambda a: S.top_p(a, 0.9),
                "min_p": lambda a: S.min_p(a, 0.02),
            }[s.name](prev)
        )
        ref = _ref_report(prev, nxt, orig)
        for k, v in ref.items():
            got = np.asarray(getattr(s, k))
            if k in ("entropy_before", "entropy_after", "kl", "kl_original"):
                v = v / math.log(2)
            assert got.shape == (2, 3)
            np.testing.assert_allclose(got, v, rtol=1e-9, atol=1e-12, err_msg=(s.name, k))
        prev = nxt
    np.testing.assert_array_equal(np.asarray(out), prev)
    t = steps[0]
    np.testing.assert_allclose(np.asarray(t.mass), 1.0)
    for s in steps[1:]:  # truncations: KL = -log(retained mass)
        np.testing.assert_allclose(
            np.asarray(s.kl), -np.log2(np.asarray(s.mass)), rtol=1e-12, atol=1e-15
        )


def test_step_report_function():
    z = np.log(np.array([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]]))
    after = S.top_k(z, 1)
    r = S.step_report(z, after, name="top_k", value=1)
    np.testing.assert_allclose(r.mass, [0.5, 0.6])
    np.testing.assert_allclose(r.kl, -np.log([0.5, 0.6]))
    np.testing.assert_array_equal(r.kept, [1, 1])
    np.testing.assert_allclose(r.entropy_after, 0.0, atol=1e-15)
    hot = S.step_report(z, z / 2)  # a temperature: KL summed
    q = np.exp(z / 2) / np.exp(z / 2).sum(-1, keepdims=True)
    np.testing.assert_allclose(hot.kl, (q * (np.log(q) - z)).sum(-1), rtol=1e-12)
    with pytest.raises(ValueError, match="after: expected shape"):
        S.step_report(z, z[:1])


logit_rows = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 3), st.integers(2, 40)),
    elements=st.floats(-30, 30, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logit_rows, st.floats(0.01, 1.0), st.integers(1, 5))
def test_truncation_properties(z, p, k):
    for out in (S.top_p(z, p), S.top_k(z, k), S.min_p(z, p), S.apply(z, top_k=k, top_p=p)):
        r = S.step_report(z, out)
        mass = np.asarray(r.mass)
        assert np.all(mass > 0) and np.all(mass <= 1 + 1e-12)
        np.testing.assert_allclose(r.kl, -np.log(mass), rtol=1e-9, atol=1e-12)
        assert np.all(np.asarray(r.kept) >= 1)
    # top-p keeps at least mass p
    r = S.step_report(z, S.top_p(z, p))
    assert np.all(np.asarray(r.mass) >= p * (1 - 1e-9))


# --------------------------------------------------------------------------- temperature


def _mp_entropy(row, t):
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    fin = [mpmath.mpf(float(v)) for v in row if np.isfinite(v)]
    m = max(fin)
    e = [mpmath.exp((v - m) / t) for v in fin]
    z = mpmath.fsum(e)
    return float(-mpmath.fsum(w / z * mpmath.log(w / z) for w in e if w > 0))


def test_entropy_curve_against_mpmath():
    g = np.random.default_rng(0)
    rows = g.normal(size=(3, 60)) * 4
    rows[1, ::3] = -np.inf
    rows[2, :5] = rows[2].max()  # ties at the maximum
    temps = [0.05, 0.3, 1.0, 2.5, 40.0]
    c = S.entropy_curve(rows, temps)
    for i, j in itertools.product(range(3), range(len(temps))):
        ref = _mp_entropy(rows[i], temps[j])
        assert abs(c.entropy[i, j] - ref) <= 1e-13 * max(ref, 1e-3), (i, j)
    np.testing.assert_allclose(c.perplexity, np.exp(c.entropy))
    bits = S.entropy_curve(rows, temps, base=2)
    np.testing.assert_allclose(bits.entropy, c.entropy / math.log(2))
    np.testing.assert_allclose(bits.perplexity, c.perplexity)  # always exp of nats


def test_entropy_curve_large_vocab_matches_float64_loop():
    # the bucket-moment kernel (V >= 4096, >= 8 temperatures) against torch float64
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 20000, generator=g) * 3
    x[1, :7000] = INF
    x[2] = x[2] * 0.01  # nearly flat
    x[3, :3] = x[3].max()  # ties
    temps = np.concatenate([[0.01, 0.05], np.linspace(0.1, 3.0, 12), [50.0]])
    got = S.entropy_curve(x, temps)
    assert isinstance(got.entropy, torch.Tensor) and got.entropy.dtype == torch.float64
    ref = torch.stack(
        [
            -torch.where(lp > INF, lp.exp() * lp, torch.zeros_like(lp)).sum(-1)
            for lp in (torch.log_softmax(x.double() / t, -1) for t in temps)
        ],
        -1,
    )
    rel = ((got.entropy - ref).abs() / ref.clamp_min(1e-6)).max().item()
    assert rel < 1e-10
    # the whole curve equals effective_vocabulary at T = 1 and the measures' entropy
    import infolens

    np.testing.assert_allclose(
        S.effective_vocabulary(x).numpy(),
        np.exp(infolens.entropy(logits=x.double()).numpy()),
        rtol=1e-12,
    )


def test_entropy_curve_limits_and_shapes():
    z = np.array([[2.0, 2.0, 1.0, -np.inf], [0.0, -1.0, -2.0, -3.0]])
    c = S.entropy_curve(z, [0, 1e-6, 1e6, np.inf])
    np.testing.assert_allclose(c.entropy[:, 0], np.log([2, 1]))  # argmax: ties uniform
    np.testing.assert_allclose(c.entropy[:, 1], np.log([2, 1]), atol=1e-12)
    np.testing.assert_allclose(c.entropy[:, 3], np.log([3, 4]))  # uniform over finite
    np.testing.assert_allclose(c.entropy[:, 2], np.log([3, 4]), rtol=1e-5)
    assert S.entropy_curve(z, 1.0).entropy.shape == (2,)
    assert S.entropy_curve(z.reshape(2, 1, 4), [1.0, 2.0]).entropy.shape == (2, 1, 2)
    # T = 1 is the model's own distribution
    p = np.exp(z[1]) / np.exp(z[1]).sum()
    np.testing.assert_allclose(S.entropy_curve(z[1], 1.0).entropy, -(p * np.log(p)).sum())


@settings(max_examples=40, deadline=None)
@given(logit_rows)
def test_entropy_monotone_in_temperature(z):
    temps = np.geomspace(0.02, 50, 25)
    h = S.entropy_curve(z, temps).entropy
    assert np.all(np.diff(h, axis=-1) >= -1e-12)
    ties = (z == z.max(-1, keepdims=True)).sum(-1)
    assert np.all(h >= np.log(ties)[:, None] - 1e-12)
    assert np.all(h <= np.log(z.shape[-1]) + 1e-12)


@settings(max_examples=40, deadline=None)
@given(logit_rows, st.floats(0.05, 0.95))
def test_solve_temperature_round_trips(z, frac):
    ties = (z == z.max(-1, keepdims=True)).sum(-1)
    lo, hi = np.log(ties), np.log(z.shape[-1])
    target = lo + frac * (hi - lo)
    try:
        t = S.solve_temperature(z, target)
    except InputError as exc:  # only where no float64 temperature can reach the target
        assert "below the float64 range" in str(exc)
        gaps = [np.diff(np.unique(r[np.isfinite(r)])) for r in z]
        assert any(g.size and g.min() < 2.3e-308 for g in gaps), z
        return
    for i in range(z.shape[0]):
        if hi - lo[i] < 1e-9:
            continue
        h = S.entropy_curve(z[i], float(t[i])).entropy
        assert abs(h - target[i]) <= 1e-6 * target[i], (i, t[i])


def test_solve_temperature_inverts_the_curve():
    g = np.random.default_rng(5)
    z = g.normal(size=(4, 5000)) * 2.5
    temps = np.array([0.2, 0.7, 1.0, 1.9])
    h = S.entropy_curve(z, temps).entropy
    for j, t in enumerate(temps):
        np.testing.assert_allclose(S.solve_temperature(z, h[:, j]), t, rtol=1e-6)
    bits = S.entropy_curve(z, 1.0, base=2).entropy
    np.testing.assert_allclose(
        S.solve_temperature(torch.from_numpy(z), bits, base=2).numpy(), 1.0, rtol=1e-6
    )
    # the ends
    edge = S.solve_temperature(
        np.array([[1.0, 1.0, 0.0], [3.0, 2.0, 1.0]]), [math.log(2), math.log(3)]
    )
    assert edge[0] == 0.0 and edge[1] == math.inf


def test_solve_temperature_out_of_range():
    z = np.array([2.0, 1.0, 0.0, -np.inf])
    with pytest.raises(ValueError, match=r"outside \[0, 1.09861\].*3 finite entries"):
        S.solve_temperature(z, 1.2)
    with pytest.raises(ValueError, match="2 tied maxima"):
        S.solve_temperature(np.array([1.0, 1.0, 0.0]), 0.5)


def test_entropy_curve_bounded_memory():
    # float64 temporaries stay far below a [T, N, V] array (here 200 MB)
    x = np.random.default_rng(0).normal(size=(32, 50257)).astype(np.float32) * 3
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    S.entropy_curve(x, np.linspace(0.1, 2.0, 16))
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert peak < 64 * 2**20, peak


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda z: S.temperature(z, 0.0), r"temperature: expected a number in \(0, inf\), got 0.0"),
        (lambda z: S.temperature(z, -1), "temperature: .* got -1"),
        (lambda z: S.temperature(z, float("nan")), "temperature: .* got nan"),
        (lambda z: S.top_k(z, 0), "top_k: expected an integer >= 1, got 0"),
        (lambda z: S.top_k(z, 2.5), "top_k: expected an integer >= 1, got 2.5"),
        (lambda z: S.top_p(z, 1.5), r"top_p: expected a number in \[0, 1\], got 1.5"),
        (lambda z: S.min_p(z, -0.1), r"min_p: expected a number in \[0, 1\]"),
        (lambda z: S.typical_p(z, 1.0), r"typical_p: expected a number in \(0, 1\)"),
        (lambda z: S.epsilon_cutoff(z, 0), r"epsilon: expected a number in \(0, 1\)"),
        (lambda z: S.eta_cutoff(z, 1), r"eta: expected a number in \(0, 1\)"),
        (lambda z: S.top_h(z, 0), r"top_h: expected a number in \(0, 1\]"),
        (lambda z: S.top_n_sigma(z, 0), r"top_n_sigma: expected a number in \(0, inf\)"),
        (
            lambda z: S.top_p(z, 0.5, min_tokens_to_keep=0),
            "min_tokens_to_keep: expected an integer",
        ),
        (lambda z: S.apply(z, top_n_sigma=1.0), "top_n_sigma is not in that chain"),
        (lambda z: S.apply(z, epsilon=0.1, order="llama.cpp"), "epsilon is not in that chain"),
        (lambda z: S.apply(z, top_k=3, order="vllm"), "order: expected 'transformers'"),
        (lambda z: S.apply(z, top_k=3, order=["top_k", "top_p"]), "top_p is listed but"),
        (lambda z: S.apply(z, top_k=3, min_p=0.1, order=["top_k"]), "min_p is set but not listed"),
        (lambda z: S.apply(z, top_k=3, order=["top_k", "top_k"]), "each step may appear once"),
        (lambda z: S.apply(z, top_k=3, order=["top_q"]), "unknown step 'top_q'"),
        (lambda z: S.entropy_curve(z, [1.0, -2.0]), "temperatures: expected values >= 0"),
        (lambda z: S.entropy_curve(z, [float("nan")]), "temperatures"),
        (lambda z: S.entropy_curve(np.array([INF, INF]), 1.0), "row 0 holds only -inf"),
        (lambda z: S.entropy_curve(np.array([0.0, np.nan]), 1.0), "row 0 holds NaN"),
        (lambda z: S.top_k(np.zeros((2, 0)), 1), "logits: expected at least one entry"),
        (lambda z: S.top_k("abc", 1), "logits: expected an array of real numbers"),
    ],
)
def test_errors_name_the_parameter(call, match):
    z = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=match) as info:
        call(z)
    assert "\n" not in str(info.value)


def test_one_hot_and_single_token_rows():
    z = np.array([[0.0, INF, INF], [5.0, 5.0, 5.0]])
    for fn in (
        lambda a: S.top_p(a, 0.5),
        lambda a: S.min_p(a, 0.5),
        lambda a: S.top_k(a, 1),
        lambda a: S.typical_p(a, 0.5),
        lambda a: S.top_h(a, 0.5),
        lambda a: S.top_n_sigma(a, 1.0),
        lambda a: S.epsilon_cutoff(a, 0.5),
    ):
        out = fn(z)
        assert np.isfinite(out[0]).tolist() == [True, False, False]
        assert np.isfinite(out[1]).sum() >= 1


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fast_chain_identical_at_full_vocabulary_size(dtype):
    # the CPU fast path (top-k's entries only, full-length softmax) on a 151,936-token
    # vocabulary, where torch's softmax sums a row in position-dependent pieces
    L = _transformers()
    g = torch.Generator().manual_seed(7)
    x = (torch.randn(16, 151936, generator=g) * 3).to(dtype)
    x[:4] = torch.round(x[:4].float()).to(dtype)  # coarse values: ties at every cut
    for t, k, p, mp in [(0.7, 50, 0.9, 0.05), (1.3, 400, 0.6, 0.2), (0.5, 5, 0.99, 0.01)]:
        ref = x
        for w in (
            L.TemperatureLogitsWarper(t),
            L.TopKLogitsWarper(k),
            L.TopPLogitsWarper(p),
            L.MinPLogitsWarper(mp),
        ):
            ref = w(None, ref)
        assert torch.equal(S.apply(x, temperature=t, top_k=k, top_p=p, min_p=mp), ref)
        xk = L.TopKLogitsWarper(k)(None, x)
        assert torch.equal(S.top_p(xk, p), L.TopPLogitsWarper(p)(None, xk))


def test_accelerator_kernel_on_cpu_tensors():
    # the direct torch kernel used for tensors on an accelerator, run here on the CPU
    from infolens import _sampling_curve as C

    g = torch.Generator().manual_seed(11)
    x = torch.randn(6, 700, generator=g) * 3
    x[2, ::4] = INF
    x[3, :2] = x[3].max()
    temps = np.array([0.0, 0.05, 0.5, 1.0, 3.0, np.inf])
    got = C._torch_curve(x, temps)
    want = S.entropy_curve(x.numpy(), temps).entropy
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)


def test_solve_temperature_for_a_subnormal_spread():
    """Logits a subnormal apart need a subnormal temperature: 1/T overflows float64, so the
    solver and the curve work on rescaled logits (found by Hypothesis)."""
    z = np.array([[2.22507386e-311, 0.0]])
    target = 0.5 * math.log(2)
    t = float(S.solve_temperature(z, target)[0])
    assert 0 < t < 1e-300
    assert abs(S.entropy_curve(z[0], t).entropy - target) <= 1e-9
    # the same as the problem scaled to ordinary numbers
    assert t == pytest.approx(float(S.solve_temperature(z * 2.0**1000, target)[0]) / 2.0**1000, rel=1e-9)


def test_solve_temperature_refuses_an_unrepresentable_temperature():
    with pytest.raises(InputError, match="below the float64 range"):
        S.solve_temperature(np.array([[5e-324, 0.0, -3.0]]), 0.1 * math.log(3))
