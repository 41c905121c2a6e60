"""infolens.calibration against independent references: torchmetrics (ECE, MCE, RMSCE),
scikit-learn (Brier), scipy (temperature fit), and plain loops (quantile bins, the
debiased estimator), plus properties and error messages."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infolens.calibration import (
    CalibrationAccumulator,
    brier_score,
    expected_calibration_error,
    fit_temperature,
    mean_nll,
    reliability_diagram,
    top_label,
)

NORMS = ("l1", "l2", "max")
_TWO: Any = 2.0  # a float where an int is expected


def _softmax64(z: np.ndarray, t: float = 1.0) -> np.ndarray:
    a = np.asarray(z, dtype=np.float64) / t
    a = a - a.max(axis=1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=1, keepdims=True)


def _sample(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row of ``p`` by inverse CDF."""
    u = rng.random((p.shape[0], 1))
    return np.minimum((u > p.cumsum(axis=1)).sum(axis=1), p.shape[1] - 1)


# ------------------------------------------------------------------ torchmetrics parity


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n_bins", [1, 4, 15, 33])
def test_ece_equals_torchmetrics_multiclass(norm: str, n_bins: int) -> None:
    torch = pytest.importorskip("torch")
    tmc = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(n_bins)
    n, k = 4000, 7
    z = rng.normal(size=(n, k)) * rng.uniform(0.5, 4, size=(n, 1))
    probs = torch.softmax(torch.tensor(z, dtype=torch.float32), dim=1)
    probs[:50] = torch.nn.functional.one_hot(torch.tensor(rng.integers(0, k, 50)), k).float()
    target = torch.tensor(_sample(_softmax64(z, 0.7), rng))
    ref = float(
        tmc.multiclass_calibration_error(probs, target, num_classes=k, n_bins=n_bins, norm=norm)
    )
    conf, ok = top_label(probs.double().numpy(), target.numpy())
    assert (conf == 1.0).sum() >= 50  # the point bin {1} is exercised
    assert expected_calibration_error(conf, ok, n_bins, norm) == pytest.approx(ref, abs=1e-6)
    # torch in, the same out
    t_conf, t_ok = torch.tensor(conf), torch.tensor(ok)
    assert expected_calibration_error(t_conf, t_ok, n_bins, norm) == expected_calibration_error(
        conf, ok, n_bins, norm
    )


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n_bins", [2, 10, 15, 50])
def test_ece_equals_torchmetrics_binary(norm: str, n_bins: int) -> None:
    torch = pytest.importorskip("torch")
    tmc = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(100 + n_bins)
    p = rng.random(5000).astype(np.float32)
    p[:20], p[20:40] = 0.0, 1.0
    y = (rng.random(5000) < p.astype(np.float64) ** 1.4).astype(np.int64)
    ref = float(
        tmc.binary_calibration_error(torch.tensor(p), torch.tensor(y), n_bins=n_bins, norm=norm)
    )
    assert expected_calibration_error(p, y, n_bins, norm) == pytest.approx(ref, abs=1e-6)
    assert expected_calibration_error(
        p, y.astype(bool), n_bins, norm
    ) == expected_calibration_error(p, y, n_bins, norm)


def test_torchmetrics_docstring_example() -> None:
    # torchmetrics' documented numbers: 0.2900, 0.2918, 0.3167
    conf, y = [0.25, 0.25, 0.55, 0.75, 0.75], [0, 0, 1, 1, 1]
    tm = pytest.importorskip("torchmetrics.functional.classification")
    torch = pytest.importorskip("torch")
    for norm in NORMS:
        ref = float(
            tm.binary_calibration_error(torch.tensor(conf), torch.tensor(y), n_bins=2, norm=norm)
        )
        assert expected_calibration_error(conf, y, n_bins=2, norm=norm) == pytest.approx(
            ref, abs=1e-6
        )


# ------------------------------------------------------------------ debiased estimate


def _kumar_debiased_l2(conf: np.ndarray, y: np.ndarray, edges: np.ndarray) -> float:
    """Kumar, Liang & Ma (2019), unbiased_l2_ce: per bin of n >= 2 predictions
    (mean(c) - mean(y))^2 - mean(y)(1 - mean(y)) / (n - 1), weighted by n / N; 0 for
    smaller bins; sqrt of max(0, sum). Bins [e_b, e_b+1) and {1} as torchmetrics."""
    total = 0.0
    groups: list[list[tuple[float, int]]] = [[] for _ in range(len(edges))]
    for c, v in zip(conf.tolist(), y.tolist()):
        b = len(edges) - 1 if c == 1.0 else max(i for i in range(len(edges) - 1) if edges[i] <= c)
        groups[b].append((c, v))
    for g in groups:
        if len(g) < 2:
            continue
        mc = sum(c for c, _ in g) / len(g)
        my = sum(v for _, v in g) / len(g)
        total += len(g) / conf.size * ((mc - my) ** 2 - my * (1 - my) / (len(g) - 1))
    return math.sqrt(max(total, 0.0))


@pytest.mark.parametrize("n,n_bins", [(30, 15), (500, 10), (3000, 40)])
def test_debiased_l2_matches_reference(n: int, n_bins: int) -> None:
    rng = np.random.default_rng(n)
    c = rng.random(n)
    y = (rng.random(n) < c**1.3).astype(int)
    edges = np.arange(n_bins + 1) / n_bins
    ref = _kumar_debiased_l2(c, y, edges)
    got = expected_calibration_error(c, y, n_bins, "l2", debias=True)
    assert got == pytest.approx(ref, abs=1e-12)
    assert got <= expected_calibration_error(c, y, n_bins, "l2") + 1e-15


def test_debiased_l2_matches_torchmetrics_private_when_bins_are_full() -> None:
    torch = pytest.importorskip("torch")
    ce = pytest.importorskip("torchmetrics.functional.classification.calibration_error")
    if not hasattr(ce, "_ce_compute"):
        pytest.skip("torchmetrics' private _ce_compute is gone")
    rng = np.random.default_rng(7)
    c = rng.random(20000)
    y = (rng.random(20000) < c**1.2).astype(np.float64)
    ref = float(ce._ce_compute(torch.tensor(c), torch.tensor(y), 10, norm="l2", debias=True))
    assert expected_calibration_error(c, y, 10, "l2", debias=True) == pytest.approx(ref, rel=1e-9)


def test_debiased_is_near_zero_for_a_calibrated_model() -> None:
    rng = np.random.default_rng(3)
    c = rng.random(2000)
    y = rng.random(2000) < c  # calibrated by construction
    plug = expected_calibration_error(c, y, 15, "l2")
    deb = expected_calibration_error(c, y, 15, "l2", debias=True)
    assert deb < plug
    assert deb < 0.02


# ------------------------------------------------------------------ quantile bins


def _slow_quantile(conf: np.ndarray, y: np.ndarray, n_bins: int, norm: str) -> float:
    """Loops: edges 0, s[floor(bN/B)] (0 < b < B), 1; bins [lo, hi) and the point {1}."""
    s = sorted(conf.tolist())
    n = len(s)
    edges = [0.0] + [s[(b * n) // n_bins] for b in range(1, n_bins)] + [1.0]
    bins = [(edges[b], edges[b + 1]) for b in range(n_bins)]
    gaps, weights = [], []
    members = [[(c, v) for c, v in zip(conf, y) if lo <= c < hi] for lo, hi in bins]
    members.append([(c, v) for c, v in zip(conf, y) if c == 1.0])
    for m in members:
        if m:
            gaps.append(abs(sum(v for _, v in m) / len(m) - sum(c for c, _ in m) / len(m)))
            weights.append(len(m) / n)
    if norm == "l1":
        return sum(w * g for w, g in zip(weights, gaps))
    if norm == "l2":
        return math.sqrt(sum(w * g * g for w, g in zip(weights, gaps)))
    return max(gaps)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n,n_bins", [(97, 10), (400, 15), (12, 20)])
def test_quantile_matches_slow_reference(norm: str, ties: bool, n: int, n_bins: int) -> None:
    rng = np.random.default_rng(n * 31 + n_bins)
    c = rng.random(n)
    if ties:
        c = np.round(c, 1)
    y = rng.random(n) < c
    got = expected_calibration_error(c, y, n_bins, norm, "quantile")
    assert got == pytest.approx(_slow_quantile(c, y, n_bins, norm), abs=1e-12)


def test_quantile_bins_have_equal_mass_without_ties() -> None:
    c = np.random.default_rng(0).random(1000)
    d = reliability_diagram(c, c > 0.5, n_bins=8, strategy="quantile")
    assert d.count[:-1].tolist() == [125] * 8 and d.count[-1] == 0


# ------------------------------------------------------------------ properties

confidence_lists = st.lists(
    st.tuples(st.floats(0, 1, allow_nan=False), st.booleans()), min_size=1, max_size=200
)


@settings(max_examples=150, deadline=None)
@given(
    data=confidence_lists,
    n_bins=st.integers(1, 30),
    strategy=st.sampled_from(["uniform", "quantile"]),
)
def test_norms_are_ordered_and_in_unit_interval(data: list, n_bins: int, strategy: str) -> None:
    c = np.array([d[0] for d in data])
    y = np.array([d[1] for d in data])
    l1, l2, mx = (expected_calibration_error(c, y, n_bins, nm, strategy) for nm in NORMS)
    deb = expected_calibration_error(c, y, n_bins, "l2", strategy, debias=True)
    assert 0.0 <= l1 <= l2 + 1e-12
    assert l2 <= mx + 1e-12
    assert mx <= 1.0
    assert 0.0 <= deb <= l2 + 1e-12


@settings(max_examples=100, deadline=None)
@given(groups=st.lists(st.integers(0, 4), min_size=1, max_size=20), n_bins=st.integers(1, 20))
def test_ece_is_zero_when_every_bin_is_calibrated(groups: list[int], n_bins: int) -> None:
    # each group: 4 predictions of confidence j/4, j of them right; a bin holds whole
    # groups (equal confidences), so its accuracy equals its mean confidence exactly
    c = np.repeat([j / 4 for j in groups], 4)
    y = np.concatenate([[True] * j + [False] * (4 - j) for j in groups])
    for norm in NORMS:
        assert expected_calibration_error(c, y, n_bins, norm) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    data=confidence_lists, cuts=st.lists(st.integers(0, 200), max_size=4), n_bins=st.integers(1, 20)
)
def test_accumulator_merge_equals_one_pass_bit_for_bit(
    data: list, cuts: list[int], n_bins: int
) -> None:
    c = np.array([d[0] for d in data])
    y = np.array([d[1] for d in data])
    edges = sorted({0, len(c), *(min(x, len(c)) for x in cuts)})
    parts = []
    for lo, hi in itertools.pairwise(edges):
        a = CalibrationAccumulator(n_bins)
        a.update(c[lo:hi], y[lo:hi])
        parts.append(a)
    merged = CalibrationAccumulator(n_bins)
    for a in reversed(parts):
        merged.merge(a)
    one = CalibrationAccumulator(n_bins)
    one.update(c, y)
    assert merged.to_json() == one.to_json()
    s = CalibrationAccumulator.from_json(merged.to_json()).compute()
    d = reliability_diagram(c, y, n_bins)
    assert s.ece == expected_calibration_error(c, y, n_bins) == d.summary().ece
    assert s.mce == expected_calibration_error(c, y, n_bins, "max")
    assert s.brier_top_label == pytest.approx(brier_score(c, y), abs=1e-12)
    assert s.accuracy == pytest.approx(y.mean())


def test_accumulator_update_logits_matches_batch_functions() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(size=(600, 6)) * 2
    z[:, 5] = -np.inf
    y = _sample(_softmax64(z), rng)
    acc = CalibrationAccumulator(12)
    for lo in range(0, 600, 128):
        acc.update_logits(z[lo : lo + 128].astype(np.float32), y[lo : lo + 128], temperature=1.5)
    s = acc.compute(base=2)
    z32 = z.astype(np.float32)
    conf, ok = top_label(logits=z32, labels=y, temperature=1.5)
    assert s.ece == expected_calibration_error(conf, ok, 12)
    assert s.nll == pytest.approx(mean_nll(z32, y, temperature=1.5, base=2), rel=1e-12)
    assert s.brier == pytest.approx(brier_score(_softmax64(z32, 1.5), y), rel=1e-12)
    assert s.n == s.n_logit_rows == 600


# ------------------------------------------------------------------ Brier vs scikit-learn


@pytest.mark.parametrize("k", [2, 3, 10])
def test_brier_multiclass_equals_sklearn(k: int) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(k)
    p = _softmax64(rng.normal(size=(800, k)) * 2)
    y = rng.integers(0, k, 800)
    ref = metrics.brier_score_loss(y, p, labels=np.arange(k), scale_by_half=False)
    assert brier_score(p, y) == pytest.approx(ref, rel=1e-12)
    conf, ok = p.max(axis=1), p.argmax(axis=1) == y
    assert brier_score(p, y, top_label=True) == pytest.approx(
        metrics.brier_score_loss(ok, conf), rel=1e-12
    )


def test_brier_binary_equals_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    assert brier_score(p, y) == pytest.approx(
        metrics.brier_score_loss(y, p, pos_label=1), rel=1e-12
    )
    torch = pytest.importorskip("torch")
    assert brier_score(torch.tensor(p), torch.tensor(y)) == pytest.approx(
        brier_score(p, y), rel=1e-15
    )


# ------------------------------------------------------------------ temperature scaling


def _scipy_temperature(
    z: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (1e-2, 1e2)
) -> float:
    opt = pytest.importorskip("scipy.optimize")
    special = pytest.importorskip("scipy.special")
    z = np.asarray(z, dtype=np.float64)
    zy = z[np.arange(len(y)), y]

    def nll(u: float) -> float:
        t = math.exp(u)
        return float(np.mean(special.logsumexp(z / t, axis=1) - zy / t))

    r = opt.minimize_scalar(
        nll,
        bounds=(math.log(bounds[0]), math.log(bounds[1])),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return math.exp(r.x)


@pytest.fixture(scope="module")
def planted() -> dict[float, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for t in (0.5, 1.0, 2.0):
        rng = np.random.default_rng(int(t * 10))
        z = rng.normal(size=(20_000, 10)) * 2.5
        out[t] = (z, _sample(_softmax64(z, t), rng))
    return out


@pytest.mark.parametrize("t_true", [0.5, 1.0, 2.0])
def test_fit_temperature_recovers_planted_temperature(planted: dict, t_true: float) -> None:
    z, y = planted[t_true]
    r = fit_temperature(z, y)
    assert r.bound is None
    assert r.temperature == pytest.approx(t_true, rel=0.02)
    assert r.temperature == pytest.approx(_scipy_temperature(z, y), rel=1e-6)
    assert r.after.nll <= r.before.nll + 1e-12  # in-sample optimum (T = 1 is a candidate)
    assert r.held_out is not None
    # held-out is scored at fold temperatures, so it cannot beat the in-sample optimum by much
    assert r.held_out.nll >= r.after.nll - 1e-3
    if t_true != 1.0:  # miscalibrated: the honest number still improves a lot
        assert r.held_out.nll < r.before.nll - 0.05
        assert r.held_out.ece < r.before.ece / 3
        assert r.held_out.brier < r.before.brier
    else:  # already calibrated: T ~ 1 and nothing changes much
        assert abs(r.held_out.nll - r.before.nll) < 1e-3
        assert r.before.ece < 0.02


def test_held_out_scores_equal_manual_cross_validation(planted: dict) -> None:
    z, y = planted[2.0]
    z, y = z[:3000], y[:3000]
    r = fit_temperature(z, y, cv=4, seed=11, base=2)
    folds = np.array_split(np.random.default_rng(11).permutation(len(y)), 4)
    nll = np.empty(len(y))
    conf = np.empty(len(y))
    for i, test in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != i])
        t = _scipy_temperature(z[train], y[train])
        assert r.fold_temperatures[i] == pytest.approx(t, rel=1e-6)
        p = _softmax64(z[test], t)
        nll[test] = -np.log(p[np.arange(len(test)), y[test]])
        conf[test] = p.max(axis=1)
    assert r.held_out is not None
    assert r.held_out.nll == pytest.approx(nll.mean() / math.log(2), rel=1e-6)
    ok = z.argmax(axis=1) == y
    assert r.held_out.ece == pytest.approx(expected_calibration_error(conf, ok), abs=1e-6)
    assert r.before.nll == pytest.approx(mean_nll(z, y, base=2), rel=1e-12)


def test_in_sample_can_flatter_on_small_samples() -> None:
    # a calibrated model on 40 rows: in-sample "improves" (always), held-out cannot promise it
    rng = np.random.default_rng(2)
    z = rng.normal(size=(40, 4)) * 2
    y = _sample(_softmax64(z), rng)
    r = fit_temperature(z, y, cv=5)
    assert r.after.nll <= r.before.nll
    assert r.held_out is not None and r.held_out.nll >= r.after.nll


def test_all_correct_hits_lower_bound() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 5))
    y = z.argmax(axis=1)
    r = fit_temperature(z, y)
    assert r.bound == "lower" and r.temperature == 0.01
    assert r.accuracy == 1.0
    assert all(t == 0.01 for t in r.fold_temperatures)
    assert r.after.nll < r.before.nll
    r = fit_temperature(z, y, bounds=(0.2, 5.0), cv=None)
    assert r.bound == "lower" and r.temperature == 0.2 and r.held_out is None


def test_uninformative_logits_hit_upper_bound() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5000, 3)) * 5
    y = np.tile([0, 1, 2], 5000)[:5000]
    rng.shuffle(y)
    r = fit_temperature(z, y, bounds=(0.1, 10.0))
    # labels independent of the logits: the NLL falls towards log 3 as T grows
    assert r.bound == "upper" and r.temperature == 10.0
    assert _scipy_temperature(z, y, (0.1, 10.0)) == pytest.approx(10.0, rel=1e-4)


def test_fp16_logits_are_computed_in_float64() -> None:
    rng = np.random.default_rng(4)
    z16 = (rng.normal(size=(3000, 8)) * 8 + 30000).astype(np.float16)  # large, coarse values
    y = _sample(_softmax64(z16.astype(np.float64), 3.0), rng)
    r16 = fit_temperature(z16, y, cv=3)
    r64 = fit_temperature(z16.astype(np.float64), y, cv=3)
    assert r16.temperature == r64.temperature
    assert r16.held_out == r64.held_out
    assert math.isfinite(r16.after.nll)
    assert r16.temperature == pytest.approx(_scipy_temperature(z16, y), rel=1e-6)
    torch = pytest.importorskip("torch")
    rt = fit_temperature(torch.tensor(z16), torch.tensor(y), cv=3)
    assert rt.temperature == r16.temperature
    rb = fit_temperature(torch.tensor(z16.astype(np.float32)).bfloat16(), torch.tensor(y), cv=None)
    assert math.isfinite(rb.temperature)


def test_minus_inf_logits_are_zero_probability_classes() -> None:
    rng = np.random.default_rng(6)
    z = rng.normal(size=(2000, 6)) * 3
    y = _sample(_softmax64(z, 1.7), rng)
    wide = np.concatenate([z, np.full((2000, 3), -np.inf)], axis=1)
    a, b = fit_temperature(z, y, cv=3), fit_temperature(wide, y, cv=3)
    assert b.temperature == pytest.approx(a.temperature, rel=1e-12)
    assert a.held_out is not None and b.held_out is not None
    assert b.held_out.nll == pytest.approx(a.held_out.nll, rel=1e-12)
    assert b.held_out.brier == pytest.approx(a.held_out.brier, rel=1e-12)
    bad = wide.copy()
    bad[0, y[0]] = -np.inf
    assert mean_nll(bad, y) == math.inf
    with pytest.raises(ValueError, match=r"^labels: .*-inf"):
        fit_temperature(bad, y)


def test_mean_nll_base_and_temperature() -> None:
    rng = np.random.default_rng(8)
    z = rng.normal(size=(50, 4))
    y = rng.integers(0, 4, 50)
    p = _softmax64(z, 0.8)
    ref = -np.log(p[np.arange(50), y]).mean()
    assert mean_nll(z, y, temperature=0.8) == pytest.approx(ref, rel=1e-12)
    assert mean_nll(z, y, temperature=0.8, base=2) == pytest.approx(ref / math.log(2), rel=1e-12)


# ------------------------------------------------------------------ reliability diagram


def test_reliability_diagram_data_and_figure() -> None:
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(9)
    c = np.concatenate([rng.random(500), [1.0, 1.0]])
    y = rng.random(502) < c**2
    d = reliability_diagram(c, y, n_bins=10)
    assert d.edges.tolist() == [b / 10 for b in range(11)]
    assert d.count.sum() == 502 and d.count[-1] == 2
    ref_count = [int(((c >= b / 10) & (c < (b + 1) / 10)).sum()) for b in range(10)] + [2]
    assert d.count.tolist() == ref_count
    full = d.count > 0
    assert np.allclose(d.accuracy[full], d.n_correct[full] / d.count[full])
    fig = d.plot()
    assert len(fig.axes) == 2
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    reliability_diagram(c, y, n_bins=5, strategy="quantile", ax=ax)
    assert ax.patches
    plt.close("all")


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "call,pattern",
    [
        (
            lambda: expected_calibration_error([0.5, 1.2], [1, 0]),
            r"^confidences: expected probabilities in \[0, 1\], got 1.2",
        ),
        (
            lambda: expected_calibration_error([0.5, float("nan")], [1, 0]),
            r"^confidences: expected probabilities",
        ),
        (lambda: expected_calibration_error([], []), r"^confidences: expected at least one"),
        (lambda: expected_calibration_error([0.5, 0.6], [1]), r"^correct: expected 2 values"),
        (
            lambda: expected_calibration_error([0.5, 0.6], [1, 2]),
            r"^correct: expected booleans or 0/1",
        ),
        (
            lambda: expected_calibration_error([0.5], [1], n_bins=0),
            r"^n_bins: expected an integer >= 1",
        ),
        (
            lambda: expected_calibration_error([0.5], [1], n_bins=_TWO),
            r"^n_bins: expected an integer",
        ),
        (
            lambda: expected_calibration_error([0.5], [1], norm="l3"),
            r"^norm: expected one of 'l1', 'l2', 'max'",
        ),
        (
            lambda: expected_calibration_error([0.5], [1], strategy="equal"),
            r"^strategy: expected one of",
        ),
        (lambda: expected_calibration_error([0.5], [1], debias=True), r"^debias: .*norm='l2'"),
        (lambda: brier_score([[0.5, 0.6]], [0]), r"^probs: expected rows summing to 1"),
        (
            lambda: brier_score([[0.5, 0.5]], [2]),
            r"^labels: expected class indices in \[0, 1\], got 2",
        ),
        (lambda: brier_score([[0.5, 0.5]], [0.0]), r"^labels: expected integer class indices"),
        (lambda: brier_score([0.5], [0], top_label=True), r"^top_label: expected 2-D probs"),
        (lambda: fit_temperature([[0.0, 1.0]], [0, 1]), r"^labels: expected shape \(1,\)"),
        (lambda: fit_temperature([0.0, 1.0], [0]), r"^logits: expected shape \[rows, classes\]"),
        (
            lambda: fit_temperature([[0.0, float("nan")]], [0]),
            r"^logits: expected finite values or -inf, got nan",
        ),
        (
            lambda: fit_temperature([[0.0, float("inf")]], [0]),
            r"^logits: expected finite values or -inf",
        ),
        (
            lambda: fit_temperature([[float("-inf")] * 2], [0]),
            r"^logits: expected at least one finite logit",
        ),
        (
            lambda: fit_temperature([[0.0, 1.0]] * 3, [0, 1, 0], cv=4),
            r"^cv: expected at most one fold per row",
        ),
        (
            lambda: fit_temperature([[0.0, 1.0]] * 3, [0, 1, 0], cv=1),
            r"^cv: expected an integer >= 2",
        ),
        (lambda: fit_temperature([[0.0, 1.0]] * 3, [0, 1, 0], bounds=(2, 1)), r"^bounds: expected"),
        (
            lambda: fit_temperature([[0.0, 1.0]] * 3, [0, 1, 0], base=1),
            r"^base: expected None or a positive",
        ),
        (
            lambda: mean_nll([[0.0, 1.0]], [0], temperature=0),
            r"^temperature: expected a positive finite",
        ),
        (lambda: top_label(labels=[0]), r"^probs: expected either probs or logits=, got neither"),
        (
            lambda: CalibrationAccumulator(3).merge(CalibrationAccumulator(4)),
            r"^other: expected a CalibrationAccumulator with n_bins=3",
        ),
    ],
)
def test_bad_inputs_raise_one_line(call, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)


def test_accumulator_empty_updates_add_nothing() -> None:
    acc = CalibrationAccumulator(5)
    acc.update([], [])
    acc.update_logits(np.zeros((0, 4)), np.zeros(0, dtype=np.int64))
    s = acc.compute()
    assert s.n == 0 and math.isnan(s.ece) and math.isnan(s.nll)
    acc.update([0.3], [False])
    assert acc.compute().ece == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"^correct: expected 0 values"):
        acc.update([], [True])
