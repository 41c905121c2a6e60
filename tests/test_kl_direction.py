"""Forward versus reverse KL, the demonstration of docs/measures.md as a test.

A unimodal q (a discretised Gaussian, parameters mean and std) fitted to a bimodal p:
minimising D(p||q) ("forward KL", the data first, as in cross-entropy training) is
mass-covering and lands between the modes with a wide std; minimising D(q||p) ("reverse
KL", variational inference) is mode-seeking and locks onto one mode.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from infolens import kl_divergence

X = np.linspace(-10, 10, 401)
MODES = (-2.5, 2.5)
WEIGHTS = (0.6, 0.4)
MODE_SD = 0.6


def log_gauss(mu: np.ndarray | float, sd: np.ndarray | float) -> np.ndarray:
    """Unnormalised log-density of a Gaussian on the grid: the logits of a discretised q."""
    return -((X - mu) ** 2) / (2 * np.asarray(sd) ** 2)


P_LOGITS = np.logaddexp(
    np.log(WEIGHTS[0]) + log_gauss(MODES[0], MODE_SD),
    np.log(WEIGHTS[1]) + log_gauss(MODES[1], MODE_SD),
)


def _probs(logits: np.ndarray) -> np.ndarray:
    return np.exp(logits - np.logaddexp.reduce(logits))


def _moments(logits: np.ndarray) -> tuple[float, float]:
    w = _probs(logits)
    m = float((w * X).sum())
    return m, float(np.sqrt((w * (X - m) ** 2).sum()))


def _grid_fit(direction: str) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray]:
    mu, sd = np.meshgrid(np.arange(-40, 41) / 10, np.arange(2, 41) / 10, indexing="ij")
    mu, sd = mu.reshape(-1, 1), sd.reshape(-1, 1)
    q = log_gauss(mu, sd)
    p = np.broadcast_to(P_LOGITS, q.shape)
    if direction == "forward":
        d = kl_divergence(p_logits=p, q_logits=q)
    else:
        d = kl_divergence(p_logits=q, q_logits=p)
    i = int(d.argmin())
    return float(mu[i, 0]), float(sd[i, 0]), d, mu[:, 0], sd[:, 0]


def _refine(direction: str, mu0: float, sd0: float) -> tuple[float, float]:
    """Continuous minimum near the grid's (Nelder–Mead over mean and log std)."""

    def objective(theta: np.ndarray) -> float:
        q = log_gauss(theta[0], np.exp(theta[1]))
        if direction == "forward":
            return float(kl_divergence(p_logits=P_LOGITS, q_logits=q))
        return float(kl_divergence(p_logits=q, q_logits=P_LOGITS))

    res = scipy.optimize.minimize(
        objective, [mu0, np.log(sd0)], method="Nelder-Mead", options={"xatol": 1e-4}
    )
    assert res.success
    return float(res.x[0]), float(np.exp(res.x[1]))


def _mass_near(logits: np.ndarray, centre: float, radius: float = 1.0) -> float:
    return float(_probs(logits)[np.abs(X - centre) < radius].sum())


def test_forward_kl_is_mass_covering() -> None:
    mu, sd, _, _, _ = _grid_fit("forward")
    mu, sd = _refine("forward", mu, sd)
    # between the modes, with a std that spans them
    assert MODES[0] + 1 < mu < MODES[1] - 1
    assert mu - sd < MODES[0] + MODE_SD and mu + sd > MODES[1] - MODE_SD
    q = log_gauss(mu, sd)
    assert _mass_near(q, MODES[0]) > 0.1 and _mass_near(q, MODES[1]) > 0.1
    # over a Gaussian family, the forward-KL fit matches the target's moments
    m, s = _moments(P_LOGITS)
    assert _moments(q) == pytest.approx((m, s), abs=0.02)


def test_reverse_kl_is_mode_seeking() -> None:
    mu, sd, d, mus, sds = _grid_fit("reverse")
    mu, sd = _refine("reverse", mu, sd)
    # on the heavier mode, about as narrow as the mode itself
    assert abs(mu - MODES[0]) < 0.1
    assert sd < 1.5 * MODE_SD
    q = log_gauss(mu, sd)
    assert _mass_near(q, MODES[1]) < 1e-6
    # the other mode is a worse local minimum: q inside one component pays -log(weight)
    k = int(np.where(mus > 0, d, np.inf).argmin())
    assert abs(mus[k] - MODES[1]) < 0.15 and sds[k] < 1.5 * MODE_SD
    assert d[k] > d.min()
    assert d.min() == pytest.approx(-np.log(WEIGHTS[0]), abs=0.01)
    assert d[k] == pytest.approx(-np.log(WEIGHTS[1]), abs=0.01)


def test_the_two_directions_differ() -> None:
    fwd = _grid_fit("forward")
    rev = _grid_fit("reverse")
    assert fwd[1] > 3 * rev[1]  # the forward fit is much wider
    assert abs(fwd[0] - rev[0]) > 1.0
