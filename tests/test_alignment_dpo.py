"""infolens._alignment_dpo: the DPO loss family against independent definitions.

Each loss is written out again here in mpmath (50 digits) from its paper / TRL 1.16.0
definition, term by term as TRL writes it (``1 - sigmoid(x)`` literally, no shared helpers
with the module), and compared on hand-made pairs, some with |beta * Delta| = 1e4.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infolens._alignment_dpo import F_DIVERGENCES, LOSS_TYPES, DPOOutput, dpo_loss
from infolens.errors import InputError

torch = pytest.importorskip("torch")

#: loss types that read the f-divergence score difference (TRL 1.16.0)
F_SCORED = ("sigmoid", "hinge", "ipo", "robust", "exo_pair")
#: label smoothing each loss type is tested with
SMOOTHING = {"sigmoid": (0.0, 0.1), "robust": (0.0, 0.1, 0.3), "exo_pair": (1e-3, 0.2)}

# hand-made pairs (nats): policy chosen, policy rejected, ref chosen, ref rejected
MODERATE = (
    [-10.0, -12.0, -3.5, -40.0, -0.25],
    [-14.0, -11.0, -3.5, -38.0, -7.0],
    [-11.0, -12.5, -4.0, -41.5, -0.5],
    [-13.0, -12.0, -3.0, -36.0, -9.0],
)
# log-ratios of +-1e3 with beta = 10: |beta * Delta| up to 2e4
EXTREME = (
    [-1.0, -1001.0, -5.0, -2000.0],
    [-1001.0, -1.0, -5.0, -1000.0],
    [-1001.0, -1.0, -4.0, -1000.0],
    [-1.0, -1001.0, -6.0, -2000.0],
)
LENGTHS = ([3, 1, 12, 0, 7], [5, 2, 1, 9, 4])


# --------------------------------------------------------------------------- definitions


def _ref(pc, pr, rc, rr, *, beta, kind, eps=0.0, f="reverse_kl", alpha=0.5, lc=None, lr=None,
         delta=0.0):  # fmt: skip
    """The loss of one pair in mpmath, written from the definitions."""
    mp = mpmath
    b, e, d = mp.mpf(beta), mp.mpf(eps), mp.mpf(delta)
    r_c = mp.mpf(pc) - mp.mpf(rc)
    r_r = mp.mpf(pr) - mp.mpf(rr)

    def sig(x):
        return 1 / (1 + mp.exp(-x))

    def logsig(x):
        return -mp.log(1 + mp.exp(-x))

    def score(r):  # f'(u) at u = pi / pi_ref = e^r (f-DPO, TRL's f_divergence_type)
        u = mp.exp(r)
        if f == "forward_kl":
            return 1 - 1 / u
        if f == "js_divergence":
            return mp.log(2 * u / (1 + u))
        if f == "alpha_divergence" and abs(alpha - 1) >= 1e-6:
            a = mp.mpf(alpha)
            return (mp.exp(min((a - 1) * r, 80)) - 1) / (a - 1)  # TRL clamps the exponent at 80
        return r

    s_c, s_r = score(r_c), score(r_r)
    z = b * (s_c - s_r)
    if kind == "sigmoid":  # DPO / cDPO
        return -(1 - e) * logsig(z) - e * logsig(-z)
    if kind == "hinge":
        return max(mp.mpf(0), 1 - z)
    if kind == "ipo":
        if lc is not None:
            s_c, s_r = s_c / max(lc, 1), s_r / max(lr, 1)
        return (s_c - s_r - 1 / (2 * b)) ** 2
    if kind == "robust":
        return (-(1 - e) * logsig(z) + e * logsig(-z)) / (1 - 2 * e)
    if kind == "exo_pair":  # KL(q || p_eps) over {chosen, rejected}, q = (sig(z), sig(-z))
        q_w, q_l = sig(z), sig(-z)
        return q_w * mp.log(q_w / (1 - e)) + q_l * mp.log(q_l / e)
    if kind == "nca_pair":
        return -logsig(b * r_c) - logsig(-b * r_c) / 2 - logsig(-b * r_r) / 2
    if kind == "sppo_hard":
        return (r_c - 1 / (2 * b)) ** 2 + (r_r + 1 / (2 * b)) ** 2
    if kind == "apo_zero":
        return 1 - sig(b * r_c) + sig(b * r_r)
    if kind == "apo_down":
        return sig(b * r_c) + 1 - sig(b * (r_c - r_r))
    if kind == "bco_pair":
        return -logsig(b * r_c - d) - logsig(-(b * r_r - d))
    raise AssertionError(kind)


def _cases():
    for kind in LOSS_TYPES:
        for f in F_DIVERGENCES if kind in F_SCORED else ("reverse_kl",):
            for eps in SMOOTHING.get(kind, (0.0,)):
                for alpha in (0.5, 1.5, -1.0) if f == "alpha_divergence" else (0.5,):
                    yield kind, f, eps, alpha


CASES = list(_cases())


def _ids(case):
    kind, f, eps, alpha = case
    return f"{kind}-{f}-eps{eps}-a{alpha}"


def _close(got, want, rtol=1e-12):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray([float(w) for w in want])
    assert np.all(np.abs(got - want) <= rtol * np.maximum(1.0, np.abs(want))), (got, want)


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_each_loss_matches_its_definition_in_mpmath(case, beta):
    kind, f, eps, alpha = case
    kw = dict(beta=beta, loss_type=kind, label_smoothing=eps, f_divergence=f, alpha=alpha)
    if kind == "bco_pair":
        kw["bco_delta"] = 0.3
    with mpmath.workdps(50):
        want = [
            _ref(
                *row, beta=beta, kind=kind, eps=eps, f=f, alpha=alpha, delta=kw.get("bco_delta", 0)
            )
            for row in zip(*MODERATE)
        ]
    out = dpo_loss(*(np.array(x) for x in MODERATE), **kw)
    _close(out.losses, want)
    t = dpo_loss(*(torch.tensor(x, dtype=torch.float64) for x in MODERATE), **kw)
    _close(t.losses.numpy(), want)


@pytest.mark.parametrize("case", [c for c in CASES if c[1] != "forward_kl"], ids=_ids)
def test_extreme_margins_are_finite_and_exact(case):
    """|beta * Delta| up to 2e4: no overflow, no warning, the tails kept."""
    kind, f, eps, alpha = case
    kw = dict(beta=10.0, loss_type=kind, label_smoothing=eps, f_divergence=f, alpha=alpha)
    with mpmath.workdps(50):
        want = [
            _ref(*row, beta=10.0, kind=kind, eps=eps, f=f, alpha=alpha) for row in zip(*EXTREME)
        ]
    with np.errstate(over="raise", invalid="raise", divide="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        out = dpo_loss(*(np.array(x) for x in EXTREME), **kw)
    assert np.all(np.isfinite(out.losses))
    _close(out.losses, want)


def test_hand_computed_values():
    pc, pr, rc, rr = [-10.0], [-14.0], [-11.0], [-13.0]  # r_c = 1, r_r = -1, Delta = 2
    # sigmoid: softplus(-0.2) = log(1 + e^-0.2) = 0.598138869...
    assert math.isclose(float(dpo_loss(pc, pr, rc, rr).loss), 0.5981388693815918, rel_tol=1e-15)
    # hinge: max(0, 1 - 0.1 * 2) = 0.8
    assert math.isclose(float(dpo_loss(pc, pr, rc, rr, loss_type="hinge").loss), 0.8)
    # ipo: (2 - 1 / 0.2)^2 = 9; with lengths 2 and 4: (0.5 + 0.25 - 5)^2 = 18.0625
    assert float(dpo_loss(pc, pr, rc, rr, loss_type="ipo").loss) == 9.0
    ipo = dpo_loss(pc, pr, rc, rr, loss_type="ipo", chosen_lengths=[2], rejected_lengths=[4])
    assert float(ipo.loss) == 18.0625
    # sppo_hard: (1 - 5)^2 + (-1 + 5)^2 = 32
    assert float(dpo_loss(pc, pr, rc, rr, loss_type="sppo_hard").loss) == 32.0
    # bco_pair, delta = 0: -log sig(0.1) - log sig(0.1) = 2 softplus(-0.1) = 2 * 0.644396660...
    bco = float(dpo_loss(pc, pr, rc, rr, loss_type="bco_pair").loss)
    assert math.isclose(bco, 2 * 0.6443966600735709, rel_tol=1e-15)
    # apo_zero: 1 - sig(0.1) + sig(-0.1) = 2 sig(-0.1) = 0.950083...
    apo = float(dpo_loss(pc, pr, rc, rr, loss_type="apo_zero").loss)
    assert math.isclose(apo, 2 / (1 + math.exp(0.1)), rel_tol=1e-15)
    # forward_kl: s = 1 - e^-r, Delta = (1 - e^-1) - (1 - e) = e - 1/e = 2 sinh 1
    fk = float(dpo_loss(pc, pr, rc, rr, loss_type="forward_kl").loss)
    assert math.isclose(fk, math.log1p(math.exp(-0.2 * math.sinh(1.0))), rel_tol=1e-15)


def test_rewards_and_metrics_are_their_definitions():
    pc, pr, rc, rr = (np.array(x) for x in MODERATE)
    out = dpo_loss(pc, pr, rc, rr, beta=0.5, loss_type="hinge")
    assert isinstance(out, DPOOutput) and out.loss_type == "hinge"
    np.testing.assert_allclose(out.chosen_rewards, 0.5 * (pc - rc), rtol=0, atol=0)
    np.testing.assert_allclose(out.rejected_rewards, 0.5 * (pr - rr), rtol=0, atol=0)
    # r_c = 1, 0.5, 0.5, 1.5, 0.25; r_r = -1, 1, -0.5, -2, 2: chosen wins in 1, 3, 4
    assert float(out.reward_accuracy) == 0.6
    assert math.isclose(float(out.reward_margin), 0.5 * (2 - 0.5 + 1 + 3.5 - 1.75) / 5)
    assert math.isclose(float(out.chosen_reward_mean), 0.5 * 3.75 / 5)
    assert math.isclose(float(out.rejected_reward_mean), 0.5 * -0.5 / 5)
    assert float(out.loss) == float(np.mean(out.losses))
    m = out.metrics()
    assert list(m) == [
        "loss",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
    ]
    assert all(type(v) is float for v in m.values())
    # ties count as wrong, as in TRL's (chosen > rejected).float()
    tie = dpo_loss([-1.0], [-1.0], [-1.0], [-1.0])
    assert float(tie.reward_accuracy) == 0.0 and math.isclose(float(tie.loss), math.log(2))


def test_rewards_are_the_reverse_kl_log_ratios_whatever_the_f_divergence():
    a = dpo_loss(*MODERATE, loss_type="js_divergence")
    b = dpo_loss(*MODERATE)
    np.testing.assert_array_equal(a.chosen_rewards, b.chosen_rewards)
    assert a.loss_type == "sigmoid" and a.f_divergence == "js_divergence"


def test_f_divergence_shorthand_equals_sigmoid_with_that_f_divergence():
    for f in F_DIVERGENCES:
        a = dpo_loss(*MODERATE, loss_type=f, alpha=1.5)
        b = dpo_loss(*MODERATE, loss_type="sigmoid", f_divergence=f, alpha=1.5)
        np.testing.assert_array_equal(a.losses, b.losses)
        c = dpo_loss(*MODERATE, loss_type=f, f_divergence=f, alpha=1.5)
        np.testing.assert_array_equal(a.losses, c.losses)


def test_alpha_one_is_reverse_kl_and_the_exponent_is_clamped_at_80():
    ref = dpo_loss(*MODERATE).losses
    for a in (1.0, 1.0 + 5e-7):
        np.testing.assert_array_equal(
            dpo_loss(*MODERATE, loss_type="alpha_divergence", alpha=a).losses, ref
        )
    # alpha = 2: s = e^r - 1; r_c = 100 is clamped to e^80 - 1, r_r = 0 gives s = 0
    out = dpo_loss([0.0], [-5.0], [-100.0], [-5.0], loss_type="hinge", f_divergence="alpha_divergence",
                   alpha=2.0, beta=1.0)  # fmt: skip
    assert float(out.loss) == 0.0
    out = dpo_loss([-100.0], [-5.0], [0.0], [-5.0], loss_type="ipo", f_divergence="alpha_divergence",
                   alpha=0.0, beta=1.0)  # fmt: skip
    # alpha = 0: s = (e^-r - 1) / -1 = 1 - e^100... exponent -(-100) = 100 clamped to 80
    assert math.isclose(float(out.loss), (1 - math.exp(80) - 0.5) ** 2, rel_tol=1e-15)


def test_ipo_lengths_equal_length_averaged_log_probs_for_reverse_kl():
    pc, pr, rc, rr = (np.array(x) for x in MODERATE)
    lc, lr = (np.maximum(np.array(x, dtype=float), 1.0) for x in LENGTHS)
    a = dpo_loss(
        pc, pr, rc, rr, loss_type="ipo", chosen_lengths=LENGTHS[0], rejected_lengths=LENGTHS[1]
    )
    b = dpo_loss(pc / lc, pr / lr, rc / lc, rr / lr, loss_type="ipo")
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-13)
    # and TRL's lengths with another f-divergence: the scores are divided, not the log-ratios
    c = dpo_loss(pc, pr, rc, rr, loss_type="ipo", f_divergence="forward_kl", chosen_lengths=LENGTHS[0],
                 rejected_lengths=LENGTHS[1])  # fmt: skip
    with mpmath.workdps(50):
        want = [
            _ref(*row, beta=0.1, kind="ipo", f="forward_kl", lc=x, lr=y)
            for *row, x, y in zip(*MODERATE, *LENGTHS)
        ]
    _close(c.losses, want)
    t = dpo_loss(*(torch.tensor(x, dtype=torch.float64) for x in MODERATE), loss_type="ipo", f_divergence="forward_kl",
                 chosen_lengths=torch.tensor(LENGTHS[0]), rejected_lengths=LENGTHS[1])  # fmt: skip
    _close(t.losses.numpy(), want)


# --------------------------------------------------------------------------- torch


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_torch_and_numpy_agree_and_torch_keeps_autograd(case):
    kind, f, eps, alpha = case
    kw = dict(beta=0.3, loss_type=kind, label_smoothing=eps, f_divergence=f, alpha=alpha)
    n = dpo_loss(*MODERATE, **kw)
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in MODERATE]
    t = dpo_loss(*ts, **kw)
    assert t.losses.dtype == torch.float64 and t.losses.requires_grad
    assert not t.chosen_rewards.requires_grad and not t.rejected_rewards.requires_grad
    np.testing.assert_allclose(t.losses.detach().numpy(), n.losses, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(t.chosen_rewards.numpy(), n.chosen_rewards)
    assert float(t.reward_accuracy) == float(n.reward_accuracy)
    t32 = dpo_loss(*(x.detach().float() for x in ts), **kw)
    assert t32.losses.dtype == torch.float32
    np.testing.assert_allclose(t32.losses.numpy(), n.losses, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_gradcheck_float64(case):
    kind, f, eps, alpha = case
    g = torch.Generator().manual_seed(0)
    pc = -torch.rand(6, generator=g, dtype=torch.float64) * 5 - 1
    pr = -torch.rand(6, generator=g, dtype=torch.float64) * 5 - 1
    rc = pc + torch.randn(6, generator=g, dtype=torch.float64)
    rr = pr + torch.randn(6, generator=g, dtype=torch.float64)
    inputs = tuple(x.detach().requires_grad_(True) for x in (pc, pr, rc, rr))
    kw = dict(beta=0.7, loss_type=kind, label_smoothing=eps, f_divergence=f, alpha=alpha)
    if kind == "hinge":  # away from the kink at beta * Delta = 1, where relu has no derivative
        z = 0.7 * ((pc - rc) - (pr - rr))
        assert bool(((1 - z).abs() > 1e-3).all())
    if kind == "ipo":
        kw.update(
            chosen_lengths=[1, 2, 3, 4, 5, 6], rejected_lengths=torch.tensor([6, 5, 4, 3, 2, 1])
        )
    assert torch.autograd.gradcheck(lambda *x: dpo_loss(*x, **kw).losses, inputs)


def test_metrics_of_differentiable_tensors_do_not_warn():
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in MODERATE]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = dpo_loss(*ts).metrics()
    assert m == pytest.approx(dpo_loss(*MODERATE).metrics(), rel=1e-14)


def test_sigmoid_gradient_is_beta_sigmoid_of_minus_z():
    """d/d pi_c of softplus(-z) = -beta * sigma(-z): TRL's DPO gradient weight."""
    pc = torch.tensor([-10.0, -3.0], dtype=torch.float64, requires_grad=True)
    out = dpo_loss(pc, torch.tensor([-14.0, -2.0]), torch.tensor([-11.0, -3.0]), torch.tensor([-13.0, -3.0]),
                   beta=0.5)  # fmt: skip
    out.losses.sum().backward()
    z = 0.5 * torch.tensor([2.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(pc.grad, -0.5 * torch.sigmoid(-z), rtol=1e-15, atol=0)


def test_torch_dtypes_devices_and_mixed_inputs():
    half = [torch.tensor(x, dtype=torch.float16) for x in MODERATE]
    out = dpo_loss(*half)
    assert out.losses.dtype == torch.float32  # half precision is widened
    mixed = dpo_loss(torch.tensor(MODERATE[0], dtype=torch.float64), *MODERATE[1:])
    assert torch.is_tensor(mixed.losses) and mixed.losses.dtype == torch.float64
    np.testing.assert_allclose(mixed.losses.numpy(), dpo_loss(*MODERATE).losses, rtol=1e-15)
    assert dpo_loss(*MODERATE).losses.dtype == np.float64
    ints = dpo_loss([-1, -2], [-3, -1], [-2, -2], [-2, -2])
    assert ints.losses.dtype == np.float64
    # float16 tensors: TRL's alpha-divergence clamp is 11 there
    f16 = dpo_loss(*(torch.tensor([x], dtype=torch.float16) for x in (0.0, -5.0, -20.0, -5.0)),
                   loss_type="hinge", f_divergence="alpha_divergence", alpha=2.0, beta=1e-5)  # fmt: skip
    assert math.isclose(float(f16.loss), 1 - 1e-5 * math.expm1(11.0), rel_tol=1e-6)


def test_numpy_inputs_do_not_import_torch():
    script = (
        "import sys; import numpy as np; from infolens._alignment_dpo import dpo_loss; "
        "dpo_loss(np.array([-1.0]), np.array([-2.0]), np.array([-1.5]), np.array([-1.5]), "
        "loss_type='exo_pair', label_smoothing=0.1); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


# --------------------------------------------------------------------------- properties

logp = st.floats(-300.0, 0.0, allow_nan=False)
pairs = st.lists(st.tuples(logp, logp, logp, logp), min_size=1, max_size=6)
betas = st.floats(1e-3, 10.0)


def _cols(rows):
    return [np.array(c) for c in zip(*rows)]


@settings(max_examples=60, deadline=None)
@given(pairs, betas)
def test_sigmoid_without_smoothing_is_softplus_of_minus_beta_delta(rows, beta):
    pc, pr, rc, rr = _cols(rows)
    delta = (pc - rc) - (pr - rr)
    want = np.logaddexp(0.0, -beta * delta)
    np.testing.assert_allclose(
        dpo_loss(pc, pr, rc, rr, beta=beta).losses, want, rtol=1e-12, atol=1e-300
    )


@settings(max_examples=60, deadline=None)
@given(pairs, betas, st.floats(0.0, 0.49))
def test_swapping_chosen_and_rejected(rows, beta, eps):
    """sigmoid: L(Delta) - L(-Delta) = -(1 - 2 eps) beta Delta; rewards and accuracy swap."""
    pc, pr, rc, rr = _cols(rows)
    a = dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=eps)
    b = dpo_loss(pr, pc, rr, rc, beta=beta, label_smoothing=eps)
    z = beta * ((pc - rc) - (pr - rr))
    np.testing.assert_allclose(a.losses - b.losses, -(1 - 2 * eps) * z, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(a.chosen_rewards, b.rejected_rewards)
    assert math.isclose(float(a.reward_margin), -float(b.reward_margin), abs_tol=1e-12)
    ties = float(np.mean(a.chosen_rewards == a.rejected_rewards))
    assert math.isclose(float(a.reward_accuracy) + float(b.reward_accuracy), 1 - ties)
    # the hinge and sppo_hard losses of the swapped pair are their mirror images
    ha = dpo_loss(pc, pr, rc, rr, beta=beta, loss_type="hinge").losses
    hb = dpo_loss(pr, pc, rr, rc, beta=beta, loss_type="hinge").losses
    np.testing.assert_allclose(ha, np.maximum(0, 1 - z), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hb, np.maximum(0, 1 + z), rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(pairs, betas, st.floats(-50.0, 50.0))
def test_shifting_policy_and_reference_together_changes_nothing(rows, beta, c):
    """Every loss reads pi and pi_ref only through the log-ratios."""
    pc, pr, rc, rr = _cols(rows)
    for kind in ("sigmoid", "ipo", "nca_pair", "apo_down", "bco_pair"):
        a = dpo_loss(pc, pr, rc, rr, beta=beta, loss_type=kind).losses
        b = dpo_loss(pc + c, pr + c, rc + c, rr + c, beta=beta, loss_type=kind).losses
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(pairs, betas, st.floats(1e-4, 0.49))
def test_bounds(rows, beta, eps):
    pc, pr, rc, rr = _cols(rows)
    # robust at eps = 0 is the sigmoid loss
    np.testing.assert_array_equal(
        dpo_loss(pc, pr, rc, rr, beta=beta, loss_type="robust").losses,
        dpo_loss(pc, pr, rc, rr, beta=beta).losses,
    )
    # exo_pair is a KL divergence: >= 0 (0 only where sigma(z) = 1 - eps)
    assert np.all(
        dpo_loss(pc, pr, rc, rr, beta=beta, loss_type="exo_pair", label_smoothing=eps).losses
        >= -1e-15
    )
    # apo losses are two probabilities: in [0, 2]; nca and bco are sums of -log sigma >= 0
    for kind in ("apo_zero", "apo_down"):
        lo = dpo_loss(pc, pr, rc, rr, beta=beta, loss_type=kind).losses
        assert np.all((lo >= 0) & (lo <= 2))
    for kind in ("nca_pair", "bco_pair", "hinge", "ipo", "sppo_hard"):
        assert np.all(dpo_loss(pc, pr, rc, rr, beta=beta, loss_type=kind).losses >= 0)


# --------------------------------------------------------------------------- invalid inputs

GOOD = ([-1.0, -2.0], [-2.0, -3.0], [-1.5, -2.5], [-1.5, -2.5])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"policy_chosen_logps": [-1.0, math.nan]}, "policy_chosen_logps: expected finite per-example log-probabilities (nats), got nan at index 1"),
        ({"ref_rejected_logps": [-math.inf, -1.0]}, "ref_rejected_logps: expected finite per-example log-probabilities (nats), got -inf at index 0"),
        ({"policy_rejected_logps": torch.tensor([-1.0, math.inf])}, "policy_rejected_logps: expected finite per-example log-probabilities (nats), got inf at index 1"),
        ({"ref_chosen_logps": [-1.0]}, "ref_chosen_logps: expected the shape of policy_chosen_logps (2,), got (1,)"),
        ({"policy_chosen_logps": [[-1.0, -2.0]]}, "policy_chosen_logps: expected a 1-D array of per-example log-probabilities (nats), got ndarray of shape (1, 2)"),
        ({"policy_chosen_logps": -1.0}, "policy_chosen_logps: expected a 1-D array"),
        ({"policy_chosen_logps": ["a", "b"]}, "policy_chosen_logps: expected an array of real numbers"),
        ({"beta": 0.0}, "beta: expected a finite number > 0, got float 0.0"),
        ({"beta": -1}, "beta: expected a finite number > 0"),
        ({"beta": True}, "beta: expected a finite number > 0, got bool True"),
        ({"beta": math.inf}, "beta: expected a finite number > 0, got float inf"),
        ({"loss_type": "dpo"}, "loss_type: expected one of sigmoid, hinge, ipo, robust, exo_pair, nca_pair, sppo_hard, apo_zero, apo_down, bco_pair, reverse_kl, forward_kl, js_divergence, alpha_divergence, got str 'dpo'"),
        ({"f_divergence": "kl"}, "f_divergence: expected one of reverse_kl, forward_kl, js_divergence, alpha_divergence, got str 'kl'"),
        ({"loss_type": "forward_kl", "f_divergence": "js_divergence"}, "f_divergence: expected 'forward_kl' (or the default) with loss_type='forward_kl', got 'js_divergence'"),
        ({"loss_type": "robust", "label_smoothing": 0.5}, "label_smoothing: expected 0 <= value < 0.5 for robust, got 0.5"),
        ({"label_smoothing": -0.1}, "label_smoothing: expected 0 <= value < 0.5 for sigmoid, got -0.1"),
        ({"loss_type": "exo_pair"}, "label_smoothing: expected 0 < value < 0.5 for exo_pair, got 0.0"),
        ({"loss_type": "hinge", "label_smoothing": 0.1}, "label_smoothing: expected 0 for hinge (only sigmoid, robust and exo_pair use it), got 0.1"),
        ({"label_smoothing": math.nan}, "label_smoothing: expected a finite number, got float nan"),
        ({"alpha": "1"}, "alpha: expected a finite number, got str '1'"),
        ({"bco_delta": 0.1}, "bco_delta: expected 0 for sigmoid (only bco_pair uses it), got 0.1"),
        ({"chosen_lengths": [1, 2]}, "chosen_lengths: expected None for sigmoid (only ipo uses lengths)"),
        ({"loss_type": "ipo", "chosen_lengths": [1, 2]}, "rejected_lengths: expected token counts when the other lengths are given"),
        ({"loss_type": "ipo", "chosen_lengths": [1, -2], "rejected_lengths": [1, 1]}, "chosen_lengths: expected token counts >= 0, got -2.0 at index 1"),
        ({"loss_type": "ipo", "chosen_lengths": [1, 2], "rejected_lengths": [1]}, "rejected_lengths: expected the shape of policy_chosen_logps (2,), got (1,)"),
    ],
)  # fmt: skip
def test_invalid_inputs_raise_one_clear_line(change, message):
    names = (
        "policy_chosen_logps",
        "policy_rejected_logps",
        "ref_chosen_logps",
        "ref_rejected_logps",
    )
    args = dict(zip(names, GOOD))
    kw = {k: v for k, v in change.items() if k not in names}
    args.update({k: v for k, v in change.items() if k in names})
    with pytest.raises(InputError) as err:
        dpo_loss(*(args[n] for n in names), **kw)
    text = str(err.value)
    assert "\n" not in text and text.startswith(message), text


def test_empty_batch_is_refused():
    with pytest.raises(InputError, match="expected at least one example"):
        dpo_loss([], [], [], [])
