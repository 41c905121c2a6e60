"""The public measures against their documented numerical contract.

A number is correct when it equals its definition: every value here is compared with an
independent reference (mpmath at 50 digits from the exact values of the rounded inputs,
scipy, torch, or a plain Python loop). Property-based tests live in
``test_measures_props.py``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import mpmath
import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
import torch.nn.functional as F
from scipy.spatial.distance import jensenshannon

from _numeric import softmax as _softmax
from infolens import (
    _kernels,
    cross_entropy,
    entropy,
    js_divergence,
    kl_divergence,
    renyi_divergence,
    renyi_entropy,
    surprisal,
    total_variation,
)

NINF = -math.inf
LN2 = math.log(2.0)
MPF = Any  # mpmath.mpf


# --------------------------------------------------------------------------- references


def _exact_rows(x: Any) -> list[list[float]]:
    """The exact values of the (rounded) inputs: float64 holds every float16, bfloat16 and
    float32 value exactly."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float64).cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    return a.reshape(-1, a.shape[-1]).tolist()


class MpRow:
    """One distribution in exact arithmetic: log-probabilities (``-inf`` for zeros) and
    probabilities, normalised at 50 significant digits."""

    def __init__(self, logp: list[MPF]) -> None:
        self.lp = logp
        self.p = [mpmath.mpf(0) if v == mpmath.ninf else mpmath.exp(v) for v in logp]

    @classmethod
    def from_logits(cls, row: list[float]) -> MpRow:
        with mpmath.workdps(50):
            fin = [mpmath.mpf(v) for v in row if v != NINF]
            m = max(fin)
            lse = m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in fin))
            return cls([mpmath.ninf if v == NINF else mpmath.mpf(v) - lse for v in row])

    @classmethod
    def from_probs(cls, row: list[float]) -> MpRow:
        with mpmath.workdps(50):
            log_s = mpmath.log(mpmath.fsum(mpmath.mpf(v) for v in row))
            return cls([mpmath.ninf if v == 0 else mpmath.log(mpmath.mpf(v)) - log_s for v in row])


def _zero(v: MPF) -> bool:
    return v == mpmath.ninf


def mp_entropy(a: MpRow) -> MPF:
    return -mpmath.fsum(p * lp for p, lp in zip(a.p, a.lp) if not _zero(lp))


def mp_cross(a: MpRow, b: MpRow) -> MPF:
    if any(not _zero(x) and _zero(y) for x, y in zip(a.lp, b.lp)):
        return mpmath.inf
    return -mpmath.fsum(p * y for p, x, y in zip(a.p, a.lp, b.lp) if not _zero(x))


def mp_kl(a: MpRow, b: MpRow) -> MPF:
    if any(not _zero(x) and _zero(y) for x, y in zip(a.lp, b.lp)):
        return mpmath.inf
    return mpmath.fsum(p * (x - y) for p, x, y in zip(a.p, a.lp, b.lp) if not _zero(x))


def mp_js(a: MpRow, b: MpRow) -> MPF:
    terms = []
    for p, x, q, y in zip(a.p, a.lp, b.p, b.lp):
        if _zero(x) and _zero(y):
            continue
        lm = mpmath.log((p + q) / 2)
        if not _zero(x):
            terms.append(p * (x - lm))
        if not _zero(y):
            terms.append(q * (y - lm))
    return mpmath.fsum(terms) / 2


def mp_renyi_entropy(a: MpRow, alpha: float) -> MPF:
    fin = [x for x in a.lp if not _zero(x)]
    if alpha == 0:
        return mpmath.log(len(fin))
    if math.isinf(alpha):
        return -max(fin)
    return mpmath.log(mpmath.fsum(mpmath.exp(alpha * x) for x in fin)) / (1 - alpha)


def mp_renyi_div(a: MpRow, b: MpRow, alpha: float) -> MPF:
    missing = any(not _zero(x) and _zero(y) for x, y in zip(a.lp, b.lp))
    if alpha >= 1 and missing:
        return mpmath.inf
    both = [(x, y) for x, y in zip(a.lp, b.lp) if not _zero(x) and not _zero(y)]
    if math.isinf(alpha):
        return max(x - y for x, y in both)
    s = mpmath.fsum(mpmath.exp(alpha * x + (1 - alpha) * y) for x, y in both)
    return mpmath.log(s) / (alpha - 1)


def mp_tv(a: MpRow, b: MpRow) -> MPF:
    return mpmath.fsum(abs(p - q) for p, q in zip(a.p, b.p)) / 2


#: (relative, absolute-near-zero) tolerance per input dtype
TOL = {
    "float64": (1e-12, 1e-12),
    "float32": (1e-5, 1e-6),
    "float16": (1e-3, 1e-3),
    "bfloat16": (1e-3, 1e-3),
}


def assert_exact(got: Any, ref: MPF, dtype: str, what: str) -> None:
    """``got`` equals the exact ``ref`` within the dtype's tolerance (+inf must be +inf)."""
    g = float(got)
    r = float(ref)
    assert not math.isnan(g), f"{what}: got nan, exact {r!r}"
    if math.isinf(r):
        assert g == r, f"{what}: got {g!r}, exact {r!r}"
        return
    rtol, atol = TOL[dtype]
    err = abs(g - r)
    assert err <= max(rtol * abs(r), atol), (
        f"{what} [{dtype}]: got {g!r}, exact {mpmath.nstr(ref, 20)}, abs err {err:.3e}, "
        f"rel err {err / abs(r) if r else math.inf:.3e} (tolerance rel {rtol}, abs {atol})"
    )


# --------------------------------------------------------------------------- helpers


def _as_dtype(x: np.ndarray, dtype: str) -> Any:
    """numpy for float64/float32/float16; torch for bfloat16 (numpy has none)."""
    if dtype == "bfloat16":
        return torch.tensor(x, dtype=torch.bfloat16)
    return x.astype(dtype)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _zeros(x: Any) -> Any:
    return torch.zeros_like(x) if isinstance(x, torch.Tensor) else np.zeros_like(x)


def _values(x: Any) -> list[float]:
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64).reshape(-1).tolist()
    return np.asarray(x, dtype=np.float64).reshape(-1).tolist()


# =========================================================================== 1. contract


class TestZeroProbability:
    def test_zero_log_zero_is_zero(self) -> None:
        assert entropy([1.0, 0.0]) == 0.0
        assert entropy([0.5, 0.0, 0.5]) == pytest.approx(LN2, rel=1e-15)
        # same value as the distribution without the zero entry
        assert entropy([0.2, 0.0, 0.8]) == entropy([0.2, 0.8])
        assert cross_entropy([1.0, 0.0], [0.5, 0.5]) == pytest.approx(LN2, rel=1e-15)
        assert kl_divergence([0.0, 1.0], [0.5, 0.5]) == pytest.approx(LN2, rel=1e-15)

    def test_zero_p_and_zero_q_contribute_nothing(self) -> None:
        # 0 * log(0 / 0) = 0: both zero is not an infinity
        p, q = [0.5, 0.5, 0.0], [0.25, 0.75, 0.0]
        ref = float(np.sum(scipy.special.rel_entr(p, q)))
        assert kl_divergence(p, q) == pytest.approx(ref, rel=1e-14)
        assert kl_divergence(p_logits=[0.0, 0.0, NINF], q_logits=[0.0, math.log(3), NINF]) == (
            pytest.approx(ref, rel=1e-14)
        )

    @pytest.mark.parametrize(
        "fn", [kl_divergence, cross_entropy], ids=["kl_divergence", "cross_entropy"]
    )
    def test_p_positive_where_q_zero_is_inf_probs(self, fn: Callable[..., Any]) -> None:
        assert fn([0.5, 0.5], [1.0, 0.0]) == math.inf
        # a subnormal probability is still positive
        assert fn([1.0, 5e-324], [1.0, 0.0]) == math.inf
        # rows mixing finite and infinite results: no nan leaks across rows
        out = fn([[0.5, 0.5], [1.0, 0.0]], [[1.0, 0.0], [0.5, 0.5]])
        assert out[0] == math.inf and math.isfinite(out[1])

    @pytest.mark.parametrize(
        "fn", [kl_divergence, cross_entropy], ids=["kl_divergence", "cross_entropy"]
    )
    @pytest.mark.parametrize("lib", ["numpy", "torch"])
    def test_p_positive_where_q_zero_is_inf_logits(self, fn: Callable[..., Any], lib: str) -> None:
        def arr(x: list[float]) -> Any:
            return torch.tensor(x, dtype=torch.float64) if lib == "torch" else np.array(x)

        assert float(fn(p_logits=arr([0.0, 0.0]), q_logits=arr([0.0, NINF]))) == math.inf
        # p_2 = exp(-800) underflows to 0 in float64 but is positive: still +inf, not 0/nan
        assert float(fn(p_logits=arr([0.0, -800.0]), q_logits=arr([0.0, NINF]))) == math.inf
        assert float(fn(p_logits=arr([0.0, -800.0]), q_log_probs=arr([0.0, NINF]))) == math.inf
        assert float(fn(arr([1.0, 0.0]), q_logits=arr([NINF, 0.0]))) == math.inf
        # and the converse is finite: p_i = 0 where q_i = 0
        assert math.isfinite(float(fn(p_logits=arr([0.0, NINF]), q_logits=arr([0.0, NINF]))))

    def test_js_is_finite_with_disjoint_supports(self) -> None:
        assert js_divergence([1.0, 0.0], [0.0, 1.0]) == pytest.approx(LN2, rel=1e-15)
        got = js_divergence(p_logits=[0.0, NINF], q_logits=[NINF, 0.0])
        assert got == pytest.approx(LN2, rel=1e-15)

    def test_neg_inf_logits_are_zero_probability(self) -> None:
        row = np.array([0.3, NINF, -1.2, NINF, 2.0])
        fin = row[np.isfinite(row)]
        assert entropy(logits=row) == pytest.approx(entropy(logits=fin), rel=1e-15)
        # q = -inf exactly where p = -inf: equal to the computation without those entries
        q = np.array([1.0, NINF, -0.5, NINF, 0.1])
        qfin = q[np.isfinite(row)]
        assert kl_divergence(p_logits=row, q_logits=q) == pytest.approx(
            kl_divergence(p_logits=fin, q_logits=qfin), rel=1e-14
        )
        # q > 0 where p = 0 (index 1): finite, and q's normalisation includes that entry
        q[1] = 0.0
        ref = scipy.stats.entropy(_softmax(row), _softmax(q))
        assert kl_divergence(p_logits=row, q_logits=q) == pytest.approx(ref, rel=1e-12)
        assert ref > kl_divergence(p_logits=fin, q_logits=qfin)
        assert surprisal(1, logits=row) == math.inf
        assert surprisal(2, logits=row) == pytest.approx(
            -scipy.special.log_softmax(fin)[1], rel=1e-14
        )


class TestProbabilityValidation:
    @pytest.mark.parametrize(
        ("call", "name"),
        [
            (lambda v: entropy(v), "p"),
            (lambda v: kl_divergence(v, [0.5, 0.5]), "p"),
            (lambda v: kl_divergence([0.5, 0.5], v), "q"),
            (lambda v: cross_entropy([0.5, 0.5], v), "q"),
            (lambda v: js_divergence(v, [0.5, 0.5]), "p"),
            (lambda v: renyi_entropy(v, 2.0), "p"),
            (lambda v: renyi_divergence([0.5, 0.5], v, 0.5), "q"),
            (lambda v: total_variation(v, [0.5, 0.5]), "p"),
            (lambda v: surprisal(0, v), "p"),
        ],
    )
    def test_negative_nan_and_sum_name_argument_and_value(
        self, call: Callable[[Any], Any], name: str
    ) -> None:
        with pytest.raises(ValueError, match=rf"^{name}: .*>= 0.*-0\.25"):
            call([1.25, -0.25])
        with pytest.raises(ValueError, match=rf"^{name}: .*NaN"):
            call([math.nan, 1.0])
        with pytest.raises(ValueError, match=rf"^{name}: .*sum to 1.*1\.1"):
            call([0.5, 0.6])
        with pytest.raises(ValueError, match=rf"^{name}: .*sum to 1.*0\.9"):
            call(np.array([0.5, 0.4], dtype=np.float32))
        with pytest.raises(ValueError, match=rf"^{name}: "):
            call([0.0, 0.0])
        with pytest.raises(ValueError, match=rf"^{name}: "):
            call([math.inf, 0.0])

    def test_torch_probabilities_validated_too(self) -> None:
        with pytest.raises(ValueError, match=r"^p: .*-0\.5"):
            entropy(torch.tensor([1.5, -0.5]))
        with pytest.raises(ValueError, match=r"^q: .*sum to 1"):
            kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.7]))

    def test_sum_tolerance_is_sqrt_eps_of_the_dtype(self) -> None:
        # 1 + 1e-9 passes in float64 (sqrt eps = 1.5e-8), 1 + 1e-7 does not
        entropy([0.5, 0.5 + 1e-9])
        with pytest.raises(ValueError, match="sum to 1"):
            entropy([0.5, 0.5 + 1e-7])
        # float16 probabilities: tolerance sqrt(2^-10) ~ 0.031
        entropy(np.array([0.5, 0.51], dtype=np.float16))
        with pytest.raises(ValueError, match="sum to 1"):
            entropy(np.array([0.5, 0.55], dtype=np.float16))

    def test_normalize_matches_scipy(self) -> None:
        counts = np.array([[3.0, 0.0, 1.0, 6.0], [1.0, 1.0, 1.0, 1.0], [7.0, 2.0, 0.0, 0.0]])
        other = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 1.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
        np.testing.assert_allclose(
            entropy(counts, normalize=True), scipy.stats.entropy(counts, axis=1), rtol=1e-14
        )
        np.testing.assert_allclose(
            entropy(counts, normalize=True, base=2),
            scipy.stats.entropy(counts, base=2, axis=1),
            rtol=1e-14,
        )
        np.testing.assert_allclose(
            kl_divergence(counts, other, normalize=True),
            scipy.stats.entropy(counts, other, axis=1),
            rtol=1e-13,
        )
        # normalize=True still rejects what no renormalisation can fix
        with pytest.raises(ValueError, match=r"^p: .*-1\.0"):
            entropy([2.0, -1.0], normalize=True)
        with pytest.raises(ValueError, match=r"^p: .*sums to 0"):
            entropy([0.0, 0.0], normalize=True)

    def test_nested_sequences_and_integers(self) -> None:
        assert entropy([[1, 0], [0, 1]]).tolist() == [0.0, 0.0]
        assert entropy([3, 1], normalize=True) == pytest.approx(
            scipy.stats.entropy([3, 1]), rel=1e-15
        )
        with pytest.raises(ValueError, match=r"^p: expected an array of real numbers.*<U1"):
            entropy(["a", "b"])


class TestLogitValidation:
    @pytest.mark.parametrize(
        ("call", "name"),
        [
            (lambda v: entropy(logits=v), "logits"),
            (lambda v: kl_divergence(p_logits=v, q_logits=_zeros(v)), "p_logits"),
            (lambda v: kl_divergence(p_logits=_zeros(v), q_logits=v), "q_logits"),
            (lambda v: cross_entropy(_zeros(v) + 1 / 3, q_logits=v), "q_logits"),
            (lambda v: js_divergence(p_logits=v, q_logits=_zeros(v)), "p_logits"),
            (lambda v: surprisal(np.zeros(v.shape[:-1], dtype=int), logits=v), "logits"),
            (lambda v: renyi_entropy(logits=v, alpha=2.0), "logits"),
            (lambda v: renyi_divergence(p_logits=_zeros(v), q_logits=v, alpha=0.5), "q_logits"),
            (lambda v: total_variation(p_logits=v, q_logits=_zeros(v)), "p_logits"),
        ],
    )
    @pytest.mark.parametrize("lib", ["numpy", "torch"])
    def test_bad_logits_raise(self, call: Callable[[Any], Any], name: str, lib: str) -> None:
        def arr(x: list[float]) -> Any:
            return torch.tensor(x, dtype=torch.float64) if lib == "torch" else np.array(x)

        with pytest.raises(ValueError, match=rf"^{name}: .*all -inf"):
            call(arr([NINF, NINF, NINF]))
        with pytest.raises(ValueError, match=rf"^{name}: .*\+inf"):
            call(arr([0.0, math.inf, 1.0]))
        with pytest.raises(ValueError, match=rf"^{name}: .*NaN"):
            call(arr([0.0, math.nan, 1.0]))
        # one bad row among good ones is enough
        with pytest.raises(ValueError, match=rf"^{name}: .*all -inf"):
            call(arr([[0.0, 1.0, 2.0], [NINF, NINF, NINF]]))

    def test_log_probs_must_be_normalised(self) -> None:
        good = scipy.special.log_softmax(np.array([0.1, 2.0, -1.0]))
        assert entropy(log_probs=good) == pytest.approx(entropy(logits=good), rel=1e-15)
        bad = good + 1e-3
        with pytest.raises(ValueError, match=r"^log_probs: .*log-sum-exp"):
            entropy(log_probs=bad)
        with pytest.raises(ValueError, match=r"^q_log_probs: .*log-sum-exp"):
            kl_divergence(p_log_probs=good, q_log_probs=bad)
        with pytest.raises(ValueError, match=r"^p_log_probs: .*log-sum-exp"):
            js_divergence(p_log_probs=bad, q_log_probs=good)
        with pytest.raises(ValueError, match=r"^log_probs: .*log-sum-exp"):
            surprisal(0, log_probs=bad)
        with pytest.raises(ValueError, match=r"^log_probs: .*log-sum-exp"):
            renyi_entropy(log_probs=bad, alpha=2.0)
        with pytest.raises(ValueError, match=r"^q_log_probs: .*log-sum-exp"):
            total_variation(p_log_probs=good, q_log_probs=bad)
        # normalize=True accepts them (they are then logits)
        assert entropy(log_probs=bad, normalize=True) == pytest.approx(
            entropy(logits=good), rel=1e-14
        )

    def test_mixing_forms(self) -> None:
        lq = np.array([0.3, -2.0, 1.1, NINF])
        p = np.array([0.1, 0.2, 0.7, 0.0])
        ref = float(np.sum(scipy.special.rel_entr(p, _softmax(lq))))
        with np.errstate(divide="ignore"):
            logp = np.log(p)
        for kw in (
            {"p": p, "q_logits": lq},
            {"p_logits": logp, "q": _softmax(lq)},
            {"p_log_probs": logp, "q_logits": lq + 5.0},
            {"p": p, "q_log_probs": scipy.special.log_softmax(lq)},
            {"p": torch.tensor(p), "q_logits": lq},
            {"p": p, "q_logits": torch.tensor(lq)},
        ):
            assert float(kl_divergence(**kw)) == pytest.approx(ref, rel=1e-13), kw


class TestArguments:
    def test_exactly_one_form(self) -> None:
        with pytest.raises(ValueError, match="exactly one of p, logits, log_probs, got none"):
            entropy()
        with pytest.raises(ValueError, match="got p and logits"):
            entropy([1.0], logits=[0.0])
        with pytest.raises(ValueError, match="got logits and log_probs"):
            entropy(logits=[0.0], log_probs=[0.0])
        with pytest.raises(ValueError, match="exactly one of q, q_logits, q_log_probs, got none"):
            kl_divergence([1.0])
        with pytest.raises(ValueError, match="got p and p_logits"):
            kl_divergence([1.0], [1.0], p_logits=[0.0])
        with pytest.raises(ValueError, match="got q and q_log_probs"):
            js_divergence([1.0], [1.0], q_log_probs=[0.0])
        with pytest.raises(ValueError, match="exactly one of p, logits, log_probs"):
            surprisal(0)
        with pytest.raises(ValueError, match="exactly one of p, p_logits, p_log_probs"):
            total_variation(q=[1.0])

    @pytest.mark.parametrize("base", [0, -2, 1, 1.0, "2", math.nan, True])
    @pytest.mark.parametrize(
        "call",
        [
            lambda b: entropy([0.5, 0.5], base=b),
            lambda b: kl_divergence([0.5, 0.5], [0.5, 0.5], base=b),
            lambda b: surprisal(0, [0.5, 0.5], base=b),
            lambda b: renyi_divergence([0.5, 0.5], [0.5, 0.5], 2.0, base=b),
        ],
    )
    def test_bad_base(self, call: Callable[[Any], Any], base: Any) -> None:
        with pytest.raises(ValueError, match=r"^base: expected a positive number other than 1"):
            call(base)

    @pytest.mark.parametrize("base", [2, 10, math.e, 0.5, 3.7])
    def test_base_divides_by_log_base(self, base: float) -> None:
        p = np.array([0.1, 0.6, 0.3])
        q = np.array([0.3, 0.3, 0.4])
        assert entropy(p, base=base) == pytest.approx(scipy.stats.entropy(p, base=base), rel=1e-14)
        assert kl_divergence(p, q, base=base) == pytest.approx(
            scipy.stats.entropy(p, q, base=base), rel=1e-14
        )
        # scipy's jensenshannon takes a square root, so it has no answer for base < 1
        js_ref = jensenshannon(p, q) ** 2 / math.log(base)
        if base > 1:
            js_ref = jensenshannon(p, q, base=base) ** 2
        assert js_divergence(p, q, base=base) == pytest.approx(js_ref, rel=1e-12)

    def test_renyi_alpha_validation(self) -> None:
        for alpha in (-0.5, math.nan):
            with pytest.raises(ValueError, match=r"^alpha: "):
                renyi_entropy([0.5, 0.5], alpha)
            with pytest.raises(ValueError, match=r"^alpha: "):
                renyi_divergence([0.5, 0.5], [0.5, 0.5], alpha)

    def test_shape_mismatch_names_both_shapes(self) -> None:
        with pytest.raises(ValueError, match=r"p \(2,\) vs q \(3,\)"):
            kl_divergence([0.5, 0.5], [0.2, 0.3, 0.5])
        with pytest.raises(ValueError, match=r"p_logits \(2, 3\) vs q \(3, 2\)"):
            cross_entropy(p_logits=np.zeros((2, 3)), q=np.full((3, 2), 0.5))
        with pytest.raises(ValueError, match=r"p \(2,\) vs q_logits \(1, 2\)"):
            total_variation([0.5, 0.5], q_logits=np.zeros((1, 2)))

    def test_scalar_and_empty_axis(self) -> None:
        with pytest.raises(ValueError, match="scalar"):
            entropy(1.0)
        with pytest.raises(ValueError, match="non-empty"):
            entropy(logits=np.zeros((3, 0)))
        assert entropy(logits=np.zeros((0, 4))).shape == (0,)

    def test_axis_out_of_range(self) -> None:
        with pytest.raises(ValueError, match=r"^axis: .*2-D.*got 2"):
            entropy(np.full((2, 2), 0.5), axis=2)
        with pytest.raises(ValueError, match=r"^axis: .*got -3"):
            kl_divergence(np.full((2, 2), 0.5), np.full((2, 2), 0.5), axis=-3)

    def test_axis_moveaxis_invariance(self) -> None:
        rng = _rng(1)
        a = rng.normal(size=(3, 5, 4))
        b = rng.normal(size=(3, 5, 4))
        for axis in (0, 1, 2, -1, -2):
            am, bm = np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1)
            for fn in (kl_divergence, js_divergence, cross_entropy):
                np.testing.assert_allclose(
                    fn(p_logits=a, q_logits=b, axis=axis),
                    fn(p_logits=am, q_logits=bm),
                    rtol=1e-14,
                    atol=1e-16,
                )
            np.testing.assert_allclose(
                entropy(_softmax(am), axis=-1),
                entropy(np.moveaxis(_softmax(am), -1, axis), axis=axis),
                rtol=1e-14,
            )
            ref = scipy.stats.entropy(_softmax(am), _softmax(bm), axis=-1)
            np.testing.assert_allclose(
                kl_divergence(p_logits=a, q_logits=b, axis=axis), ref, rtol=1e-12
            )
        # torch: same contract
        ta = torch.tensor(a)
        np.testing.assert_allclose(
            entropy(logits=ta, axis=0).numpy(), entropy(logits=np.moveaxis(a, 0, -1)), rtol=1e-14
        )
        assert entropy(logits=ta, axis=1).shape == (3, 4)


class TestWhere:
    def test_excluded_positions_are_zero_and_not_validated(self) -> None:
        p = np.array([[0.5, 0.5], [2.0, -1.0], [math.nan, 0.0], [0.1, 0.9]])
        q = np.array([[0.25, 0.75], [0.5, 0.5], [0.5, 0.5], [1.0, 0.0]])
        mask = np.array([True, False, False, True])
        out = kl_divergence(p, q, where=mask)
        assert out[1] == 0.0 and out[2] == 0.0
        assert out[0] == pytest.approx(scipy.stats.entropy(p[0], q[0]), rel=1e-14)
        assert out[3] == math.inf
        lg = np.array([[0.0, 1.0], [NINF, NINF], [math.nan, 0.0]])
        np.testing.assert_array_equal(
            entropy(logits=lg, where=[True, False, False]),
            [entropy(logits=lg[0]), 0.0, 0.0],
        )
        # and the same masked inputs unmasked raise
        with pytest.raises(ValueError):
            kl_divergence(p, q)
        with pytest.raises(ValueError):
            entropy(logits=lg)

    @pytest.mark.parametrize("lib", ["numpy", "torch"])
    def test_where_equals_subset(self, lib: str) -> None:
        rng = _rng(2)
        a = rng.normal(size=(4, 3, 6)) * 3
        b = rng.normal(size=(4, 3, 6)) * 3
        t = rng.integers(0, 6, size=(4, 3))
        mask = rng.random((4, 3)) < 0.5
        mask[0, 0] = True
        conv: Callable[[Any], Any] = (
            (lambda x: torch.tensor(x)) if lib == "torch" else (lambda x: x)
        )

        def vals(x: Any) -> np.ndarray:
            return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

        for name, full, sub in [
            ("entropy", lambda w: entropy(logits=conv(a), where=w), entropy(logits=a[mask])),
            (
                "kl",
                lambda w: kl_divergence(p_logits=conv(a), q_logits=conv(b), where=w),
                kl_divergence(p_logits=a[mask], q_logits=b[mask]),
            ),
            (
                "js",
                lambda w: js_divergence(p_logits=conv(a), q_logits=conv(b), where=w),
                js_divergence(p_logits=a[mask], q_logits=b[mask]),
            ),
            (
                "surprisal",
                lambda w: surprisal(conv(t), logits=conv(a), where=w),
                surprisal(t[mask], logits=a[mask]),
            ),
            (
                "renyi",
                lambda w: renyi_entropy(logits=conv(a), alpha=0.5, where=w),
                renyi_entropy(logits=a[mask], alpha=0.5),
            ),
            (
                "tv",
                lambda w: total_variation(p_logits=conv(a), q_logits=conv(b), where=w),
                total_variation(p_logits=a[mask], q_logits=b[mask]),
            ),
        ]:
            got = vals(full(conv(mask)))
            assert got.shape == (4, 3), name
            np.testing.assert_allclose(got[mask], sub, rtol=1e-14, err_msg=name)
            assert (got[~mask] == 0).all(), name

    def test_where_broadcasts_and_rejects_bad_shapes(self) -> None:
        a = _rng(3).normal(size=(2, 3, 5))
        out = entropy(logits=a, where=[True, False, True])  # broadcast over the first axis
        assert (out[:, 1] == 0).all() and (out[:, [0, 2]] > 0).all()
        np.testing.assert_array_equal(entropy(logits=a, where=True), entropy(logits=a))
        for lib_mask in (np.ones(4, dtype=bool), torch.ones(4, dtype=torch.bool)):
            arr = torch.tensor(a) if isinstance(lib_mask, torch.Tensor) else a
            with pytest.raises(ValueError, match=r"^where: .*\(2, 3\).*\(4,\)"):
                entropy(logits=arr, where=lib_mask)


class TestSurprisalTargets:
    def test_matches_torch_cross_entropy(self) -> None:
        rng = _rng(4)
        logits = rng.normal(size=(6, 11)) * 4
        t = rng.integers(0, 11, size=6)
        ref = F.cross_entropy(torch.tensor(logits), torch.tensor(t), reduction="none").numpy()
        np.testing.assert_allclose(surprisal(t, logits=logits), ref, rtol=1e-14)
        np.testing.assert_allclose(surprisal(t, _softmax(logits), base=2), ref / LN2, rtol=1e-12)
        got = surprisal(torch.tensor(t), logits=torch.tensor(logits))
        assert isinstance(got, torch.Tensor)
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-14)

    def test_target_validation(self) -> None:
        p = [[0.5, 0.5], [0.25, 0.75]]
        with pytest.raises(ValueError, match=r"^targets: expected integer ids, got dtype float"):
            surprisal([0.0, 1.0], p)
        with pytest.raises(ValueError, match=r"^targets: expected integer ids"):
            surprisal(torch.tensor([0.0, 1.0]), torch.tensor(p))
        with pytest.raises(ValueError, match=r"^targets: expected shape \(2,\).*got \(3,\)"):
            surprisal([0, 1, 1], p)
        with pytest.raises(ValueError, match=r"^targets: .*\[0, 2\), got 2"):
            surprisal([0, 2], p)
        with pytest.raises(ValueError, match=r"^targets: .*\[0, 2\), got -1"):
            surprisal([-1, 0], p)
        # masked positions' targets are not checked either
        out = surprisal([0, 7], p, where=[True, False])
        assert out.tolist() == [pytest.approx(LN2, rel=1e-15), 0.0]

    def test_zero_probability_target_is_inf(self) -> None:
        assert surprisal(1, [1.0, 0.0]) == math.inf
        assert surprisal(1, logits=[0.0, NINF]) == math.inf
        assert surprisal(0, logits=[0.0, NINF]) == 0.0


class TestAgainstLibraries:
    """Independent implementations: scipy, torch, a plain loop."""

    def test_plain_python_loop(self) -> None:
        rng = _rng(5)
        p = _softmax(rng.normal(size=(5, 9)) * 2)
        q = _softmax(rng.normal(size=(5, 9)) * 2)
        p[0, 3] = 0.0
        p[0] /= p[0].sum()
        for i in range(5):
            h = -sum(x * math.log(x) for x in p[i] if x > 0)
            kl = sum(x * math.log(x / y) for x, y in zip(p[i], q[i]) if x > 0)
            ce = -sum(x * math.log(y) for x, y in zip(p[i], q[i]) if x > 0)
            tv = 0.5 * sum(abs(x - y) for x, y in zip(p[i], q[i]))
            assert entropy(p[i]) == pytest.approx(h, rel=1e-13)
            assert kl_divergence(p[i], q[i]) == pytest.approx(kl, rel=1e-12)
            assert cross_entropy(p[i], q[i]) == pytest.approx(ce, rel=1e-13)
            assert total_variation(p[i], q[i]) == pytest.approx(tv, rel=1e-13)

    def test_scipy(self) -> None:
        rng = _rng(6)
        p = _softmax(rng.normal(size=(7, 30)))
        q = _softmax(rng.normal(size=(7, 30)))
        np.testing.assert_allclose(entropy(p), scipy.special.entr(p).sum(-1), rtol=1e-13)
        np.testing.assert_allclose(entropy(p), scipy.stats.entropy(p, axis=-1), rtol=1e-13)
        np.testing.assert_allclose(
            kl_divergence(p, q), scipy.special.rel_entr(p, q).sum(-1), rtol=1e-12
        )
        # jensenshannon returns the square root of the divergence
        js_ref = jensenshannon(p, q, axis=-1) ** 2
        np.testing.assert_allclose(js_divergence(p, q), js_ref, rtol=1e-10)
        np.testing.assert_allclose(
            js_divergence(p, q, base=2), jensenshannon(p, q, axis=-1, base=2) ** 2, rtol=1e-10
        )
        # logits through scipy's log_softmax
        a = rng.normal(size=(7, 30)) * 5
        np.testing.assert_allclose(
            entropy(logits=a),
            -(np.exp(scipy.special.log_softmax(a, -1)) * scipy.special.log_softmax(a, -1)).sum(-1),
            rtol=1e-12,
        )

    @pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")
    def test_torch_functional(self) -> None:
        rng = _rng(7)
        a = torch.tensor(rng.normal(size=(4, 12)) * 3)
        b = torch.tensor(rng.normal(size=(4, 12)) * 3)
        lp, lq = F.log_softmax(a, -1), F.log_softmax(b, -1)
        # F.kl_div(input=log q, target=p): the reversed argument order
        kl_ref = F.kl_div(lq, lp, reduction="none", log_target=True).sum(-1)
        torch.testing.assert_close(
            kl_divergence(p_logits=a, q_logits=b), kl_ref, rtol=1e-12, atol=1e-14
        )
        # 'batchmean' = the per-row mean of KL; 'mean' divides by the element count
        got = kl_divergence(p_logits=a, q_logits=b)
        torch.testing.assert_close(
            got.mean(),
            F.kl_div(lq, lp, reduction="batchmean", log_target=True),
            rtol=1e-12,
            atol=0,
        )
        torch.testing.assert_close(
            got.sum() / a.numel(),
            F.kl_div(lq, lp, reduction="mean", log_target=True),
            rtol=1e-12,
            atol=0,
        )
        # soft-target F.cross_entropy(q_logits, p) = H(p, q)
        ce_ref = F.cross_entropy(b, lp.exp(), reduction="none")
        torch.testing.assert_close(
            cross_entropy(lp.exp(), q_logits=b), ce_ref, rtol=1e-12, atol=1e-14
        )
        # torch.distributions
        d = torch.distributions.Categorical(logits=a)
        torch.testing.assert_close(entropy(logits=a), d.entropy(), rtol=1e-12, atol=1e-14)

    @pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0, 3.0, math.inf])
    def test_renyi_closed_forms(self, alpha: float) -> None:
        p = np.array([0.5, 0.25, 0.125, 0.125, 0.0])
        q = np.array([0.25, 0.25, 0.25, 0.125, 0.125])
        if alpha == 0:
            h = math.log(4)
            d = -math.log(q[p > 0].sum())
        elif math.isinf(alpha):
            h = -math.log(p.max())
            d = math.log(max(p[i] / q[i] for i in range(5) if p[i] > 0))
        else:
            nz = p > 0
            h = math.log(sum(p[nz] ** alpha)) / (1 - alpha)
            d = math.log(sum(p[nz] ** alpha * q[nz] ** (1 - alpha))) / (alpha - 1)
        assert renyi_entropy(p, alpha) == pytest.approx(h, rel=1e-13, abs=1e-15)
        assert renyi_divergence(p, q, alpha) == pytest.approx(d, rel=1e-13, abs=1e-15)

    def test_renyi_zero_q(self) -> None:
        # p_i > 0 = q_i: +inf for alpha >= 1, contributes 0 below 1
        p, q = [0.5, 0.5], [1.0, 0.0]
        for alpha in (1.0, 2.0, math.inf):
            assert renyi_divergence(p, q, alpha) == math.inf
        for alpha in (0.0, 0.5):
            ref = math.log(sum(x**alpha * y ** (1 - alpha) for x, y in zip(p, q) if y > 0))
            assert renyi_divergence(p, q, alpha) == pytest.approx(ref / (alpha - 1), rel=1e-14)


# =========================================================================== 2. accuracy


def _accuracy_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, p logits, q logits) in float64; rounded per dtype by the test."""
    rng = _rng(20240601)
    cases = []
    cases.append(("random", rng.normal(size=(3, 7)) * 2, rng.normal(size=(3, 7)) * 2))
    cases.append(("random-V1000", rng.normal(size=(2, 1000)) * 3, rng.normal(size=(2, 1000)) * 3))
    a = rng.normal(size=(3, 10))
    a[:, 0] = [12.0, 25.0, 40.0]
    b = rng.normal(size=(3, 10))
    b[:, 0] = [11.0, 30.0, 8.0]
    cases.append(("near-deterministic", a, b))
    cases.append(("logits-1e4", rng.normal(size=(3, 8)) * 1e4, rng.normal(size=(3, 8)) * 1e4))
    big = 1e4 + rng.normal(size=(3, 8)) * 2
    cases.append(("offset-1e4", big, -1e4 + rng.normal(size=(3, 8)) * 2))
    a = rng.normal(size=(3, 50)) * 2
    b = a + rng.normal(size=(3, 50)) * np.array([[1e-2], [1e-4], [1e-6]])
    cases.append(("p-close-to-q", a, b))
    a = rng.normal(size=(4, 12)) * 2
    b = rng.normal(size=(4, 12)) * 2
    a[rng.random((4, 12)) < 0.3] = NINF
    b[np.isneginf(a)] = NINF  # same support: finite divergences
    b[3, np.isfinite(a[3]).nonzero()[0][0]] = NINF  # row 3: p > 0 where q = 0
    a[2, np.isfinite(b[2]).nonzero()[0][-1]] = NINF  # row 2: q > 0 where p = 0
    a[:, 0], b[:, 0] = 0.5, -0.5  # no all -inf row
    cases.append(("neg-inf-entries", a, b))
    return cases


ACCURACY_CASES = _accuracy_cases()


#: the kernels a numpy input can run on: the array code always, the compiled one if built
KERNELS = ["array"] + (["native"] if _kernels._native is not None else [])


@contextlib.contextmanager
def _kernel(which: str) -> Iterator[None]:
    """Run numpy inputs on the array code (``"array"``) or the compiled kernel."""
    saved = _kernels._native
    if which == "array":
        _kernels._native = None
    try:
        yield
    finally:
        _kernels._native = saved


def _check_case(
    name: str, a64: np.ndarray, b64: np.ndarray, dtype: str, form: str, renyi: bool = True
) -> None:
    """Every measure of the (rounded) inputs against mpmath."""
    a = _as_dtype(a64, dtype)
    b = _as_dtype(b64, dtype)
    if form == "logits":
        kw = {"p_logits": a, "q_logits": b}
        one = {"logits": a}
        pr = [MpRow.from_logits(r) for r in _exact_rows(a)]
        qr = [MpRow.from_logits(r) for r in _exact_rows(b)]
    elif form == "log_probs":
        la = _as_dtype(scipy.special.log_softmax(a64, -1), dtype)
        lb = _as_dtype(scipy.special.log_softmax(b64, -1), dtype)
        kw = {"p_log_probs": la, "q_log_probs": lb}
        one = {"log_probs": la}
        pr = [MpRow.from_logits(r) for r in _exact_rows(la)]
        qr = [MpRow.from_logits(r) for r in _exact_rows(lb)]
    else:
        pa = _as_dtype(_softmax(a64), dtype)
        pb = _as_dtype(_softmax(b64), dtype)
        kw = {"p": pa, "q": pb}
        one = {"p": pa}
        # probabilities that sum to 1 within the tolerance describe the renormalised p
        pr = [MpRow.from_probs(r) for r in _exact_rows(pa)]
        qr = [MpRow.from_probs(r) for r in _exact_rows(pb)]
    n, v = a64.shape
    targets = np.arange(n) * 7919 % v
    calls: dict[str, Callable[[], Any]] = {
        "entropy": lambda: entropy(**one),
        "cross_entropy": lambda: cross_entropy(**kw),
        "kl": lambda: kl_divergence(**kw),
        "js": lambda: js_divergence(**kw),
        "surprisal": lambda: surprisal(targets, **one),
        "tv": lambda: total_variation(**kw),
    }
    refs: dict[str, Callable[[int], MPF]] = {
        "entropy": lambda i: mp_entropy(pr[i]),
        "cross_entropy": lambda i: mp_cross(pr[i], qr[i]),
        "kl": lambda i: mp_kl(pr[i], qr[i]),
        "js": lambda i: mp_js(pr[i], qr[i]),
        "surprisal": lambda i: -pr[i].lp[targets[i]],
        "tv": lambda i: mp_tv(pr[i], qr[i]),
    }
    if renyi:
        for alpha in (0.5, 2.0, math.inf):
            calls[f"renyi_entropy[{alpha}]"] = lambda al=alpha: renyi_entropy(alpha=al, **one)
            calls[f"renyi_div[{alpha}]"] = lambda al=alpha: renyi_divergence(alpha=al, **kw)
            refs[f"renyi_entropy[{alpha}]"] = lambda i, al=alpha: mp_renyi_entropy(pr[i], al)
            refs[f"renyi_div[{alpha}]"] = lambda i, al=alpha: mp_renyi_div(pr[i], qr[i], al)
    with mpmath.workdps(50):
        exact = {what: [ref(i) for i in range(n)] for what, ref in refs.items()}
    failures = []
    for kernel in KERNELS:
        with _kernel(kernel):
            got = {what: _values(call()) for what, call in calls.items()}
        for what, vals in got.items():
            assert len(vals) == n
            for i in range(n):
                try:
                    assert_exact(
                        vals[i], exact[what][i], dtype, f"{name}/{form} {what} row {i} ({kernel})"
                    )
                except AssertionError as exc:
                    failures.append(str(exc))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize(("name", "a", "b"), ACCURACY_CASES, ids=[c[0] for c in ACCURACY_CASES])
def test_accuracy_logits_vs_mpmath(name: str, a: np.ndarray, b: np.ndarray, dtype: str) -> None:
    if name == "random-V1000" and dtype in ("float16", "bfloat16"):
        a, b = a[:1], b[:1]
    _check_case(name, a, b, dtype, "logits")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("form", ["probs", "log_probs"])
@pytest.mark.parametrize(
    ("name", "a", "b"),
    [c for c in ACCURACY_CASES if c[0] in ("random", "near-deterministic", "neg-inf-entries")],
    ids=["random", "near-deterministic", "neg-inf-entries"],
)
def test_accuracy_probs_and_log_probs_vs_mpmath(
    name: str, a: np.ndarray, b: np.ndarray, form: str, dtype: str
) -> None:
    _check_case(name, a, b, dtype, form)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_accuracy_vocab_50k(dtype: str) -> None:
    rng = _rng(50_000)
    a = rng.normal(size=(1, 50_000)) * 3
    b = a + rng.normal(size=(1, 50_000))
    a[0, :100] = NINF
    b[0, :100] = NINF
    _check_case("vocab-50k", a, b, dtype, "logits", renyi=False)


def test_accuracy_check_can_fail() -> None:
    """The comparison itself: a relative error of 1e-11 on an O(1) value is caught."""
    with mpmath.workdps(50):
        ref = mpmath.log(2)
        assert_exact(float(ref), ref, "float64", "ln 2")
        with pytest.raises(AssertionError, match="rel err"):
            assert_exact(float(ref) * (1 + 1e-11), ref, "float64", "ln 2")
        with pytest.raises(AssertionError, match="got nan"):
            assert_exact(math.nan, ref, "float64", "ln 2")
        with pytest.raises(AssertionError):
            assert_exact(1e300, mpmath.inf, "float64", "inf")


# =========================================================================== 4. numpy/torch


DTYPES = ["float64", "float32", "float16", "bfloat16"]
TORCH_DTYPE = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def _measure_calls(targets: np.ndarray) -> dict[str, Callable[[Any, Any], Any]]:
    """Every measure as a function of (p logits, q logits) of one array type."""

    def tgt(a: Any) -> Any:
        return torch.as_tensor(targets) if isinstance(a, torch.Tensor) else targets

    return {
        "entropy": lambda a, b: entropy(logits=a),
        "cross_entropy": lambda a, b: cross_entropy(p_logits=a, q_logits=b),
        "kl": lambda a, b: kl_divergence(p_logits=a, q_logits=b),
        "js": lambda a, b: js_divergence(p_logits=a, q_logits=b),
        "surprisal": lambda a, b: surprisal(tgt(a), logits=a),
        "renyi_entropy": lambda a, b: renyi_entropy(logits=a, alpha=2.0),
        "renyi_div": lambda a, b: renyi_divergence(p_logits=a, q_logits=b, alpha=0.5),
        "tv": lambda a, b: total_variation(p_logits=a, q_logits=b),
        # these two take probabilities (see _PROBS)
        "kl_probs_base2": lambda a, b: kl_divergence(a, b, base=2, normalize=True),
        "js_probs": lambda a, b: js_divergence(a, b, normalize=True),
    }


_PROBS = {"kl_probs_base2", "js_probs"}
_ONE_INPUT = {"entropy", "surprisal", "renyi_entropy"}


def _parity_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = _rng(40)
    a = rng.normal(size=(2, 3, 9)) * 3
    b = rng.normal(size=(2, 3, 9)) * 3
    a[0, 1, 2] = NINF
    b[0, 1, 2] = NINF
    b[1, 2, 4] = NINF  # an infinite KL / cross-entropy
    t = rng.integers(0, 9, size=(2, 3))
    return a, b, t


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_torch_parity_and_result_types(dtype: str) -> None:
    a, b, t = _parity_inputs()
    want_np = np.float64 if dtype == "float64" else np.float32
    want_t = torch.float64 if dtype == "float64" else torch.float32
    rtol = 1e-12 if dtype == "float64" else 1e-6
    for name, call in _measure_calls(t).items():
        x, y = (_softmax(a), _softmax(b)) if name in _PROBS else (a, b)
        ta = torch.tensor(x, dtype=TORCH_DTYPE[dtype])
        tb = torch.tensor(y, dtype=TORCH_DTYPE[dtype])
        # the exact values of the rounded inputs, as float64 (the reference)
        ra, rb = ta.to(torch.float64).numpy(), tb.to(torch.float64).numpy()
        ref = np.asarray(call(ra, rb), dtype=np.float64)
        got_t = call(ta, tb)
        assert isinstance(got_t, torch.Tensor), name
        assert got_t.dtype == want_t, (name, got_t.dtype)
        assert got_t.device == ta.device, name
        assert got_t.shape == (2, 3), name
        np.testing.assert_allclose(got_t.numpy(), ref, rtol=rtol, atol=1e-7, err_msg=name)
        if dtype == "bfloat16":
            continue  # numpy has no bfloat16
        na, nb = x.astype(dtype), y.astype(dtype)
        got_n = call(na, nb)
        assert isinstance(got_n, np.ndarray) and got_n.dtype == want_np, (name, type(got_n))
        np.testing.assert_allclose(got_n, got_t.numpy(), rtol=rtol, atol=1e-7, err_msg=name)
        # 1-D numpy in: a numpy scalar out; 1-D torch in: a 0-d tensor
        one_t = t[1, 2]
        s = _measure_calls(np.array(one_t))[name](na[1, 2], nb[1, 2])
        assert isinstance(s, np.floating) and s.dtype == want_np, (name, type(s))
        assert float(s) == pytest.approx(ref[1, 2], rel=rtol), name
        s_t = _measure_calls(np.array(one_t))[name](ta[1, 2], tb[1, 2])
        assert isinstance(s_t, torch.Tensor) and s_t.shape == () and s_t.dtype == want_t


def test_lists_give_float64() -> None:
    out = kl_divergence([[0.5, 0.5]], [[0.25, 0.75]])
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    assert isinstance(entropy([0.5, 0.5]), np.float64)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mixed_numpy_and_torch_arguments(dtype: str) -> None:
    a, b, t = _parity_inputs()
    na, nb = a.astype(dtype), b.astype(dtype)
    ta, tb = torch.tensor(na), torch.tensor(nb)
    for name, call in _measure_calls(t).items():
        if name in _ONE_INPUT | _PROBS:
            continue
        ref = call(na, nb)
        for x, y in ((na, tb), (ta, nb)):
            got = call(x, y)
            assert isinstance(got, torch.Tensor), name
            np.testing.assert_allclose(got.numpy(), ref, rtol=1e-6, atol=1e-7, err_msg=name)
    # a list mixed with a tensor becomes a tensor on the tensor's device
    got = kl_divergence([0.5, 0.5], torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert isinstance(got, torch.Tensor)
    assert float(got) == pytest.approx(scipy.stats.entropy([0.5, 0.5], [0.25, 0.75]), rel=1e-14)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_stays_on_device() -> None:
    a, b, t = _parity_inputs()
    ta, tb = torch.tensor(a, device="cuda"), torch.tensor(b, device="cuda")
    for name, call in _measure_calls(t).items():
        got = call(ta, tb)
        assert got.device == ta.device, name
        np.testing.assert_allclose(got.cpu().numpy(), call(a, b), rtol=1e-12, err_msg=name)


# --------------------------------------------------------------------------- gradients


def _grad_inputs(seed: int, with_ninf: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 5, generator=g, dtype=torch.float64) * 2
    b = torch.randn(3, 5, generator=g, dtype=torch.float64) * 2
    if with_ninf:
        a[0, 1] = NINF
        b[0, 1] = NINF
        a[2, 3] = NINF  # q > 0 where p = 0: finite KL, gradient still defined
    return a.requires_grad_(), b.requires_grad_()


GRAD_CALLS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "entropy": lambda a, b: entropy(logits=a),
    "cross_entropy": lambda a, b: cross_entropy(p_logits=a, q_logits=b),
    "kl": lambda a, b: kl_divergence(p_logits=a, q_logits=b),
    "kl_reverse": lambda a, b: kl_divergence(p_logits=b, q_logits=a),
    "js": lambda a, b: js_divergence(p_logits=a, q_logits=b),
    "surprisal": lambda a, b: surprisal(torch.tensor([0, 4, 2]), logits=a),
    "kl_log_probs": lambda a, b: kl_divergence(p_log_probs=a.log_softmax(-1), q_logits=b),
    "kl_probs_normalize": lambda a, b: kl_divergence(a.exp(), b.exp(), normalize=True),
}


@pytest.mark.parametrize("name", list(GRAD_CALLS))
def test_gradcheck_float64(name: str) -> None:
    a, b = _grad_inputs(60)
    assert torch.autograd.gradcheck(GRAD_CALLS[name], (a, b), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("name", ["entropy", "cross_entropy", "kl", "js", "surprisal"])
def test_gradcheck_with_neg_inf_logits(name: str) -> None:
    a, b = _grad_inputs(61, with_ninf=True)
    # -inf stays -inf under finite-difference perturbation: its numerical gradient is 0
    assert torch.autograd.gradcheck(GRAD_CALLS[name], (a, b), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("name", ["entropy", "cross_entropy", "kl", "js", "surprisal"])
def test_neg_inf_logits_give_zero_gradient_not_nan(name: str) -> None:
    a, b = _grad_inputs(62, with_ninf=True)
    out = GRAD_CALLS[name](a, b)
    assert torch.isfinite(out).all(), name
    out.sum().backward()
    for x in (a, b):
        if x.grad is None:
            continue
        assert torch.isfinite(x.grad).all(), (name, x.grad)
        assert (x.grad[torch.isneginf(x.detach())] == 0).all(), (name, x.grad)


def test_gradient_matches_torch_reference() -> None:
    """The analytic gradient of KL(p||q) in q's logits is q - p (per row)."""
    a, b = _grad_inputs(63)
    kl_divergence(p_logits=a, q_logits=b).sum().backward()
    assert b.grad is not None
    expected = torch.softmax(b.detach(), -1) - torch.softmax(a.detach(), -1)
    torch.testing.assert_close(b.grad, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.filterwarnings("error")
def test_grad_inputs_do_not_warn() -> None:
    p = torch.tensor([0.25, 0.75], dtype=torch.float64, requires_grad=True)
    kl_divergence(p, torch.tensor([0.5, 0.5], dtype=torch.float64)).backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    entropy(log_probs=torch.log(p))
    renyi_entropy(log_probs=torch.log(p), alpha=2.0)
    total_variation(p, q_log_probs=torch.log(p))
