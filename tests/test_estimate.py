"""infolens.estimate: discrete and continuous estimators against scikit-learn, mpmath,
hand-computed counts and analytic Gaussian values."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infolens import estimate as E
from infolens.errors import InputError

sk = pytest.importorskip("sklearn.metrics")
skfs = pytest.importorskip("sklearn.feature_selection")

# --------------------------------------------------------------------------- entropy estimators

COUNTS = [3, 1, 1, 2, 5]  # N = 12, m = 5, f1 = 2


def _mp_plugin(c):
    n = sum(c)
    return -sum(mpmath.mpf(x) / n * mpmath.log(mpmath.mpf(x) / n) for x in c if x)


def test_entropy_estimators_on_hand_computed_counts():
    with mpmath.workdps(40):
        n, m = 12, 5
        plug = _mp_plugin(COUNTS)
        want = {"plugin": plug, "miller_madow": plug + mpmath.mpf(m - 1) / (2 * n)}
        # Chao-Shen: C = 1 - f1/N = 10/12; pa = C n_i / N
        cov = 1 - mpmath.mpf(2) / 12
        want["chao_shen"] = -sum(
            (cov * x / n) * mpmath.log(cov * x / n) / (1 - (1 - cov * x / n) ** n) for x in COUNTS
        )

        # Grassberger 2003: log N - 1/N sum n G(n)
        def g(v):
            return mpmath.digamma(v) + mpmath.mpf(-1) ** v / 2 * (
                mpmath.digamma(mpmath.mpf(v + 1) / 2) - mpmath.digamma(mpmath.mpf(v) / 2)
            )

        want["grassberger"] = mpmath.log(n) - sum(x * g(x) for x in COUNTS) / n
        # jackknife by brute force: leave each of the N samples out
        loo = []
        for i, x in enumerate(COUNTS):
            for _ in range(x):
                c = list(COUNTS)
                c[i] -= 1
                loo.append(_mp_plugin(c))
        want["jackknife"] = n * plug - mpmath.mpf(n - 1) / n * sum(loo)
    for est, w in want.items():
        assert E.entropy(counts=COUNTS, estimator=est) == pytest.approx(float(w), rel=1e-13), est
        assert E.entropy(counts=COUNTS, estimator=est, base=2) == pytest.approx(
            float(w) / math.log(2), rel=1e-13
        )
    # samples and counts agree, whatever the labels
    samples = [lab for lab, x in zip("abcde", COUNTS) for _ in range(x)]
    for est in E.ENTROPY_ESTIMATORS:
        assert E.entropy(samples, estimator=est) == pytest.approx(
            E.entropy(counts=COUNTS, estimator=est), rel=1e-14
        )


def test_nsb_against_a_slow_quadrature_and_the_truth_when_undersampled():
    # posterior mean by mpmath quadrature over beta (independent of the grid in the code)
    c, k = [4, 2, 1, 1, 0, 0, 0, 0], 8
    n = sum(c)

    def post(b):
        b = mpmath.mpf(b)
        ev = mpmath.loggamma(k * b) - mpmath.loggamma(n + k * b)
        ev += sum(mpmath.loggamma(x + b) - mpmath.loggamma(b) for x in c)
        dxi = k * mpmath.psi(1, k * b + 1) - mpmath.psi(1, b + 1)
        return mpmath.exp(ev) * dxi

    def h_given(b):
        b = mpmath.mpf(b)
        a = n + k * b
        return mpmath.digamma(a + 1) - sum((x + b) / a * mpmath.digamma(x + b + 1) for x in c)

    with mpmath.workdps(30):
        z = mpmath.quad(post, [0, 0.1, 1, 10, 100, mpmath.inf])
        mean = mpmath.quad(lambda b: post(b) * h_given(b), [0, 0.1, 1, 10, 100, mpmath.inf]) / z
    got = E.nsb_entropy(counts=c, k=k)
    assert got.mean == pytest.approx(float(mean), rel=1e-6)
    assert 0 < got.std < 1
    # under-sampled Dirichlet draws over 10,000 symbols: the plug-in is far off, NSB close
    rng = np.random.default_rng(4)
    kk = 10_000
    errs_nsb, errs_plugin = [], []
    for _ in range(3):
        p = rng.dirichlet(np.full(kk, 0.1))
        h = float(-(p[p > 0] * np.log(p[p > 0])).sum())
        cnt = np.bincount(rng.choice(kk, 2000, p=p), minlength=kk)
        r = E.nsb_entropy(counts=cnt, k=kk)
        errs_nsb.append(abs(r.mean - h))
        errs_plugin.append(abs(E.entropy(counts=cnt) - h))
        assert abs(r.mean - h) < 4 * r.std + 0.05
    assert max(errs_nsb) < 0.1 < min(errs_plugin)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=25).filter(lambda c: sum(c) > 0))
def test_entropy_estimators_are_finite_and_order_free(counts):
    for est in E.ENTROPY_ESTIMATORS:
        h = E.entropy(counts=counts, estimator=est)
        assert math.isfinite(h)
        assert E.entropy(counts=counts[::-1], estimator=est) == pytest.approx(
            h, rel=1e-12, abs=1e-12
        )
    assert E.entropy(counts=counts) >= 0


# --------------------------------------------------------------------------- MI family vs sklearn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plugin_mi_nmi_ami_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 800))
    x = rng.integers(0, int(rng.integers(2, 30)), n)
    y = (x * int(rng.integers(1, 4)) + rng.integers(0, 6, n)) % int(rng.integers(2, 25))
    assert E.mutual_information(x, y) == pytest.approx(
        sk.mutual_info_score(x, y), rel=1e-12, abs=1e-15
    )
    for m in ("arithmetic", "geometric", "min", "max"):
        assert E.normalized_mutual_information(x, y, average_method=m) == pytest.approx(
            sk.normalized_mutual_info_score(x, y, average_method=m), rel=1e-12, abs=1e-15
        )
        assert E.adjusted_mutual_information(x, y, average_method=m) == pytest.approx(
            sk.adjusted_mutual_info_score(x, y, average_method=m), rel=1e-7, abs=1e-12
        )
    # string labels, and the table form
    xs, ys = [f"a{v}" for v in x], [("t", int(v)) for v in y]
    assert E.mutual_information(xs, ys) == pytest.approx(sk.mutual_info_score(x, y), rel=1e-12)
    table = E.contingency(x, y)
    assert E.mutual_information(None, None, table=table) == pytest.approx(
        sk.mutual_info_score(None, None, contingency=table), rel=1e-12
    )


def test_expected_mi_against_an_exact_slow_sum():
    a, b = [3, 2, 2, 1], [4, 3, 1]
    n = sum(a)
    with mpmath.workdps(40):
        total = mpmath.mpf(0)
        for ai in a:
            for bj in b:
                for nij in range(max(1, ai + bj - n), min(ai, bj) + 1):
                    prob = (
                        mpmath.binomial(bj, nij) * mpmath.binomial(n - bj, ai - nij)
                        / mpmath.binomial(n, ai)
                    )  # fmt: skip
                    total += (
                        prob * mpmath.mpf(nij) / n * mpmath.log(mpmath.mpf(n * nij) / (ai * bj))
                    )
    assert E.expected_mutual_information(a, b) == pytest.approx(float(total), rel=1e-12)


def test_special_cases_match_scikit_learn():
    one, two = [0, 0, 0, 0], [0, 1, 0, 1]
    for f, g in (
        (E.normalized_mutual_information, sk.normalized_mutual_info_score),
        (E.adjusted_mutual_information, sk.adjusted_mutual_info_score),
    ):
        for x, y in ((one, one), (one, two), (two, one), (two, two), ([0, 1, 2, 3], [3, 2, 1, 0])):
            assert f(x, y) == pytest.approx(g(x, y), abs=1e-12), (f.__name__, x, y)


def test_conditional_quantities_and_chain_rules():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 4, 3000)
    z = rng.integers(0, 3, 3000)
    y = (x + z + rng.integers(0, 2, 3000)) % 5
    for est in ("plugin", "miller_madow", "grassberger"):
        hx = E.entropy(x, estimator=est)
        hxy = E.entropy(list(zip(x.tolist(), y.tolist())), estimator=est)
        hy = E.entropy(y, estimator=est)
        assert E.conditional_entropy(x, y, estimator=est) == pytest.approx(hxy - hy, rel=1e-12)
        assert E.mutual_information(x, y, estimator=est) == pytest.approx(hx + hy - hxy, rel=1e-10)
    # I(X;Y|Z) = I(X;(Y,Z)) - I(X;Z), plug-in
    yz = [f"{a},{b}" for a, b in zip(y, z)]
    want = E.mutual_information(x, yz) - E.mutual_information(x, z)
    assert E.conditional_mutual_information(x, y, z) == pytest.approx(want, rel=1e-10)


def test_negative_estimates_are_not_clipped_and_tests_are_seeded():
    rng = np.random.default_rng(6)
    # KSG on independent samples: negative on some seeds, where scikit-learn reports 0
    vals = [
        E.ksg_mutual_information(*np.random.default_rng(s).standard_normal((2, 300)))
        for s in range(10)
    ]
    assert min(vals) < 0
    s = int(np.argmin(vals))
    xs, ys = np.random.default_rng(s).standard_normal((2, 300))
    assert skfs.mutual_info_regression(xs[:, None], ys, random_state=0)[0] == 0.0
    x, y = rng.integers(0, 50, 200), rng.integers(0, 50, 200)
    t1 = E.mutual_information_test(x, y, permutations=200, bootstrap=200, seed=3)
    t2 = E.mutual_information_test(x, y, permutations=200, bootstrap=200, seed=3)
    assert t1 == t2
    assert t1.p_value is not None and 0.05 < t1.p_value <= 1
    # an interval in a regime where the plug-in is fair: it holds the true MI
    x = rng.integers(0, 4, 3000)
    y = np.where(rng.random(3000) < 0.7, x, rng.integers(0, 4, 3000))
    joint = 0.25 * (0.7 * np.eye(4) + 0.3 / 4)
    truth = float((joint * np.log(joint / 0.0625)).sum())
    t = E.mutual_information_test(x, y, permutations=0, bootstrap=300, seed=1)
    assert t.interval is not None and t.interval[0] < truth < t.interval[1]
    assert t.interval[0] < t.value < t.interval[1]
    dep = E.mutual_information_test(x, x, permutations=99, bootstrap=0)
    assert dep.p_value == pytest.approx(0.01)


def test_bad_input_gives_one_line():
    for call, msg in (
        (lambda: E.entropy([1, 2], estimator="mle"), "estimator: expected one of plugin"),
        (lambda: E.entropy(counts=[1, -1]), "counts: expected non-negative"),
        (lambda: E.entropy(counts=[0, 0]), "counts: expected at least one observation"),
        (lambda: E.entropy([1], counts=[1]), "give samples or counts"),
        (lambda: E.mutual_information([1, 2], [1]), "y: expected 2 labels"),
        (lambda: E.mutual_information([[1]], [1]), "hashable"),
        (lambda: E.entropy([1.0, float("nan")]), "NaN"),
        (lambda: E.nsb_entropy(counts=[1, 2, 3], k=2), "k: expected an alphabet size"),
        (lambda: E.entropy([1, 2], base=1), "base: expected"),
        (
            lambda: E.normalized_mutual_information([1], [1], average_method="mean"),
            "average_method",
        ),
        (lambda: E.ksg_mutual_information([1.0, 2.0], [1.0, 2.0]), "more than k = 3 samples"),
        (lambda: E.ksg_mutual_information([1.0, np.inf] * 4, [1.0] * 8), "finite"),
    ):
        with pytest.raises(InputError, match=msg) as e:
            call()
        assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- continuous


def _gauss(rng, n, rho, d=1):
    x = rng.standard_normal((n, d))
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, d))
    return x, y


@pytest.mark.parametrize(
    "rho,d,n", [(0.0, 1, 1000), (0.6, 1, 1000), (0.9, 1, 2000), (0.6, 2, 2000)]
)
def test_ksg_within_its_spread_of_the_analytic_gaussian_mi(rho, d, n):
    """The tolerance comes from the estimator's own spread over 8 seeds: the mean over
    seeds must be within 4 standard errors (+ a small-sample bias allowance of 0.02 nats)
    of -d/2 log(1 - rho^2)."""
    truth = -d / 2 * math.log(1 - rho**2)
    vals = []
    for s in range(8):
        x, y = _gauss(np.random.default_rng(100 + s), n, rho, d)
        vals.append(E.ksg_mutual_information(x, y))
    vals_a = np.array(vals)
    se = vals_a.std(ddof=1) / math.sqrt(len(vals_a))
    assert abs(vals_a.mean() - truth) < 4 * se + 0.02, (vals_a.mean(), truth, se)


def test_ksg_matches_scikit_learn_and_is_deterministic():
    rng = np.random.default_rng(7)
    x, y = _gauss(rng, 3000, 0.7)
    ours = E.ksg_mutual_information(x, y[:, 0])
    theirs = skfs.mutual_info_regression(x, y[:, 0], n_neighbors=3, random_state=0)[0]
    assert ours == pytest.approx(theirs, rel=1e-4)  # only the jitter's random draws differ
    assert E.ksg_mutual_information(x, y[:, 0]) == ours
    # thread count does not matter: the marginals on one thread give the same number
    from infolens import _estimate_knn as K

    a, b = K._prepare([x, y], True, 1e-10, 0)
    order = np.argsort(a[:, 0])
    a, b = a[order], b[order]
    from scipy.spatial import cKDTree

    joint = np.hstack([a, b])
    eps = K._kth(cKDTree(joint), joint, 3, np.inf)
    one = [K._strictly_within(c, eps, cKDTree) for c in (a, b)]
    two = K._both_within([a, b], eps, cKDTree)
    for u, v in zip(one, two):
        np.testing.assert_array_equal(u, v)
    # marginal counts by sorting equal a tree's counts
    tree_counts = (
        cKDTree(b).query_ball_point(b, r=np.nextafter(eps, 0), p=np.inf, return_length=True) - 1
    )
    np.testing.assert_array_equal(one[1], tree_counts)


def test_duplicates_never_give_minus_inf():
    x = np.repeat(np.arange(50.0), 4)
    y = np.repeat(np.arange(50.0)[::-1], 4)
    for jitter in (0.0, 1e-10):
        assert math.isfinite(E.ksg_mutual_information(x, y, jitter=jitter))
        assert math.isfinite(E.kl_entropy(x, jitter=jitter))


def test_mixed_mi_equals_scikit_learn():
    rng = np.random.default_rng(8)
    lab = rng.integers(0, 4, 3000)
    lab[3] = 10  # a label seen once: left out, as scikit-learn does
    # (labels seen 2..k+1 times are not compared: scikit-learn searches their few points by
    # brute force with the |a|^2 - 2ab + |b|^2 form of the distance, whose rounding can
    # move a neighbour count by one; infolens's distances are exact)
    c = lab + rng.standard_normal(3000)
    ours = E.mixed_mutual_information(lab, c)
    theirs = skfs.mutual_info_classif(c[:, None], lab, n_neighbors=3, random_state=0)[0]
    assert ours == pytest.approx(theirs, rel=1e-6)


@pytest.mark.parametrize("d", [1, 3])
def test_kl_entropy_and_knn_kl_against_gaussians(d):
    truth_h = d / 2 * math.log(2 * math.pi * math.e)
    truth_kl = 0.5 * d  # N(0, I) vs N(1, I): |mu|^2 / 2 = d / 2
    hs, kls = [], []
    for s in range(6):
        rng = np.random.default_rng(200 + s)
        x = rng.standard_normal((3000, d))
        y = 1.0 + rng.standard_normal((3000, d))
        hs.append(E.kl_entropy(x))
        kls.append(E.knn_kl_divergence(x, y))
    for vals, truth in ((hs, truth_h), (kls, truth_kl)):
        v = np.array(vals)
        assert abs(v.mean() - truth) < 4 * v.std(ddof=1) / math.sqrt(len(v)) + 0.03 * d, (v, truth)


def test_frenzel_pompe_cmi_and_the_gaussian_closed_form():
    rng = np.random.default_rng(9)
    n = 4000
    z = rng.standard_normal(n)
    x = z + 0.5 * rng.standard_normal(n)
    y = z + 0.5 * rng.standard_normal(n)
    assert abs(E.ksg_conditional_mutual_information(x, y, z)) < 0.03
    # y depends on x given z: I(X;Y|Z) for Gaussians = -1/2 log(1 - partial rho^2)
    y2 = x + z + rng.standard_normal(n)
    res_x = x - np.polyval(np.polyfit(z, x, 1), z)
    res_y = y2 - np.polyval(np.polyfit(z, y2, 1), z)
    truth = E.gaussian_mutual_information(res_x, res_y)
    assert E.ksg_conditional_mutual_information(x, y2, z) == pytest.approx(truth, abs=0.05)
    xg, yg = _gauss(np.random.default_rng(10), 200_000, 0.5, 2)
    assert E.gaussian_mutual_information(xg, yg) == pytest.approx(-math.log(1 - 0.25), abs=0.01)
