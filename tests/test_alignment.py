"""infolens.alignment: KL estimators, trainer conventions, exact KL, rewards, controllers."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infolens import alignment as al
from infolens.errors import InputError
from infolens.measures import kl_divergence

torch = pytest.importorskip("torch")

# hand-made log-probs: policy, reference (tokens sampled from the policy), and a mask
LOGP = torch.tensor([[-0.5, -2.0, -0.1, -30.0], [-1.0, -0.2, -3.0, -0.7]], dtype=torch.float64)
REF = torch.tensor([[-1.5, -0.5, -0.1, -1.0], [-0.9, -25.0, -2.0, -0.3]], dtype=torch.float64)
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])


# --------------------------------------------------------------------------- definitions


def test_estimators_match_their_definitions_in_mpmath():
    for lp, rp in [(-0.5, -1.5), (-2.0, -0.5), (-1e-9, -2e-9), (-3.0, -3.0 + 1e-12), (-40.0, -0.1)]:
        with mpmath.workdps(60):
            lr = mpmath.mpf(rp) - mpmath.mpf(lp)
            want = {
                "k1": -lr,
                "k2": lr**2 / 2,
                "k3": mpmath.expm1(lr) - lr,
                "abs": abs(lr),
            }
        for est, w in want.items():
            got = float(al.kl_estimate(np.array([lp]), np.array([rp]), est)[0])
            assert got == pytest.approx(float(w), rel=1e-14, abs=1e-300), (est, lp, rp)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-50, 0), min_size=1, max_size=20),
    st.lists(st.floats(-50, 0), min_size=1, max_size=20),
)
def test_k3_and_k2_and_abs_never_negative(a, b):
    n = min(len(a), len(b))
    lp, rp = np.array(a[:n]), np.array(b[:n])
    for est in ("k2", "k3", "abs"):
        assert (al.kl_estimate(lp, rp, est) >= 0).all()
    # the series branch and the direct branch meet continuously at |log r| = 1e-3
    x = np.array([-1e-3 * (1 - 1e-12), -1e-3 * (1 + 1e-12)])
    k = al.kl_estimate(np.zeros(2), x, "k3")
    assert k[0] == pytest.approx(k[1], rel=1e-9)


def test_k1_and_k3_unbiased_k2_biased_monte_carlo():
    """Sampled tokens of random categorical pairs: the means of k1 and k3 equal the exact
    KL within 5 standard errors; k2's bias shows for a large KL."""
    rng = np.random.default_rng(0)
    for trial in range(6):
        v = int(rng.integers(3, 40))
        scale = 0.3 if trial < 3 else 2.0
        p = rng.dirichlet(np.ones(v))
        q = np.exp(np.log(p) + scale * rng.standard_normal(v))
        q /= q.sum()
        kl = float(kl_divergence(p, q))
        x = rng.choice(v, size=200_000, p=p)
        lp, rp = np.log(p[x]), np.log(q[x])
        for est in ("k1", "k3"):
            k = al.kl_estimate(lp, rp, est)
            se = k.std() / math.sqrt(len(k))
            assert abs(k.mean() - kl) < 5 * se + 1e-12, (est, trial, k.mean(), kl, se)
        if trial == 5:
            k2 = al.kl_estimate(lp, rp, "k2")
            assert abs(k2.mean() - kl) > 10 * k2.std() / math.sqrt(len(k2))


# --------------------------------------------------------------------------- masks, reductions


def test_masked_tokens_are_never_read_and_give_zero():
    lp = LOGP.clone()
    lp[0, 3] = float("nan")  # padding may hold anything
    for est in al.ESTIMATORS:
        k = al.kl_estimate(lp, REF, est, mask=MASK)
        assert k[0, 3] == 0 and not torch.isnan(k).any()
    with pytest.raises(InputError, match=r"logp: expected finite log-probabilities on valid"):
        al.kl_estimate(lp, REF, "k1")


def test_reductions_equal_plain_loops():
    k = al.kl_estimate(LOGP, REF, "k3", mask=MASK)
    rows = [[float(k[i, j]) for j in range(4) if MASK[i, j]] for i in range(2)]
    flat = [x for r in rows for x in r]
    want = {
        "sum": sum(flat),
        "token_mean": sum(flat) / len(flat),
        "seq_mean_token_mean": np.mean([np.mean(r) for r in rows]),
        "seq_mean_token_sum": np.mean([sum(r) for r in rows]),
        "seq-mean-token-mean": np.mean([np.mean(r) for r in rows]),
    }
    for red, w in want.items():
        got = al.kl_estimate(LOGP, REF, "k3", mask=MASK, reduction=red)
        assert float(got) == pytest.approx(w, rel=1e-14), red
    np.testing.assert_allclose(
        al.kl_estimate(LOGP, REF, "k3", mask=MASK, reduction="sequence_sum").numpy(),
        [sum(r) for r in rows],
        rtol=1e-14,
    )
    np.testing.assert_allclose(
        al.kl_estimate(LOGP, REF, "k3", mask=MASK, reduction="sequence_mean").numpy(),
        [np.mean(r) for r in rows],
        rtol=1e-14,
    )
    # numpy and torch agree; float masks of 0/1 are accepted
    got = al.kl_estimate(LOGP.numpy(), REF.numpy(), "k3", mask=MASK.numpy().astype(float))
    np.testing.assert_allclose(got, k.numpy(), rtol=1e-15)


def test_bad_arguments_give_one_line():
    cases = [
        (dict(estimator="k4"), "estimator: expected one of k1, k2, k3, abs"),
        (dict(reduction="mean"), "reduction: expected one of none"),
        (dict(mask=[[1, 2, 0, 0], [1, 1, 1, 1]]), "mask: expected bools or 0/1"),
        (dict(mask=[[1, 1]]), r"mask: expected shape \(2, 4\)"),
        (dict(convention="trl"), "convention: expected one of trl-ppo"),
        (dict(convention="trl-ppo", estimator="k2"), "estimator: trl-ppo accepts k1, k3"),
        (dict(convention="verl", estimator="k3", clamp=5), "clamp: convention 'verl' fixes"),
        (dict(clamp=(3, 1)), r"clamp: expected lo <= hi"),
        (dict(importance_correction=True, convention="verl", estimator="k3"), "importance"),
    ]
    for kw, msg in cases:
        kw = {"estimator": "k3", **kw}
        with pytest.raises(InputError, match=msg) as e:
            al.kl_estimate(LOGP, REF, **kw)
        assert "\n" not in str(e.value)
    with pytest.raises(InputError, match=r"ref_logp: expected the shape of logp"):
        al.kl_estimate(LOGP, REF[:, :2])
    with pytest.raises(InputError, match="ref_logp: expected finite or -inf"):
        al.kl_estimate(LOGP, torch.full_like(REF, float("inf")))


# --------------------------------------------------------------------------- trainer conventions
# Each trainer's code, as written in its repository (commits in docs/alignment.md).


def _trl_ppo(logprobs, ref_logprobs, kl_estimator):
    logr = ref_logprobs - logprobs
    return -logr if kl_estimator == "k1" else (logr.exp() - 1) - logr


def _trl_grpo(per_token_logps, ref_per_token_logps, old=None, correction=False):
    old = per_token_logps.detach() if old is None else old
    coef_1 = torch.exp(per_token_logps - old)
    kl = (
        torch.exp(ref_per_token_logps - per_token_logps)
        - (ref_per_token_logps - per_token_logps)
        - 1
    )
    return kl * coef_1 if correction else kl


def _openrlhf(log_probs, log_probs_base, kl_estimator):
    log_ratio = log_probs.float() - log_probs_base.float()
    if kl_estimator == "k2":
        log_ratio = log_ratio**2 / 2.0
    elif kl_estimator == "k3":
        log_ratio = (-log_ratio).exp() - 1 + log_ratio
    return log_ratio.clamp(min=-10, max=10)


def _verl_forward(logprob, ref_logprob, kl_penalty):
    if kl_penalty in ("kl", "k1"):
        return logprob - ref_logprob
    if kl_penalty == "abs":
        return (logprob - ref_logprob).abs()
    if kl_penalty in ("mse", "k2"):
        return 0.5 * (logprob - ref_logprob).square()
    kl = torch.clamp(ref_logprob - logprob, min=-20, max=20)
    return torch.clamp(torch.exp(kl) - kl - 1, min=-10, max=10)


def test_trl_ppo_and_grpo_formulas():
    for est in ("k1", "k3"):
        got = al.kl_estimate(LOGP, REF, est, convention="trl-ppo")
        assert torch.equal(got, _trl_ppo(LOGP, REF, est)), est
    assert torch.equal(al.kl_estimate(LOGP, REF, "k3", convention="trl-grpo"), _trl_grpo(LOGP, REF))
    # the importance-ratio correction: values and gradients, with and without old log-probs
    old = LOGP - 0.3
    for o in (None, old):
        a = LOGP.clone().requires_grad_()
        b = LOGP.clone().requires_grad_()
        got = al.kl_estimate(
            a, REF, "k3", convention="trl-grpo", old_logp=o, importance_correction=True
        )
        want = _trl_grpo(b, REF, o, correction=True)
        assert torch.equal(got, want)
        got.sum().backward()
        want.sum().backward()
        assert torch.allclose(a.grad, b.grad, rtol=1e-15, atol=0)


def test_openrlhf_formulas_with_clamps():
    # REF[1, 1] = -25 makes k1 = 24.8 and k3 huge: both clamped to 10
    for est in ("k1", "k2", "k3"):
        got = al.kl_estimate(LOGP, REF, est, convention="openrlhf")
        want = _openrlhf(LOGP, REF, est)
        assert got.dtype == torch.float32 and torch.equal(got, want), est
    assert float(al.kl_estimate(LOGP, REF, "k1", convention="openrlhf")[1, 1]) == 10.0
    assert float(al.kl_estimate(LOGP, REF, "k1", convention="openrlhf")[0, 3]) == -10.0
    # numpy input computes in float32 too
    got = al.kl_estimate(LOGP.numpy(), REF.numpy(), "k3", convention="openrlhf")
    assert got.dtype == np.float32
    # (numpy's float32 exp and torch's may differ in the last bit)
    np.testing.assert_allclose(got, _openrlhf(LOGP, REF, "k3").numpy(), rtol=4e-7)


def test_verl_formulas_clamps_and_straight_through():
    lp = LOGP.clone()
    lp[0, 0] = -40.0  # ref - logp = 38.5: log ratio clamped to 20, result to 10
    for name in ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3"):
        got = al.kl_estimate(lp, REF, name, convention="verl")
        assert torch.equal(got, _verl_forward(lp, REF, name)), name
    assert float(al.kl_estimate(lp, REF, "k3", convention="verl")[0, 0]) == 10.0
    # '+': the value of the named estimator, the gradient of k2 (verl's documented intent)
    for name in ("k1+", "k3+", "low_var_kl+", "abs+"):
        a = LOGP.clone().requires_grad_()
        got = al.kl_estimate(a, REF, name, convention="verl")
        assert torch.equal(got, _verl_forward(LOGP, REF, name[:-1]))
        got.sum().backward()
        b = LOGP.clone().requires_grad_()
        (0.5 * (b - REF).square()).sum().backward()
        assert torch.equal(a.grad, b.grad), name
    # k2+ is k2 itself
    a = LOGP.clone().requires_grad_()
    assert torch.equal(
        al.kl_estimate(a, REF, "k2+", convention="verl"), _verl_forward(LOGP, REF, "k2")
    )


def test_straight_through_and_clamps_in_the_default_convention():
    a = LOGP.clone().requires_grad_()
    got = al.kl_estimate(a, REF, "k3", straight_through=True)
    assert torch.allclose(got, al.kl_estimate(LOGP, REF, "k3"), rtol=0, atol=0)
    got.sum().backward()
    assert torch.equal(a.grad, LOGP - REF)  # d/dlogp of (logp - ref)^2 / 2
    k = al.kl_estimate(LOGP, REF, "k1", clamp=(-1.0, 2.0))
    assert float(k.max()) == 2.0 and float(k.min()) == -1.0
    k = al.kl_estimate(LOGP, REF, "k3", clamp_log_ratio=1.0)
    assert float(k.max()) == pytest.approx(math.e - 2, rel=1e-15)


def test_gradients_of_the_estimators():
    a = LOGP.clone().requires_grad_()
    for est in al.ESTIMATORS:
        assert torch.autograd.gradcheck(
            lambda x, e=est: al.kl_estimate(x, REF, e, mask=MASK, reduction="token_mean"), (a,)
        )


# --------------------------------------------------------------------------- exact KL


def _reference_kl(p, q):
    lp = torch.log_softmax(p.double(), -1)
    lq = torch.log_softmax(q.double(), -1)
    return (lp.exp() * (lp - lq)).sum(-1)


def test_exact_kl_equals_the_core_measures_and_torch():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(3, 5, 97, generator=g, dtype=torch.float64) * 3
    q = p + torch.randn(3, 5, 97, generator=g, dtype=torch.float64)
    got = al.exact_kl(p, q)
    assert got.shape == (3, 5) and got.dtype == torch.float64
    torch.testing.assert_close(got, _reference_kl(p, q), rtol=1e-12, atol=1e-14)
    core = kl_divergence(torch.softmax(p, -1).numpy(), torch.softmax(q, -1).numpy(), axis=-1)
    np.testing.assert_allclose(al.exact_kl(p.numpy(), q.numpy()), core, rtol=1e-11)
    torch.testing.assert_close(
        al.exact_kl(p, q, direction="ref||policy"), _reference_kl(q, p), rtol=1e-12, atol=1e-14
    )
    # reductions along the sequence axis, and the Rao-Blackwellised sequence KL
    torch.testing.assert_close(
        al.sequence_kl(p, q), _reference_kl(p, q).sum(-1), rtol=1e-12, atol=0
    )
    for dt in (torch.float32, torch.bfloat16, torch.float16):
        pd, qd = p.to(dt), q.to(dt)
        torch.testing.assert_close(
            al.exact_kl(pd, qd), _reference_kl(pd, qd), rtol=1e-12, atol=1e-14
        )


def test_exact_kl_mask_skips_padding_rows():
    g = torch.Generator().manual_seed(1)
    p = torch.randn(2, 6, 50, generator=g, dtype=torch.float64)
    q = torch.randn(2, 6, 50, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0, 1, 0, 0], [0, 1, 1, 1, 1, 0]], dtype=torch.bool)
    p[~mask] = float("nan")  # never read
    q[~mask] = -float("inf")
    got = al.exact_kl(p, q, mask=mask)
    ref = _reference_kl(torch.nan_to_num(p), torch.nan_to_num(q, neginf=0.0))
    torch.testing.assert_close(got[mask], ref[mask], rtol=1e-12, atol=1e-14)
    assert (got[~mask] == 0).all()
    seq = al.exact_kl(p, q, mask=mask, reduction="sequence_sum")
    torch.testing.assert_close(seq, (ref * mask).sum(-1), rtol=1e-12, atol=1e-14)
    got_np = al.exact_kl(p.numpy(), q.numpy(), mask=mask.numpy())
    np.testing.assert_allclose(got_np, got.numpy(), rtol=1e-15)


def test_exact_kl_is_differentiable_on_the_array_path():
    g = torch.Generator().manual_seed(2)
    p = torch.randn(2, 3, 7, generator=g, dtype=torch.float64, requires_grad=True)
    q = torch.randn(2, 3, 7, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 0, 1], [1, 1, 1]], dtype=torch.bool)
    assert torch.autograd.gradcheck(
        lambda a, b: al.exact_kl(a, b, mask=mask, reduction="token_mean"), (p, q)
    )
    a = p.detach().clone().requires_grad_()
    al.exact_kl(a, q.detach()).sum().backward()
    b = p.detach().clone().requires_grad_()
    _reference_kl(b, q.detach()).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_exact_kl_infinite_where_support_is_missing_and_bad_input():
    with np.errstate(divide="ignore"):
        p = np.log([[0.5, 0.5, 0.0]])
        q = np.log([[1.0, 0.0, 0.0]])
        assert al.exact_kl(p, q)[0] == math.inf
        assert al.exact_kl(p, q, direction="ref||policy")[0] == pytest.approx(math.log(2))
    with pytest.raises(InputError, match="ref_logits: expected the shape of policy_logits"):
        al.exact_kl(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(InputError, match="direction: expected"):
        al.exact_kl(np.zeros((2, 3)), np.zeros((2, 3)), direction="forward")
    with pytest.raises(InputError, match="policy_logits"):
        al.exact_kl(np.full((2, 3), np.nan), np.zeros((2, 3)))


# --------------------------------------------------------------------------- rewards


def _openrlhf_compute_reward(r, kl_coef, kl, action_mask):
    kl_reward = -kl_coef * kl
    eos_indices = action_mask.size(1) - 1 - action_mask.long().fliplr().argmax(dim=1, keepdim=True)
    last_reward = torch.zeros_like(kl).scatter_(
        dim=1, index=eos_indices, src=r.unsqueeze(1).to(kl.dtype)
    )
    return last_reward + kl_reward


def test_kl_penalized_rewards_follow_openrlhf_and_trl():
    scores = torch.tensor([2.0, -1.0], dtype=torch.float64)
    out = al.kl_penalized_rewards(scores, LOGP, REF, 0.05, mask=MASK)
    kl = al.kl_estimate(LOGP, REF, "k1", mask=MASK)
    assert torch.equal(out.kl, kl)
    want = _openrlhf_compute_reward(scores, 0.05, kl, MASK)
    torch.testing.assert_close(out.rewards, want, rtol=0, atol=0)
    # TRL's PPO: -kl_coef * kl, score on the last token when nothing is padded
    out = al.kl_penalized_rewards(scores, LOGP, REF, 0.05, estimator="k3", convention="trl-ppo")
    want = -0.05 * _trl_ppo(LOGP, REF, "k3")
    want[:, -1] += scores
    torch.testing.assert_close(out.rewards, want, rtol=0, atol=0)
    # numpy
    out_np = al.kl_penalized_rewards(
        scores.numpy(), LOGP.numpy(), REF.numpy(), 0.05, mask=MASK.numpy()
    )
    np.testing.assert_allclose(
        out_np.rewards, _openrlhf_compute_reward(scores, 0.05, kl, MASK).numpy()
    )
    with pytest.raises(InputError, match="row 1 has none"):
        al.kl_penalized_rewards(scores, LOGP, REF, 0.1, mask=[[1, 0, 0, 0], [0, 0, 0, 0]])
    with pytest.raises(InputError, match="beta: expected a finite number >= 0"):
        al.kl_penalized_rewards(scores, LOGP, REF, -0.1)
    with pytest.raises(InputError, match=r"scores: expected shape \(2,\)"):
        al.kl_penalized_rewards([1.0], LOGP, REF, 0.1)


# --------------------------------------------------------------------------- controllers


def test_adaptive_controller_follows_the_recurrence():
    rng = np.random.default_rng(3)
    c = al.AdaptiveKLController(init_beta=0.2, target=6.0, horizon=10_000)
    beta = 0.2
    for _ in range(50):
        kl, n = float(rng.uniform(0, 20)), int(rng.integers(1, 512))
        e = float(np.clip(kl / 6.0 - 1, -0.2, 0.2))
        beta *= 1 + e * n / 10_000
        assert c.update(kl, n) == pytest.approx(beta, rel=1e-15)
    assert c.beta == c.value
    assert al.FixedKLController(0.05).update(100.0, 10) == 0.05
    with pytest.raises(InputError, match="target: expected a finite number > 0"):
        al.AdaptiveKLController(0.1, 0.0, 100)
    with pytest.raises(InputError, match="current_kl: expected a finite number"):
        c.update(float("nan"), 1)
    with pytest.raises(InputError, match="beta: expected"):
        al.FixedKLController(-1.0)


def test_adaptive_controller_drives_a_kl_to_target():
    """A toy GRPO-style loop: the measured KL falls as beta rises; beta settles where the
    KL meets the target (KL = 1/beta here)."""
    c = al.AdaptiveKLController(init_beta=0.05, target=4.0, horizon=100)
    for _ in range(2000):
        c.update(1.0 / c.value, n_steps=10)
    assert 1.0 / c.value == pytest.approx(4.0, rel=0.05)
