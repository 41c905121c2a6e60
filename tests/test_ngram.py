"""Tests of the built-in byte-level model (``ngram``)."""

from __future__ import annotations

import json
import math
import tracemalloc

import numpy as np
import pytest

from infolens.errors import InputError
from infolens.models import LanguageModel, load_model
from infolens.models.base import ModelSpecError, Window
from infolens.models.ngram import fit_ngram, load_ngram_file

ENGLISH = (
    b"The quick brown fox jumps over the lazy dog. The quick brown fox jumps again, "
    b"and the lazy dog sleeps. Information theory measures surprise in bits; the "
    b"entropy of English text is about one bit per character. "
) * 3 + "Unicode: caf\u00e9 na\u00efve \u2014 \U0001f600 end.\n".encode()
RANDOM = bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8))
TEXTS = [b"", b"a", b"ab", b"abracadabra abracadabra", b"aaaaaaaaaaaaaaaaaaaaaaaa", RANDOM, ENGLISH]


# --------------------------------------------------------------------------- reference
# A plain, slow, count-based restatement of the algorithm in src/infolens/_ngram_native.c.

PB_EDGES = [1 / 256, 1 / 64, 1 / 16, 1 / 8, 0.25, 0.5, 0.75, 0.875, 0.9375, 0.96875, 0.984375]


def ref_discounts(cc: list[float]) -> list[float]:
    n1, n2, n3, n4 = cc[1], cc[2], cc[3], cc[4]
    if n1 > 0 and n2 > 0 and n3 > 0 and n4 > 0:
        y = n1 / (n1 + 2 * n2)
        d = [0.0, 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3]
        return [0.0] + [min(max(d[r], 0.05), r - 0.05) for r in (1, 2, 3)]
    return [0.0, 0.5, 1.0, 1.5]


class RefModel:
    """Interpolated modified Kneser-Ney + match model + SSE, with dictionaries."""

    def __init__(self, order: int, match: bool = True, match_min: int = 4) -> None:
        self.order, self.match, self.L = order, match, match_min
        self.nodes: dict[tuple[int, bytes], dict[int, int]] = {}
        self.cc = [[0.0] * 5 for _ in range(order + 1)]
        self.hit: dict[tuple[int, int], float] = {}
        self.tot: dict[tuple[int, int], float] = {}

    def distributions(self, data: bytes, update: bool = True) -> list[list[float]]:
        rows = []
        mtab: dict[bytes, int] = {}
        mptr = mlen = 0
        use_match = self.match and update
        for i, x in enumerate(data):
            avail = min(i, self.order)
            p = [0.0] * 256
            w = 1.0
            for k in range(avail, -1, -1):
                node = self.nodes.get((k, data[i - k : i]))
                if not node:
                    continue
                n = sum(node.values())
                d = ref_discounts(self.cc[k])
                for s, c in node.items():
                    p[s] += (c - d[min(c, 3)]) * (w / n)
                n1 = sum(1 for c in node.values() if c == 1)
                n2 = sum(1 for c in node.values() if c == 2)
                n3 = len(node) - n1 - n2
                w *= (d[1] * n1 + d[2] * n2 + d[3] * n3) / n
            p = [v + w / 256 for v in p]
            predicted = None
            if use_match and mlen > 0:
                predicted = data[mptr]
                pk = p[predicted]
                cell = (min(mlen >> 1, 15), sum(pk > e for e in PB_EDGES))
                q = (self.hit.get(cell, 0.0) + 2 * pk) / (self.tot.get(cell, 0.0) + 2)
                if pk < 1 - 1e-12:
                    p = [v * (1 - q) / (1 - pk) for v in p]
                    p[predicted] = q
            rows.append(p)
            if not update:
                continue
            for k in range(avail, -1, -1):  # counts with update exclusion
                node = self.nodes.setdefault((k, data[i - k : i]), {})
                c = node.get(x, 0)
                node[x] = c + 1
                if c:
                    if c <= 4:
                        self.cc[k][c] -= 1
                    if c + 1 <= 4:
                        self.cc[k][c + 1] += 1
                    break
                self.cc[k][1] += 1
            if predicted is not None:
                self.tot[cell] = self.tot.get(cell, 0.0) + 1
                self.hit[cell] = self.hit.get(cell, 0.0) + (x == predicted)
                if self.tot[cell] > 255:
                    self.tot[cell] *= 0.5
                    self.hit[cell] *= 0.5
            if use_match:
                if mlen > 0 and data[mptr] == x:
                    mlen, mptr = mlen + 1, mptr + 1
                else:
                    mlen = 0
                e = i + 1
                if e >= self.L:
                    key = data[e - self.L : e]
                    if mlen == 0 and key in mtab:
                        cand = mtab[key]
                        length = self.L
                        while (
                            length < 64
                            and cand - length - 1 >= 0
                            and data[cand - length - 1] == data[e - length - 1]
                        ):
                            length += 1
                        mlen, mptr = length, cand
                    mtab[key] = e
        return rows


def ref_bits(rows: list[list[float]], data: bytes) -> float:
    return -sum(math.log2(r[x]) for r, x in zip(rows, data))


# ----------------------------------------------------------------------------- helpers


def rows_of(model: LanguageModel, data: bytes, max_rows: int = 64, start: int = 0) -> np.ndarray:
    ids = model.tokenize(data).ids
    chunks = list(model.logits([Window(ids=ids, start=start)], max_rows=max_rows))
    assert all(c.shape[0] <= max_rows and c.shape[1] == 256 for c in chunks)
    if not chunks:
        return np.zeros((0, 256))
    return np.concatenate(chunks)


def bits(model: LanguageModel, data: bytes) -> float:
    out = rows_of(model, data)
    ids = np.frombuffer(data, np.uint8)
    return float(-out[np.arange(len(ids)), ids].sum() / math.log(2))


@pytest.fixture(scope="module")
def fitted_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ngram") / "m.ilng"
    fit_ngram([ENGLISH[:400], b"another document, short"], order=4).save(path)
    return str(path)


# ------------------------------------------------------------------------------- tests


def test_interface() -> None:
    m = load_model("ngram")
    assert isinstance(m, LanguageModel)
    assert (m.vocab_size, m.bos_id, m.max_context, m.predicts_first, m.byte_level) == (
        256,
        None,
        None,
        True,
        True,
    )
    tok = m.tokenize("é!")
    assert tok.ids.tolist() == [0xC3, 0xA9, 0x21]
    assert tok.offsets.tolist() == [[0, 1], [1, 2], [2, 3]]
    assert m.tokenize(b"\xff\x00").ids.tolist() == [255, 0]


@pytest.mark.parametrize("spec", [f"ngram:order={k}" for k in range(9)] + ["ngram:match=0"])
def test_rows_are_distributions(spec: str) -> None:
    out = rows_of(load_model(spec), ENGLISH + RANDOM[:100], max_rows=100)
    assert out.shape == (len(ENGLISH) + 100, 256)
    assert np.isfinite(out).all()
    assert np.abs(np.exp(out).sum(axis=1) - 1).max() < 1e-9


@pytest.mark.parametrize("adapt", ["0", "1"])
def test_fitted_rows_are_distributions(fitted_path: str, adapt: str) -> None:
    out = rows_of(load_model(f"ngram:{fitted_path},adapt={adapt}"), ENGLISH + RANDOM)
    assert np.isfinite(out).all()
    assert np.abs(np.exp(out).sum(axis=1) - 1).max() < 1e-9


@pytest.mark.parametrize("order", [0, 1, 2, 3, 6, 8])
@pytest.mark.parametrize("match", [True, False])
def test_matches_reference(order: int, match: bool) -> None:
    texts = TEXTS if order in (2, 6) else [ENGLISH, b"abracadabra abracadabra"]
    spec = f"ngram:order={order}" + ("" if match else ",match=0")
    for data in texts:
        ref = ref_bits(RefModel(order, match).distributions(data), data)
        got = bits(load_model(spec), data)
        assert got == pytest.approx(ref, rel=1e-10, abs=1e-9), (order, match, data[:20])


def test_reference_rows_elementwise() -> None:
    data = ENGLISH[:300]
    ref = np.log(np.array(RefModel(6).distributions(data)))
    assert np.abs(rows_of(load_model("ngram"), data) - ref).max() < 1e-11


def test_fitted_matches_reference() -> None:
    train, test = ENGLISH[:350], ENGLISH[300:]
    ref = RefModel(3)
    ref.distributions(train)  # learn
    frozen = ref_bits(ref.distributions(test, update=False), test)
    model = fit_ngram([train], order=3)
    assert bits(model, test) == pytest.approx(frozen, rel=1e-10)


def test_save_load_identical(fitted_path: str, tmp_path) -> None:
    for adapt in (False, True):
        a = fit_ngram([ENGLISH[:400], b"another document, short"], order=4, adapt=adapt)
        b = load_ngram_file(fitted_path, adapt=adapt)
        np.testing.assert_array_equal(rows_of(a, ENGLISH), rows_of(b, ENGLISH))
    # saving again gives the same file, byte for byte
    again = tmp_path / "again.ilng"
    load_ngram_file(fitted_path).save(again)
    assert again.read_bytes() == open(fitted_path, "rb").read()


def test_adapting_model_does_not_change_fitted(fitted_path: str) -> None:
    m = load_model(f"ngram:{fitted_path},adapt=1")
    first = rows_of(m, ENGLISH)
    np.testing.assert_array_equal(first, rows_of(m, ENGLISH))  # each window starts afresh


def test_fitting_helps_and_adapting_helps_more(fitted_path: str) -> None:
    doc = ENGLISH[400:]
    empty = bits(load_model("ngram:order=4"), doc)
    frozen = bits(load_model(f"ngram:{fitted_path}"), doc)
    adapt = bits(load_model(f"ngram:{fitted_path},adapt=1"), doc)
    assert adapt < empty and frozen < 8 * len(doc)


def test_unseen_bytes_have_positive_probability(fitted_path: str) -> None:
    for spec in ("ngram", f"ngram:{fitted_path}", f"ngram:{fitted_path},adapt=1"):
        out = rows_of(load_model(spec), b"aaaa\xff\x00")
        assert np.isfinite(out).all() and (out < 0).all()
        assert np.exp(out[-2, 0xFF]) > 1e-9


def test_empty_and_one_byte() -> None:
    m = load_model("ngram")
    assert rows_of(m, b"").shape == (0, 256)
    out = rows_of(m, b"x")
    np.testing.assert_allclose(out, np.full((1, 256), -math.log(256)), rtol=1e-14)
    assert list(m.logits([], max_rows=4)) == []


def test_window_start_and_multiple_windows() -> None:
    m = load_model("ngram")
    data = ENGLISH[:200]
    ids = m.tokenize(data).ids
    full = rows_of(m, data)
    chunks = list(m.logits([Window(ids, 150), Window(ids[:10], 0)], max_rows=7))
    out = np.concatenate(chunks)
    assert out.shape == (60, 256)
    np.testing.assert_array_equal(out[:50], full[150:])
    np.testing.assert_array_equal(out[50:], full[:10])  # context is only that window


def test_ten_megabytes_stream_in_bounded_memory() -> None:
    m = load_model("ngram")
    ids = np.resize(np.frombuffer(ENGLISH, np.uint8).astype(np.int64), 10_000_000)
    tracemalloc.start()
    try:
        gen = m.logits([Window(ids, 0)], max_rows=1000)
        for i, chunk in enumerate(gen):
            assert chunk.shape == (1000, 256)
            if i == 20:
                break
        gen.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40e6  # the uint8 copy (10 MB) plus a few chunks of 2 MB


def test_bounded_tables_restart() -> None:
    from infolens._ngram_native import Model

    core = Model(order=6, max_nodes_log2=13, max_slab_log2=15)
    core.begin()
    data = bytes(np.random.default_rng(1).integers(0, 256, 12_000, dtype=np.uint8))
    out = np.empty((len(data), 256))
    core.run(data, 0, len(data), out, True)
    info = core.info()
    assert info["restarts"] > 0 and info["table_capacity"] <= 2**13
    assert np.abs(np.exp(out).sum(axis=1) - 1).max() < 1e-9


def test_fit_streams_files_in_chunks(tmp_path, monkeypatch) -> None:
    import infolens.models.ngram as ng

    path = tmp_path / "doc.txt"
    path.write_bytes(ENGLISH)
    whole = fit_ngram([ENGLISH], order=3)
    monkeypatch.setattr(ng, "_FIT_CHUNK", 37)
    chunked = fit_ngram([path], order=3)
    assert chunked.info()["contexts"] == whole.info()["contexts"]


def _arrays(path: str) -> tuple[int, dict[str, np.ndarray]]:
    m = load_ngram_file(path)
    orders, ctx, nsym, sym, cnt, sse = m._core.export()
    return m.order, {"orders": orders, "contexts": ctx, "nsym": nsym, "symbols": sym,
                     "counts": cnt, "sse": sse}  # fmt: skip


def _edit(arrays: dict[str, np.ndarray], case: str) -> tuple[dict[str, np.ndarray], dict]:
    a = {k: v.copy() for k, v in arrays.items()}
    header: dict = {}
    big = np.flatnonzero(a["nsym"] > 1)[0]  # a context with several symbols
    first = int(np.cumsum(a["nsym"])[big] - a["nsym"][big])
    if case == "sse_inf":
        a["sse"][1, 0, 0] = np.inf
    elif case == "sse_nan":
        a["sse"][0, 3, 3] = np.nan
    elif case == "sse_negative":
        a["sse"][0, 1, 1] = -1.0
    elif case == "sse_hits_past_trials":
        a["sse"][0, 2, 2] = a["sse"][1, 2, 2] + 1
    elif case == "order_float":
        header["order"] = 3.7
    elif case == "order_big":
        header["order"] = 9
    elif case == "version":
        header["version"] = 99
    elif case == "count_zero":
        a["counts"][first] = 0
    elif case == "count_wraps":
        a["counts"][first] = 0xFFFFFFFF
    elif case == "counts_overflow_sum":
        a["counts"][first : first + 2] = 0x7FFFFFFF
    elif case == "nsym_big":
        a["nsym"][big] = 300
    elif case == "nsym_sum":
        a["nsym"][big] += 1
    elif case == "orders_past":
        a["orders"][0] = 7
    elif case == "too_many_order0":
        a["orders"][:] = 0
    elif case == "context_high_bytes":
        i = int(np.flatnonzero(a["orders"] == 1)[0])
        a["contexts"][i] = 0x1FF
    elif case == "duplicate_symbol":
        a["symbols"][first + 1] = a["symbols"][first]
    elif case == "shape_mismatch":
        a["contexts"] = a["contexts"][:-1]
    elif case == "declared_huge":  # sizes that deflate cannot hold: refused before allocating
        n = 10**12
        header["arrays"] = [["orders", "<u1", [n]], ["contexts", "<u8", [n]],
                            ["nsym", "<u2", [n]], *[[k, d, list(np.shape(a[k]))] for k, d in
                            [("symbols", "<u1"), ("counts", "<u4"), ("sse", "<f8")]]]  # fmt: skip
    else:
        raise AssertionError(case)
    return a, header


EDITS = {
    "sse_inf": "array 'sse'", "sse_nan": "array 'sse'", "sse_negative": "array 'sse'",
    "sse_hits_past_trials": "array 'sse'", "order_float": "header field 'order'",
    "order_big": "header field 'order'", "version": "header field 'version'",
    "count_zero": "array 'counts'", "count_wraps": "past the limit",
    "counts_overflow_sum": "past the limit", "nsym_big": "array 'nsym'",
    "nsym_sum": "array 'nsym'", "orders_past": "array 'orders'",
    "too_many_order0": "contexts of order 0", "context_high_bytes": "array 'contexts'",
    "duplicate_symbol": "inconsistent data", "shape_mismatch": "header field 'arrays'",
    "declared_huge": "more than its compressed block",
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(EDITS))
def test_edited_model_files_are_refused(tmp_path, fitted_path: str, case: str) -> None:
    # a file edited and re-saved with valid checksums: the values themselves are checked
    from infolens.models.ngram import write_model_arrays

    order, arrays = _arrays(fitted_path)
    edited, header = _edit(arrays, case)
    path = tmp_path / "edited.ilng"
    write_model_arrays(path, order, edited, header)
    for adapt in ("0", "1"):
        with pytest.raises(InputError) as info:
            load_model(f"ngram:{path},adapt={adapt}")
        msg = str(info.value)
        assert "\n" not in msg and str(path) in msg and EDITS[case] in msg, msg


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "expected an infolens ngram model"),
        (b"hello world, not a model", "expected an infolens ngram model"),
        (b"PK\x03\x04 an old npz", "format version 1"),
        ("truncate", "truncated"),
    ],
)
def test_bad_model_files(tmp_path, fitted_path: str, content, fragment: str) -> None:
    path = tmp_path / "bad.ilng"
    good = open(fitted_path, "rb").read()
    if content == "truncate":
        path.write_bytes(good[: len(good) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(InputError) as info:
        load_model(f"ngram:{path}")
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and fragment in msg


def test_every_flip_and_truncation_of_a_model_is_refused(tmp_path) -> None:
    from _faults import assert_corruptions_refused

    good = tmp_path / "tiny.ilng"
    fit_ngram([b"abcabd"], order=1).save(good)

    def read(p) -> object:
        m = load_ngram_file(p, adapt=True)
        return rows_of(m, b"abc")

    tried = assert_corruptions_refused(good, read, tmp_path)
    assert tried["truncations"] == good.stat().st_size > 200


def test_saturated_counts_stop_learning_instead_of_wrapping(tmp_path, fitted_path: str) -> None:
    # counts at the limit, loaded, then adapted on: they must not wrap (they would read an
    # uninitialised discount at 0); the row stays a distribution
    from infolens.models.ngram import _native, write_model_arrays

    order, arrays = _arrays(fitted_path)
    limit = _native().COUNT_LIMIT
    i = int(np.flatnonzero(arrays["orders"] == 0)[0])
    first = int(np.cumsum(arrays["nsym"])[i] - arrays["nsym"][i])
    n = int(arrays["nsym"][i])
    arrays["counts"][first : first + n] = 1
    arrays["counts"][first] = limit - (n - 1)
    path = tmp_path / "sat.ilng"
    write_model_arrays(path, order, arrays)
    m = load_model(f"ngram:{path},adapt=1")
    out = rows_of(m, ENGLISH)
    assert np.isfinite(out).all() and np.abs(np.exp(out).sum(axis=1) - 1).max() < 1e-9


def test_missing_file() -> None:
    with pytest.raises(InputError, match="expected an existing file"):
        load_model("ngram:/nonexistent/model.npz")


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("ngram:order=9", "order"),
        ("ngram:order=x", "order"),
        ("ngram:colour=1", "'colour'"),
        ("ngram:adapt=0", "adapt applies only to a model file"),
        ("ngram:adapt=1", "adapt applies only to a model file"),
        ("ngram:order=3,order=4", "got 'order' twice"),
        ("ngram:order=", "expected a value for 'order'"),
        ("", "got ''"),
        ("  ", "got '  '"),
        ("ngram:match=maybe", "match"),
    ],
)
def test_bad_specs(spec: str, fragment: str) -> None:
    with pytest.raises(ModelSpecError, match=fragment):
        load_model(spec)


def test_options() -> None:
    assert load_model("ngram", order=3).name == "ngram:order=3"
    assert load_model("ngram", device=None).name == "ngram:order=6"
    with pytest.raises(ModelSpecError, match="'dtype'"):
        load_model("ngram", dtype="float32")


def test_model_file_header(fitted_path: str) -> None:
    from infolens._fileformat import Container
    from infolens.models.ngram import FILE_MAGIC

    c = Container(fitted_path, FILE_MAGIC, "ngram model file")
    assert (c.header["format"], c.header["version"], c.header["order"]) == ("infolens-ngram", 2, 4)
    assert [a[0] for a in c.header["arrays"]] == [
        "orders", "contexts", "nsym", "symbols", "counts", "sse"]  # fmt: skip
    c.close()


def test_cli_fit(tmp_path) -> None:
    from click.testing import CliRunner

    from infolens.cli import main

    doc = tmp_path / "doc.txt"
    doc.write_bytes(ENGLISH)
    out = tmp_path / "model.ilng"
    res = CliRunner().invoke(main, ["ngram", "fit", str(doc), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["bytes"] == len(ENGLISH) and summary["order"] == 6
    model = load_model(f"ngram:{out}")
    assert bits(model, ENGLISH) < bits(load_model("ngram"), ENGLISH)
    res = CliRunner().invoke(main, ["ngram", "info", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["order"] == 6
    res = CliRunner().invoke(main, ["ngram", "info", str(doc)])
    assert res.exit_code == 2 and "expected an infolens ngram model" in res.output


def test_cli_fit_and_info_errors_are_one_line(tmp_path) -> None:
    from click.testing import CliRunner

    from infolens.cli import main

    doc = tmp_path / "doc.txt"
    doc.write_bytes(ENGLISH)
    cases = [
        (
            ["fit", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "m.ilng")],
            "nope.txt: no such file",
        ),
        (["fit", str(tmp_path), "-o", str(tmp_path / "m.ilng")], "is a directory"),
        (
            ["fit", str(doc), "-o", str(tmp_path / "no" / "m.ilng")],
            "--output: " + str(tmp_path / "no"),
        ),
        (["fit", str(doc), "-o", str(doc)], "is also an input"),
        (["info", str(tmp_path)], "expected an existing file, got a directory"),
        (["info", str(tmp_path / "nope.ilng")], "expected an existing file, got no such file"),
    ]
    for args, message in cases:
        res = CliRunner().invoke(main, ["ngram", *args])
        err = res.stderr.strip()
        assert res.exit_code == 2 and err.splitlines() == [err] and message in err, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.txt"]
    assert doc.read_bytes() == ENGLISH


def test_tokenize_is_a_view_with_lazy_spans() -> None:
    data = b"abc" * 1000
    tok = load_model("ngram").tokenize(data)
    assert tok.ids.dtype == np.uint8 and np.shares_memory(tok.ids, np.frombuffer(data, np.uint8))
    assert tok.spans(np.array([0, 2999])).tolist() == [[0, 1], [2999, 3000]]
    assert (tok.offsets == np.stack([np.arange(3000), np.arange(1, 3001)], 1)).all()


def test_empty_spec_item_is_named() -> None:
    with pytest.raises(ModelSpecError, match=r"got an empty item in 'ngram:,adapt=1'"):
        load_model("ngram:,adapt=1")


def test_missing_extension_is_one_line(monkeypatch) -> None:
    import sys

    from click.testing import CliRunner

    import infolens
    from infolens.cli import main

    monkeypatch.setitem(sys.modules, "infolens._ngram_native", None)  # import fails
    monkeypatch.delattr(infolens, "_ngram_native", raising=False)
    res = CliRunner().invoke(main, ["measure", "kl", "--p", "0.5,0.5", "--q", "0.9,0.1"])
    assert res.exit_code == 0  # what needs no extension still works
    res = CliRunner().invoke(main, ["score", "-"], input="hello")
    err = res.stderr.strip()
    assert res.exit_code == 2 and err.splitlines() == [err] and "C compiler" in err, err
