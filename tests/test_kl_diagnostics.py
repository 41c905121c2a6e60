"""KL estimator diagnostics (issue 12 item 2): exact per-token KL against an independent
torch reference, k1/k3 unbiased within their standard errors, k3 >= 0, identical models
give 0, Schulman's Gaussian table, and ``infolens kl`` (table, --json, --report, errors)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from infolens import sampling
from infolens.cli import main
from infolens.errors import InputError
from infolens.kl_diagnostics import gaussian_estimator_table, kl_estimator_report
from infolens.models import load_model
from infolens.models.base import Window

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = ["the cat sat on the mat; the dog sat on the log; the cat ", "def f(x):\n    return "]

#: Schulman, "Approximating KL divergence" (2020): (bias/true, std/true) as printed there.
SCHULMAN = {
    0.1: {"k1": (0.0, 20.0), "k2": (0.002, 1.42), "k3": (0.0, 1.42)},
    1.0: {"k1": (0.0, 2.0), "k2": (0.25, 1.73), "k3": (0.0, 1.70)},
}


def _run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), input=input)


def _reference(policy, ref, r, prompts, warp, t_ref):  # type: ignore[no-untyped-def]
    """Per token: exact KL, log pi(x), log pi_ref(x) recomputed independently with torch
    log_softmax in float64, one completion at a time."""
    import torch

    kl, lp, lq = [], [], []
    for s in r.sequences:
        ids = np.asarray(policy.tokenize(prompts[s["prompt_index"]]).ids, dtype=np.int64)
        if policy.bos_id is not None:
            ids = np.concatenate([[policy.bos_id], ids])
        seq_ids = np.asarray(s["token_ids"], dtype=np.int64)
        n = len(seq_ids)
        w = Window(np.concatenate([ids, seq_ids]), len(ids))
        z = torch.as_tensor(np.concatenate(list(_rows(policy, w))))
        y = torch.as_tensor(np.concatenate(list(_rows(ref, w))))
        zw = torch.as_tensor(np.asarray(sampling.apply(z.numpy(), **warp), np.float64))
        a = torch.log_softmax(zw, -1)
        b = torch.log_softmax(y / t_ref, -1)
        pa = a.exp()
        kl.append(torch.where(pa > 0, pa * (a - b), torch.zeros((), dtype=a.dtype)).sum(-1).numpy())
        x = torch.as_tensor(seq_ids)
        lp.append(a[torch.arange(n), x].numpy())
        lq.append(b[torch.arange(n), x].numpy())
    return np.concatenate(kl), np.concatenate(lp), np.concatenate(lq)


def _rows(model, w):  # type: ignore[no-untyped-def]
    for c in model.logits([w], max_rows=1000):
        yield c.detach().double().numpy() if hasattr(c, "detach") else np.asarray(c, np.float64)


@pytest.mark.parametrize("chain", [{}, {"temperature": 0.7, "top_k": 12}, {"top_p": 0.8}])
def test_exact_kl_equals_torch_reference_ngram(chain: dict[str, Any]) -> None:
    pol, ref = load_model("ngram"), load_model("ngram:order=2")
    r = kl_estimator_report(pol, ref, PROMPTS, 6, max_new_tokens=20, seed=3, **chain)
    t = float(chain.get("temperature", 1.0))
    kl, lp, lq = _reference(pol, ref, r, PROMPTS, chain, t)
    assert r.n_tokens == len(kl) == 6 * 2 * 20
    np.testing.assert_allclose(r.token_exact, kl, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r.token_k["k1"], lp - lq, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r.token_k["k2"], 0.5 * (lq - lp) ** 2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        r.token_k["k3"], np.expm1(lq - lp) - (lq - lp), rtol=1e-8, atol=1e-12
    )
    assert r.max_logprob_gap < 1e-12  # the byte model's decoder is its scoring
    if not chain:
        assert r.ref_mass_outside == 0.0  # nothing removed
    # sequence sums are the per-token values summed
    for j, s in enumerate(r.sequences):
        sel = r.token_sequence == j
        assert s["exact"] == pytest.approx(r.token_exact[sel].sum(), rel=1e-12, abs=1e-15)
        assert s["k1"] == pytest.approx(r.token_k["k1"][sel].sum(), rel=1e-12, abs=1e-15)


def _perturbed(src: Path, dst: Path, scale: float = 0.5) -> Path:
    import torch
    from transformers import GPT2LMHeadModel

    shutil.copytree(src, dst)
    m = GPT2LMHeadModel.from_pretrained(dst)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale * p.std().clamp_min(1e-3))
    m.save_pretrained(dst)
    return dst


def test_exact_kl_equals_torch_reference_tiny_hf(tiny_hf_dir: Path, tmp_path: Path) -> None:
    pol = load_model(f"hf:{tiny_hf_dir}", device="cpu", dtype="float32", batch_size=4)
    ref = load_model(f"hf:{_perturbed(tiny_hf_dir, tmp_path / 'ref')}", device="cpu",
                     dtype="float32", batch_size=4)  # fmt: skip
    chain: dict[str, Any] = {"temperature": 0.8, "top_p": 0.95}
    r = kl_estimator_report(pol, ref, PROMPTS, 4, max_new_tokens=10, seed=2, **chain)
    kl, lp, lq = _reference(pol, ref, r, PROMPTS, chain, 0.8)
    assert r.exact.per_token.mean > 0.01
    np.testing.assert_allclose(r.token_exact, kl, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(r.token_k["k1"], lp - lq, rtol=1e-7, atol=1e-9)
    assert r.max_logprob_gap < 1e-4  # KV cache against a full forward pass, float32


def test_k1_k3_unbiased_k3_nonnegative_and_rao_blackwell() -> None:
    pol, ref = load_model("ngram"), load_model("ngram:order=2")
    r = kl_estimator_report(pol, ref, PROMPTS[:1], 200, max_new_tokens=16, seed=7)
    assert r.n_sequences == 200 and r.n_tokens == 3200
    for k in ("k1", "k3"):
        for level in ("per_token", "per_sequence"):
            s = getattr(r.estimators[k], level)
            assert s.bias_se is not None and s.bias_se > 0
            assert abs(s.bias) < 4 * s.bias_se, (k, level, s)
    assert np.all(r.token_k["k3"] >= 0) and np.all(r.token_k["k2"] >= 0)
    assert r.estimators["k3"].per_token.negative_fraction == 0.0
    assert 0 < r.estimators["k1"].per_token.negative_fraction < 1
    # k2 is biased: low here (the KL per token is not small), many standard errors away
    k2 = r.estimators["k2"].per_token
    assert k2.bias_se is not None and k2.bias < -4 * k2.bias_se
    # Rao-Blackwell: the exact sum varies less than the summed k1 over sequences
    rb, k1_seq = r.exact.per_sequence.std, r.estimators["k1"].per_sequence.std
    assert rb is not None and k1_seq is not None and rb < k1_seq
    # the definitions of the statistics
    e, k1 = r.token_exact, r.token_k["k1"]
    s = r.estimators["k1"].per_token
    assert s.rmse == pytest.approx(math.sqrt(np.mean((k1 - e) ** 2)))
    assert s.relative_error == pytest.approx(s.rmse / e.mean())
    assert s.std_over_true == pytest.approx(k1.std(ddof=1) / e.mean())
    assert s.negative_fraction == pytest.approx(np.mean(k1 < 0))
    assert r.exact.per_token.mean == pytest.approx(e.mean())
    # bits
    b = kl_estimator_report(pol, ref, PROMPTS[:1], 5, max_new_tokens=8, seed=7, base=2)
    n = kl_estimator_report(pol, ref, PROMPTS[:1], 5, max_new_tokens=8, seed=7)
    assert b.unit == "bits"
    assert b.exact.per_token.mean == pytest.approx(n.exact.per_token.mean / math.log(2))
    assert b.estimators["k1"].per_token.std_over_true == pytest.approx(
        n.estimators["k1"].per_token.std_over_true
    )


def test_truncation_biases_k3_by_the_reference_mass_removed() -> None:
    pol, ref = load_model("ngram"), load_model("ngram:order=5")
    r = kl_estimator_report(pol, ref, PROMPTS[:1], 100, max_new_tokens=16, seed=2, top_p=0.9)
    out = r.token_ref_outside
    assert r.ref_mass_outside == pytest.approx(out.mean()) and r.ref_mass_outside > 0.01
    k1, k3 = r.estimators["k1"].per_token, r.estimators["k3"].per_token
    assert k1.bias_se is not None and k3.bias_se is not None
    assert abs(k1.bias) < 4 * k1.bias_se  # k1 stays unbiased
    assert abs(k3.bias + r.ref_mass_outside) < 4 * k3.bias_se  # E[k3_t] = KL_t - outside_t
    assert k3.bias < -4 * k3.bias_se
    # the identity at every position: sum over the kept tokens of pi * k3 = KL - outside
    import torch

    s = r.sequences[0]
    ids = np.frombuffer(PROMPTS[0].encode(), np.uint8).astype(np.int64)
    w = Window(np.concatenate([ids, s["token_ids"]]), len(ids))
    z = np.concatenate(list(_rows(pol, w)))
    a = torch.log_softmax(torch.as_tensor(np.asarray(sampling.apply(z, top_p=0.9))), -1)
    b = torch.log_softmax(torch.as_tensor(np.concatenate(list(_rows(ref, w)))), -1)
    lr = torch.where(a > -torch.inf, b - a, torch.zeros((), dtype=a.dtype))
    ek3 = (a.exp() * (torch.expm1(lr) - lr)).sum(-1).numpy()
    sel = r.token_sequence == 0
    np.testing.assert_allclose(ek3, r.token_exact[sel] - out[sel], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("chain", [{}, {"temperature": 0.6}])
def test_identical_models_give_zero(chain: dict[str, Any]) -> None:
    r = kl_estimator_report(load_model("ngram"), load_model("ngram"), PROMPTS, 3,
                            max_new_tokens=12, **chain)  # fmt: skip
    assert np.all(np.abs(r.token_exact) < 1e-12)
    for k in ("k1", "k2", "k3"):
        assert np.all(r.token_k[k] == 0.0), k
        assert r.estimators[k].per_token.bias == 0.0
    assert r.exact.per_token.std_over_true is None  # 0 / 0: undefined, not a number


def test_library_errors() -> None:
    m = load_model("ngram")
    cases: list[tuple[dict[str, Any], str]] = [({"samples": 0}, "samples"), ({"max_new_tokens": 0}, "max_new_tokens"),
                        ({"top_p": 2.0}, "top_p"), ({"base": 3}, "base")]  # fmt: skip
    for kwargs, msg in cases:
        with pytest.raises(InputError, match=msg):
            kl_estimator_report(m, m, PROMPTS, **kwargs)
    with pytest.raises(InputError, match="prompts"):
        kl_estimator_report(m, m, [])


def test_schulman_table_exact_and_monte_carlo() -> None:
    for mu, want in SCHULMAN.items():
        exact = gaussian_estimator_table(mu)
        mc = gaussian_estimator_table(mu, samples=10**6, seed=0)
        for k, (bias, std) in want.items():
            digits = 3 if k == "k2" and mu == 0.1 else 2
            tol = 0.5 * 10**-digits + 1e-12  # Schulman's numbers at their rounding
            assert abs(exact[k][0] - bias) <= tol, (mu, k, exact[k])
            assert abs(exact[k][1] - std) <= 0.005 + 1e-12, (mu, k, exact[k])
            assert mc[k][1] == pytest.approx(exact[k][1], rel=0.01)
        # closed forms: log r ~ N(-mu^2/2, mu^2) under q
        true = mu * mu / 2
        assert exact["k1"][1] == pytest.approx(2 / mu, rel=1e-9)
        assert exact["k2"][0] == pytest.approx(mu * mu / 4, rel=1e-8)
        assert exact["k2"][1] == pytest.approx(
            math.sqrt(mu**4 / 2 + mu**2 * true**2) / true, rel=1e-9
        )
        assert exact["k3"][1] == pytest.approx(
            math.sqrt(math.expm1(mu * mu) - mu * mu) / true, rel=1e-9
        )


# --------------------------------------------------------------------------- CLI


@pytest.fixture()
def prompts_file(tmp_path: Path) -> Path:
    p = tmp_path / "prompts.txt"
    p.write_text("\n".join(PROMPTS[:1]) + "\n\nthe dog \n", encoding="utf-8")
    return p


def test_cli_table_json_report(prompts_file: Path, tmp_path: Path) -> None:
    args = ["kl", "--policy", "ngram", "--ref", "ngram:order=2", "--prompts", str(prompts_file),
            "-n", "8", "--max-new-tokens", "10", "--seed", "5", "-t", "0.9"]  # fmt: skip
    r = _run(*args)
    assert r.exit_code == 0, r.output
    assert "per token: exact KL_t" in r.output and "std/true" in r.output
    assert "k1" in r.output and "k3" in r.output and "Rao-Blackwellised" in r.output
    j = _run(*args, "--json")
    assert j.exit_code == 0, j.output
    d = json.loads(j.output)
    assert {"policy", "ref", "unit", "exact", "estimators", "per_position", "sequences",
            "prompts", "n_tokens", "sampling", "ref_temperature"} <= set(d)  # fmt: skip
    assert set(d["estimators"]) == {"k1", "k2", "k3"}
    assert {"bias", "bias_se", "std", "rmse", "relative_error", "std_over_true",
            "negative_fraction", "mean", "mean_se"} <= set(d["estimators"]["k1"]["per_token"])  # fmt: skip
    assert d["n_prompts"] == 2 and d["n_sequences"] == 16 and d["unit"] == "nats"
    assert d["ref_temperature"] == 0.9
    lib = kl_estimator_report(load_model("ngram"), load_model("ngram:order=2"),
                              [PROMPTS[0], "the dog "], 8, max_new_tokens=10, seed=5,
                              temperature=0.9)  # fmt: skip
    assert d["exact"]["per_token"]["mean"] == pytest.approx(lib.exact.per_token.mean, rel=1e-12)
    h = _run(*args, "--base", "2", "--report", str(tmp_path / "kl.html"))
    assert h.exit_code == 0, h.output
    html = (tmp_path / "kl.html").read_text(encoding="utf-8")
    assert "<svg" in html and "Per sequence" in html and "bits" in html


def test_cli_errors(prompts_file: Path, tmp_path: Path, tiny_hf_dir: Path) -> None:
    base = ["kl", "--policy", "ngram", "--ref", "ngram:order=2", "--max-new-tokens", "4"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    cases = [
        (["--prompts", str(tmp_path / "missing.txt")], "--prompts"),
        (["--prompts", str(empty)], "no prompt"),
        (["--prompts", str(prompts_file), "--samples", "0"], "--samples"),
        (["--prompts", str(prompts_file), "--top-p", "1.5"], "top_p"),
        (["--prompts", str(prompts_file), "--report", str(prompts_file)], "--report"),
    ]
    for extra, msg in cases:
        r = _run(*base, *extra)
        assert r.exit_code == 2, (extra, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0], (extra, r.output)
    r = _run("kl", "--policy", "ngram", "--ref", f"hf:{tiny_hf_dir}", "--prompts", str(prompts_file),
             "--device", "cpu")  # fmt: skip
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "same vocabulary" in lines[0], r.output
