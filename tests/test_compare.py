"""infolens.compare and infolens.basefile against independent numpy/scipy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import log_softmax, rel_entr

from infolens import compare_logits
from infolens.basefile import (
    BaseFile,
    BaseFileWriter,
    coarse_token_stats,
    make_records,
    record_dtype,
)
from infolens.compare import BLOCK, CompareAccumulator, token_stats
from infolens.errors import InputError


def _pair(n: int = 300, v: int = 40, noise: float = 0.4, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, v)) * 2
    model = base + noise * rng.normal(size=(n, v))
    targets = rng.integers(0, v, size=n)
    return base, model, targets


def _reference(base, model, targets):
    """Every summary number, computed plainly from probabilities."""
    lb, lm = log_softmax(base, axis=1), log_softmax(model, axis=1)
    pb, pm = np.exp(lb), np.exp(lm)
    n = len(targets)
    idx = np.arange(n)
    nll_b, nll_m = -lb[idx, targets], -lm[idx, targets]
    kl_bm = rel_entr(pb, pm).sum(1)
    kl_mb = rel_entr(pm, pb).sum(1)
    mix = (pb + pm) / 2
    js = 0.5 * rel_entr(pb, mix).sum(1) + 0.5 * rel_entr(pm, mix).sum(1)
    dp = pm[idx, targets] - pb[idx, targets]
    same = (pb.argmax(1) == pm.argmax(1)).astype(float)

    def overlap(k):
        tb = np.argsort(-pb, axis=1)[:, :k]
        tm = np.argsort(-pm, axis=1)[:, :k]
        return np.array([len(set(a) & set(b)) / k for a, b in zip(tb, tm)])

    return dict(
        nll_b=nll_b,
        nll_m=nll_m,
        kl_bm=kl_bm,
        kl_mb=kl_mb,
        js=js,
        dp=dp,
        same=same,
        o5=overlap(5),
        o10=overlap(10),
    )


def test_summary_equals_independent_numpy():
    base, model, targets = _pair()
    s = compare_logits(base, model, targets)
    r = _reference(base, model, targets)
    n = len(targets)
    assert s["tokens"] == n
    assert s["ppl_base"] == pytest.approx(math.exp(r["nll_b"].mean()), rel=1e-12)
    assert s["ppl_model"] == pytest.approx(math.exp(r["nll_m"].mean()), rel=1e-12)
    d = r["nll_m"] - r["nll_b"]
    assert s["ln_ppl_ratio"] == pytest.approx(d.mean(), rel=1e-10)
    assert s["ppl_ratio"] == pytest.approx(math.exp(d.mean()), rel=1e-12)
    assert s["ppl_diff"] == pytest.approx(s["ppl_model"] - s["ppl_base"], rel=1e-12)
    assert s["cor_ln_ppl"] == pytest.approx(np.corrcoef(r["nll_b"], r["nll_m"])[0, 1], rel=1e-10)
    assert s["kl_base_model"] == pytest.approx(r["kl_bm"].mean(), rel=1e-10)
    assert s["kl_model_base"] == pytest.approx(r["kl_mb"].mean(), rel=1e-10)
    assert s["js"] == pytest.approx(r["js"].mean(), rel=1e-10)
    assert s["kl_base_model_se"] == pytest.approx(r["kl_bm"].std() / math.sqrt(n - 1), rel=1e-9)
    for key, q in [("max", 100), ("99.9", 99.9), ("99", 99), ("50", 50), ("0.1", 0.1), ("min", 0)]:
        assert s["kl_percentiles"][key] == pytest.approx(np.percentile(r["kl_bm"], q), rel=1e-9)
    assert s["delta_p"]["mean"] == pytest.approx(r["dp"].mean(), abs=1e-14)
    assert s["delta_p"]["rms"] == pytest.approx(np.sqrt((r["dp"] ** 2).mean()), rel=1e-10)
    assert s["same_top1"] == pytest.approx(r["same"].mean())
    p = r["same"].mean()
    assert s["same_top1_se"] == pytest.approx(math.sqrt(p * (1 - p) / (n - 1)))
    assert s["top5_overlap"] == pytest.approx(r["o5"].mean())
    assert s["top10_overlap"] == pytest.approx(r["o10"].mean())


def test_batch_means_intervals_follow_definition():
    base, model, targets = _pair(n=5 * BLOCK + 10)
    s = compare_logits(base, model, targets)
    r = _reference(base, model, targets)
    blocks = r["kl_bm"][: 5 * BLOCK].reshape(5, BLOCK).mean(1)
    bm = s["kl_base_model_batch_means"]
    assert bm["blocks"] == 5
    se = blocks.std(ddof=1) / math.sqrt(5)
    assert bm["se"] == pytest.approx(se, rel=1e-9)
    assert bm["low"] == pytest.approx(blocks.mean() - 1.959963984540054 * se, rel=1e-9)


def test_self_comparison_is_exactly_neutral():
    base, _, targets = _pair()
    s = compare_logits(base, base.copy(), targets)
    assert s["kl_base_model"] == 0.0
    assert s["kl_model_base"] == 0.0
    assert s["same_top1"] == 1.0
    assert s["ppl_ratio"] == 1.0
    assert s["ppl_diff"] == 0.0
    assert s["top5_overlap"] == 1.0


def test_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    base, model, targets = _pair(n=50)
    a = compare_logits(base, model, targets)
    b = compare_logits(torch.tensor(base), torch.tensor(model), torch.tensor(targets))
    assert b["kl_base_model"] == pytest.approx(a["kl_base_model"], rel=1e-12)
    assert b["same_top1"] == a["same_top1"]


def test_llama_cpp_formulas_on_hand_made_example():
    # two tokens over a 2-letter vocabulary, values checked by hand
    base = np.log(np.array([[0.5, 0.5], [0.9, 0.1]]))
    model = np.log(np.array([[0.25, 0.75], [0.9, 0.1]]))
    targets = np.array([1, 0])
    s = compare_logits(base, model, targets)
    kl0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert s["kl_percentiles"]["max"] == pytest.approx(kl0)
    assert s["kl_percentiles"]["min"] == pytest.approx(0.0, abs=1e-15)
    # linear interpolation at f * (n - 1): the median of two values is their midpoint
    assert s["kl_percentiles"]["50"] == pytest.approx(kl0 / 2)
    assert s["kl_percentiles"]["90"] == pytest.approx(0.9 * kl0)
    # Δp = q(true) - p_base(true)
    assert s["delta_p"]["percentiles"]["max"] == pytest.approx(0.25)
    assert s["delta_p"]["percentiles"]["min"] == pytest.approx(0.0, abs=1e-15)
    # ln(PPL(Q)/PPL(base)) ± sqrt(s_Q^2 + s_b^2 - 2 cov), per-token (population) moments / (n-1)
    nq = np.array([-math.log(0.75), -math.log(0.9)])
    nb = np.array([-math.log(0.5), -math.log(0.9)])
    cov = np.mean(nq * nb) - nq.mean() * nb.mean()
    unc = math.sqrt(nq.var() / 1 + nb.var() / 1 - 2 * cov / 1)
    assert s["ln_ppl_ratio_se"] == pytest.approx(unc)
    # same top: the argmax of token 0 is tied in base (first index) vs index 1 in the model
    assert s["same_top1"] == 0.5
    assert s["same_top1_se"] == pytest.approx(math.sqrt(0.25 / 1))


def test_merge_equals_single_pass():
    base, model, targets = _pair(n=400)
    one = CompareAccumulator()
    one.update(token_stats(base[:200], model[:200], targets[:200]))
    one.end_document()
    one.update(token_stats(base[200:], model[200:], targets[200:]))
    a = CompareAccumulator()
    a.update(token_stats(base[:200], model[:200], targets[:200]))
    b = CompareAccumulator()
    b.update(token_stats(base[200:], model[200:], targets[200:]))
    merged = a.merge(b).compute()
    single = one.compute()
    assert merged == single


def test_vocab_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="vocabulary size"):
        compare_logits(np.zeros((2, 3)), np.zeros((2, 4)), np.array([0, 1]))


@pytest.mark.parametrize("k", [1, 4, 16])
def test_saved_base_is_a_lower_bound_reaching_exact_at_full_k(tmp_path, k):
    base, model, targets = _pair(n=120, v=16)
    exact = token_stats(base, model, targets)
    path = tmp_path / "b.ilb"
    with BaseFileWriter(path, {"model": "x", "vocab_size": 16}, k=k) as w:
        w.write(base[:70], targets[:70])
        w.end_document("a")
        w.write(base[70:], targets[70:])
        w.end_document("b")
    f = BaseFile(path)
    assert f.n_records == 120
    assert path.stat().st_size - f._offset > 120 * (8 * k + 16)
    rec = f.records()
    assert rec.dtype.itemsize == 8 * k + 16
    coarse = coarse_token_stats(rec, model)
    # float32 storage: allow its rounding
    assert np.all(coarse["kl_base_model"] <= exact["kl_base_model"] + 1e-6)
    assert np.all(coarse["kl_model_base"] <= exact["kl_model_base"] + 1e-6)
    np.testing.assert_allclose(coarse["nll_base"], exact["nll_base"], rtol=1e-6)
    np.testing.assert_allclose(coarse["nll_model"], exact["nll_model"], rtol=1e-12)
    np.testing.assert_array_equal(coarse["same_top1"], exact["same_top1"])
    if k == 16:
        np.testing.assert_allclose(
            coarse["kl_base_model"], exact["kl_base_model"], rtol=1e-5, atol=1e-7
        )
        np.testing.assert_allclose(
            coarse["kl_model_base"], exact["kl_model_base"], rtol=1e-5, atol=1e-7
        )
    else:
        assert coarse["kl_base_model"].mean() < exact["kl_base_model"].mean()


def test_base_file_errors(tmp_path):
    base, _, targets = _pair(n=10, v=8)
    path = tmp_path / "b.ilb"
    with BaseFileWriter(path, {"model": "x", "vocab_size": 8}, k=4) as w:
        w.write(base, targets)
        w.end_document("d")
    data = path.read_bytes()
    (tmp_path / "trunc.ilb").write_bytes(data[:-40])
    with pytest.raises(InputError, match="truncated"):
        BaseFile(tmp_path / "trunc.ilb")
    (tmp_path / "foreign.ilb").write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(InputError, match="expected an infolens base file"):
        BaseFile(tmp_path / "foreign.ilb")
    with pytest.raises(InputError, match="cannot read"):
        BaseFile(tmp_path / "missing.ilb")
    # a failure while writing leaves nothing behind
    out = tmp_path / "failed.ilb"
    with pytest.raises(RuntimeError), BaseFileWriter(out, {"model": "x", "vocab_size": 8}, k=4) as w:
        w.write(base, targets)
        raise RuntimeError("boom")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".failed")]


def test_records_layout():
    base, _, targets = _pair(n=5, v=12)
    rec = make_records(base, targets, 3)
    assert rec.dtype == record_dtype(3)
    lb = log_softmax(base, axis=1)
    np.testing.assert_array_equal(rec["ids"][:, 0], lb.argmax(1))
    np.testing.assert_allclose(np.exp(rec["logp"]).sum(1) + np.exp(rec["log_tail"]), 1.0, rtol=1e-6)
