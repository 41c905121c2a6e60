"""``--engine ray``: the single-process numbers exactly, under worker failure too.

Runs a real local Ray (``ray.init`` on this machine, two actors); nothing is mocked. The
worker failure is a SIGKILL to an actor's process, found through Ray's actor table."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from infolens.cli import main
from infolens.documents import Document, read_documents
from infolens.errors import InputError
from infolens.models import load_model
from infolens.score import score_documents

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'infolens[ray]')")

from infolens.distributed import (  # noqa: E402
    RayOptions,
    compare_documents_ray,
    merge_score_results,
    score_documents_ray,
)

TEXT = "Perplexity filtering of pre-training data runs over billions of tokens. "


@pytest.fixture(scope="module")
def local_ray() -> Any:
    from infolens.distributed import _init

    _init(ray, RayOptions(workers=2))
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    d = tmp_path_factory.mktemp("corpus")
    paths = []
    for i in range(9):
        p = d / f"doc{i}.txt"
        p.write_text((TEXT + f"document {i}. ") * (3 + 7 * i), encoding="utf-8")
        paths.append(str(p))
    (d / "empty.txt").write_text("", encoding="utf-8")
    paths.append(str(d / "empty.txt"))
    big = d / "big.txt"  # past the reader's streaming threshold: a lazy document (a path)
    big.write_text((TEXT * 40 + "\n") * 420, encoding="utf-8")  # 1.2 MB
    paths.append(str(big))
    lines = d / "records.jsonl"
    lines.write_text("\n".join(json.dumps({"text": f"{TEXT} record {k}"}) for k in range(5)),
                     encoding="utf-8")  # fmt: skip
    paths.append(str(lines))
    return paths


def same_text(a: str, b: str) -> None:
    """``a == b``, showing where they first differ."""
    if a != b:
        i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        raise AssertionError(f"differ at {i}: {a[max(0, i - 80) : i + 120]!r} vs {b[max(0, i - 80) : i + 120]!r}")


def local_json(args: list[str]) -> str:
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    return r.stdout


def test_score_equals_single_process_bit_for_bit(local_ray: Any, corpus: list[str]) -> None:
    docs = list(read_documents(corpus[:-1], allow_bytes=True, stream_bytes=1 << 20))
    assert any(d.lazy for d in docs)
    info: dict[str, Any] = {}
    got = score_documents_ray("ngram", docs, options=RayOptions(workers=2, batch_documents=3),
                              info=info)  # fmt: skip
    want = score_documents(
        load_model("ngram"), list(read_documents(corpus[:-1], allow_bytes=True, stream_bytes=1 << 20))
    )
    assert json.dumps(got.to_dict()) == json.dumps(want.to_dict())
    assert info["documents"] == len(docs) and info["duplicates"] == 0


def test_cli_score_and_jsonl_identical(local_ray: Any, corpus: list[str]) -> None:
    jsonl = corpus[-1]
    for args in (corpus[:9], ["--jsonl", "text", jsonl]):
        base = ["score", *args, "--json", "-q", "--max-length", "64", "--stride", "32"]
        same_text(local_json([*base, "--engine", "ray", "--workers", "2"]), local_json(base))


def test_compare_equals_single_process(local_ray: Any, corpus: list[str]) -> None:
    docs = corpus[:6]
    base = ["compare", *docs, "--model", "ngram:order=2", "--base", "ngram:order=4", "--json", "-q"]
    same_text(local_json([*base, "--engine", "ray", "--batch-documents", "2"]), local_json(base))
    res = compare_documents_ray("ngram:order=2", "ngram:order=4",
                                [Document("a", TEXT), Document("b", TEXT * 2)])  # fmt: skip
    assert [d["name"] for d in res.to_dict()["documents"]] == ["a", "b"]


def test_hf_model_on_ray_equals_single_process(local_ray: Any, tiny_hf_dir: Path) -> None:
    from hf_fixtures import stdlib_text

    docs = [Document(f"d{i}", stdlib_text(400 * (i + 1))[200 * i :]) for i in range(4)]
    opts = {"device": "cpu", "dtype": "float32"}
    got = score_documents_ray(f"hf:{tiny_hf_dir}", docs, model_options=opts,
                              max_length=32, stride=16, options=RayOptions(workers=2, batch_documents=1))  # fmt: skip
    want = score_documents(load_model(f"hf:{tiny_hf_dir}", **opts), docs, max_length=32, stride=16)
    assert json.dumps(got.to_dict()) == json.dumps(want.to_dict())


def test_worker_killed_mid_run_exact_and_said(local_ray: Any, corpus: list[str]) -> None:
    from ray._private import state

    docs = list(read_documents(corpus[:10], allow_bytes=True))
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            alive = [a for a in state.actors().values()
                     if a["State"] == "ALIVE" and "InfolensWorker" in a["ActorClassName"]]  # fmt: skip
            if alive:
                time.sleep(1.5)  # let it take a batch
                os.kill(alive[0]["Pid"], signal.SIGKILL)
                killed.append(alive[0]["Pid"])
                return
            time.sleep(0.2)

    t = threading.Thread(target=kill_one, daemon=True)
    t.start()
    notes: list[str] = []
    info: dict[str, Any] = {}
    got = score_documents_ray("ngram", docs, options=RayOptions(workers=2, batch_documents=1),
                              notify=notes.append, info=info, _test_delay=0.5)  # fmt: skip
    t.join()
    assert killed, "no worker was found to kill"
    want = score_documents(load_model("ngram"), list(read_documents(corpus[:10], allow_bytes=True)))
    assert json.dumps(got.to_dict()) == json.dumps(want.to_dict())
    assert info["actor_restarts"] >= 1
    assert notes and "retried" in notes[0] and "counted once" in notes[0]


def test_failing_document_named_as_single_process(local_ray: Any, tiny_hf_dir: Path, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.txt", tmp_path / "bad.bin"
    good.write_text(TEXT, encoding="utf-8")
    bad.write_bytes(b"caf\xe9 au lait")
    spec = f"hf:{tiny_hf_dir}"
    args = ["score", str(good), str(bad), "--model", spec, "--device", "cpu", "-q"]
    local = CliRunner().invoke(main, args)
    on_ray = CliRunner().invoke(main, [*args, "--engine", "ray"])
    assert local.exit_code == on_ray.exit_code == 2, (local.output, on_ray.output)
    assert "not valid UTF-8" in local.stderr or "UTF-8" in local.stderr, local.stderr
    assert local.stderr.strip().splitlines()[-1] == on_ray.stderr.strip().splitlines()[-1]
    assert "bad.bin" in on_ray.stderr


def test_tokens_shards_and_manifest(local_ray: Any, corpus: list[str], tmp_path: Path) -> None:
    files = corpus[:5]
    single = tmp_path / "single.jsonl"
    local_json(["score", *files, "--tokens", str(single), "-q", "--json"])
    shards = tmp_path / "shards"
    for _ in range(2):  # a second run into the same directory replaces, never adds
        local_json(["score", *files, "--engine", "ray", "--batch-documents", "2",
                    "--tokens", str(shards), "-q", "--json"])  # fmt: skip
        m = json.loads((shards / "manifest.json").read_text())
        assert [s["file"] for s in m["shards"]] == sorted(p.name for p in shards.glob("shard-*"))
        data = b"".join((shards / s["file"]).read_bytes() for s in m["shards"])
        assert data == single.read_bytes()
        assert sum(s["records"] for s in m["shards"]) == data.count(b"\n")
        assert [d["name"] for d in m["documents"]] == files


def test_report_from_merged_state(local_ray: Any, corpus: list[str], tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    r = CliRunner().invoke(main, ["score", *corpus[:3], "--engine", "ray", "--report", str(out), "-q"])
    assert r.exit_code == 0, r.output
    html = out.read_text(encoding="utf-8")
    assert "doc0.txt" in html and "<html" in html.lower()


def test_merge_of_single_document_results_is_the_corpus_result() -> None:
    m = load_model("ngram")
    docs = [Document(f"d{i}", (TEXT * (i + 1))[: 50 + 37 * i]) for i in range(12)]
    parts = [score_documents(m, [d]) for d in docs]
    assert json.dumps(merge_score_results(parts).to_dict()) == json.dumps(
        score_documents(m, docs).to_dict()
    )


def test_options_and_missing_ray(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text(TEXT, encoding="utf-8")
    r = CliRunner().invoke(main, ["score", str(p), "--engine", "ray", "--workers", "0"])
    assert r.exit_code == 2 and "--workers: expected >= 1, got 0" in r.stderr
    r = CliRunner().invoke(main, ["score", str(p), "--batch-documents", "4"])
    assert r.exit_code == 2 and "only with --engine ray" in r.stderr
    monkeypatch.setitem(sys.modules, "ray", None)
    r = CliRunner().invoke(main, ["score", str(p), "--engine", "ray"])
    assert r.exit_code == 2 and "pip install 'infolens[ray]'" in r.stderr
    with pytest.raises(InputError, match=r"infolens\[ray\]"):
        score_documents_ray("ngram", [Document("a", TEXT)])


def test_failing_lazy_document_fails_in_the_worker_not_retried(local_ray: Any, tiny_hf_dir: Path, tmp_path: Path) -> None:
    """A document read by the worker (a lazy file) that fails on its own: the same error as
    the single-process run, raised once (not retried forever)."""
    good, bad = tmp_path / "good.txt", tmp_path / "bad.bin"
    good.write_text(TEXT * 3, encoding="utf-8")
    bad.write_bytes(b"caf\xe9 au lait " * 4)
    spec = f"hf:{tiny_hf_dir}"

    def docs() -> list[Document]:
        d = list(read_documents([str(good), str(bad)], stream_bytes=16))
        assert all(x.lazy for x in d)
        return d

    with pytest.raises(InputError) as local:
        score_documents(load_model(spec, device="cpu"), docs())
    t = time.perf_counter()
    with pytest.raises(InputError) as on_ray:
        score_documents_ray(spec, docs(), model_options={"device": "cpu"},
                            options=RayOptions(workers=2, batch_documents=1))  # fmt: skip
    assert str(on_ray.value) == str(local.value) and "bad.bin" in str(local.value)
    assert time.perf_counter() - t < 120


def test_parquet_records_on_ray_equal_single_process(local_ray: Any, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    p = tmp_path / "docs.parquet"
    texts = [f"{TEXT} row {k} " * (1 + k % 4) for k in range(30)]
    pq.write_table(pa.table({"id": list(range(30)), "text": texts}), p, row_group_size=7)
    names = [d.name for d in read_documents([str(p)], jsonl_field="text")]
    assert names == [f"{p}:{k}" for k in range(1, 31)]
    base = ["score", str(p), "--jsonl", "text", "--json", "-q"]
    same_text(local_json([*base, "--engine", "ray", "--batch-documents", "8"]), local_json(base))
    r = CliRunner().invoke(main, ["score", str(p), "--jsonl", "id"])
    assert r.exit_code == 2 and "column 'id': expected strings" in r.stderr
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    r = CliRunner().invoke(main, ["score", str(tmp_path / "bad.parquet"), "--jsonl", "text"])
    assert r.exit_code == 2 and "not a readable Parquet file" in r.stderr


def test_a_model_that_cannot_load_is_one_line(local_ray: Any, tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text(TEXT, encoding="utf-8")
    for spec, msg in (("ngram:order=99", "ngram order: expected 0..8, got 99"),
                      (f"ngram:{tmp_path / 'missing.ilng'}", "no such file")):  # fmt: skip
        r = CliRunner().invoke(main, ["score", str(p), "--engine", "ray", "--model", spec, "-q"])
        assert r.exit_code == 2, r.output
        assert msg in r.stderr and "Traceback" not in r.output
