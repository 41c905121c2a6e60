"""Window planning (infolens.windows): the definition of docs/scoring.md, tested alone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infolens.windows import context_lengths, plan_windows


def lm_eval_rolling_windows(token_list, prefix_token, max_seq_len, context_len):
    """lm-evaluation-harness's ``get_rolling_token_windows``, re-implemented from its
    definition: (input tokens, predicted tokens) pairs."""
    assert 1 <= context_len <= max_seq_len
    if not token_list:
        return
    pred_len = max_seq_len - context_len + 1
    predicted = 0
    first_seq_len = min(max_seq_len, len(token_list))
    yield [prefix_token, *token_list[: first_seq_len - 1]], token_list[:first_seq_len]
    predicted += first_seq_len
    while predicted < len(token_list):
        window_pred_len = min(len(token_list) - predicted, pred_len)
        window_end = predicted + window_pred_len
        yield (
            token_list[window_end - max_seq_len - 1 : window_end - 1],
            token_list[window_end - window_pred_len : window_end],
        )
        predicted += window_pred_len


def lm_eval_make_disjoint_window(pair):
    """lm-evaluation-harness's ``make_disjoint_window``: (context, continuation)."""
    a, b = pair
    return a[: len(a) - (len(b) - 1)], b


def _as_ids(w, tokens, bos):
    return ([bos] if w.bos else []) + tokens[w.lo : w.hi]


def test_lm_eval_gold_vector():
    # the gold windows of lm-evaluation-harness's own test (34 tokens, L = 10, prefix -100)
    gold = [
        ([-100, 0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ([9, 10, 11, 12, 13, 14, 15, 16, 17, 18], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]),
        ([19, 20, 21, 22, 23, 24, 25, 26, 27, 28], [20, 21, 22, 23, 24, 25, 26, 27, 28, 29]),
        ([23, 24, 25, 26, 27, 28, 29, 30, 31, 32], [30, 31, 32, 33]),
    ]
    x = list(range(34))
    assert list(lm_eval_rolling_windows(x, -100, 10, 1)) == gold
    ours = plan_windows(34, 10, 10, "first")
    assert [(_as_ids(w, x, -100)[:-1], x[w.target_lo : w.hi]) for w in ours] == gold


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 60), L=st.integers(1, 12))
def test_stride_L_first_is_lm_eval_rolling(n, L):
    x = list(range(100, 100 + n))
    theirs = [lm_eval_make_disjoint_window(p) for p in lm_eval_rolling_windows(x, -1, L, 1)]
    ours = plan_windows(n, L, L, "first")
    assert len(ours) == len(theirs)
    for w, (ctx, cont) in zip(ours, theirs):
        ids = _as_ids(w, x, -1)
        # same model input (context + continuation minus the last) and same predictions
        assert ids[:-1] == (ctx + cont)[:-1]
        assert ids[w.start :] == cont


def _brute_force(n, L, S, bos, predicts_first):
    """Each target's window by the definition: the first window whose inputs can predict it."""
    if bos == "first":
        m, inputs, prefix, off = n + 1, L, False, 1
        lowest = 1
    else:
        m, inputs, prefix, off = n, (L - 1 if bos == "every" else L), bos == "every", 0
        lowest = 0 if (prefix or predicts_first) else 1
    if m - 1 <= inputs:
        starts = [0]
    else:
        starts = [*range(0, m - 1 - inputs, S), m - 1 - inputs]
    owner = {}
    for w, a in enumerate(starts):
        can = range(a if prefix else a + 1, min(a + inputs, m - 1) + 1)
        if w == 0 and (bos == "none" and predicts_first):
            can = range(0, min(a + inputs, m - 1) + 1)
        for p in can:
            if p >= lowest and p not in owner:
                owner[p] = w
    return {p - off: w for p, w in owner.items()}


@settings(max_examples=400, deadline=None)
@given(
    n=st.integers(0, 80),
    L=st.integers(2, 16),
    s_frac=st.floats(0.0, 1.0),
    bos=st.sampled_from(["first", "every", "none"]),
    predicts_first=st.booleans(),
)
def test_definition_properties(n, L, s_frac, bos, predicts_first):
    S = max(1, min(L, round(s_frac * L)))
    plan = plan_windows(n, L, S, bos, predicts_first=predicts_first)
    # predicted tokens: a partition of the predictable ones, in order
    predicted = [j for w in plan for j in range(w.target_lo, w.hi)]
    first = 0 if (bos != "none" or predicts_first) else 1
    assert predicted == list(range(first, n)) if n > first else predicted == []
    for w in plan:
        assert w.n_inputs <= L  # never more than L input positions
        assert w.start >= (0 if (bos == "none" and predicts_first) else 1)
        assert w.n_predictions >= 1
    # the last window is full whenever the document is longer than the window
    if plan and n > L:
        assert plan[-1].n_inputs == L
        assert plan[-1].hi == n
    # each prediction is made in the first window containing it (the most context)
    owners = _brute_force(n, L, S, bos, predicts_first)
    got = {j: k for k, w in enumerate(plan) for j in range(w.target_lo, w.hi)}
    assert got == owners


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 80), L=st.integers(2, 16), S=st.integers(1, 16))
def test_effective_context(n, L, S):
    S = min(S, L)
    ctx = context_lengths(plan_windows(n, L, S, "first"))
    # token j (0-based) has j + 1 positions before it with BOS; beyond the first window
    # each prediction sees between L - S + 1 and L input positions
    for j, c in enumerate(ctx):
        assert c <= L
        assert c == j + 1 or c >= L - S + 1


def test_unbounded_one_window():
    (w,) = plan_windows(1000, None, None, "none", predicts_first=True)
    assert (w.lo, w.hi, w.target_lo, w.bos, w.start) == (0, 1000, 0, False, 0)
    (w,) = plan_windows(5, None, None, "first")
    assert (w.lo, w.hi, w.target_lo, w.bos, w.start) == (0, 5, 0, True, 1)


def test_every_puts_bos_in_every_window():
    plan = plan_windows(10, 4, 4, "every")
    assert all(w.bos for w in plan)
    assert plan[0].target_lo == 0 and plan[0].start == 1  # t_1 from BOS alone
    # S = L: window w predicts t[wL .. wL + L - 1], its first token from BOS alone
    assert [(w.lo, w.hi, w.target_lo) for w in plan] == [(0, 4, 0), (4, 8, 4), (6, 10, 8)]


def test_short_documents():
    assert plan_windows(0, 8, 4, "first") == []
    assert plan_windows(1, 8, 4, "none") == []  # nothing to predict
    assert len(plan_windows(1, 8, 4, "none", predicts_first=True)) == 1


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        ((10, 0, 1, "first"), "--max-length"),
        ((10, 1, 1, "every"), "--max-length"),
        ((10, 4, 5, "first"), "--stride"),
        ((10, 4, 0, "first"), "--stride"),
        ((10, 4, 2, "sometimes"), "--bos"),
    ],
)
def test_bad_settings(args, msg):
    with pytest.raises(ValueError, match=msg):
        plan_windows(*args)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 200), L=st.one_of(st.none(), st.integers(1, 40)),
       s_frac=st.floats(0, 1), bos=st.sampled_from(["first", "every", "none"]),
       predicts_first=st.booleans(), steps=st.lists(st.integers(1, 30), max_size=40))  # fmt: skip
def test_planner_on_a_stream_equals_planning_the_whole(n, L, s_frac, bos, predicts_first, steps):
    # tokens arriving in runs of any sizes give the same windows as the whole count, and
    # no window given out later needs a token below the planner's keep_from
    from infolens.windows import WindowPlanner

    if bos == "every" and L is not None and L < 2:
        L = 2
    S = None if L is None else max(1, min(L, round(s_frac * L)))
    planner = WindowPlanner(L, S, bos, predicts_first=predicts_first)
    got, count, keep = [], 0, 0
    for step in [*steps, n]:
        count = min(n, count + step)
        new = planner.add(count)
        assert all(w.lo >= keep for w in new)
        got += new
        keep = planner.keep_from
        if count == n:
            break
    tail = planner.finish()
    assert all(w.lo >= keep for w in tail)
    assert got + tail == plan_windows(n, L, S, bos, predicts_first=predicts_first)
