"""``openai:`` on a real OpenAI-compatible server: llama-cpp-python's own, started here.

The server (``python -m llama_cpp.server``) runs the tiny F32 GGUF of
:mod:`gguf_fixtures` on 127.0.0.1 on a free port, with an API key, and is stopped at the
end. The observed-token log-probs it returns must equal the ``gguf:`` adapter's on the same
file, the entropy bounds must hold the exact entropy, and what it cannot give (the first
token after BOS, token-id prompts) must be refused in one line. Nothing is mocked; the
only network is 127.0.0.1.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gguf_fixtures import need
from hf_fixtures import stdlib_text
from infolens.errors import InputError
from infolens.models import load_model
from infolens.models.base import ModelSpecError, Window
from infolens.models.openai import entropy_bounds, parse_spec
from infolens.score import Document, score_documents

need("llama_cpp", "llama-cpp-python is not installed (pip install 'infolens[gguf]')")
need("httpx", "httpx is not installed (pip install 'infolens[openai]')")

KEY = "infolens-test-key"
TEXT = stdlib_text()[:700]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_deps() -> None:
    for mod in ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings"):
        need(mod, f"llama-cpp-python's server needs {mod} (pip install 'llama-cpp-python[server]')")


def _start(model: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "256", "--type_k", "0", "--type_v", "0",
           "--n_threads", "1", "--model_alias", "tiny", *extra]  # fmt: skip
    log = model.with_name(f"server-{port}.log")
    with open(log, "wb") as out:  # a file, not a pipe: llama.cpp's log must never block it
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: {err}")
        try:
            httpx.get(url + "/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not answer within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server(tiny_gguf: Path) -> Iterator[str]:
    """URL of llama-cpp-python's server on the tiny GGUF (API key ``KEY``)."""
    _server_deps()
    proc, url = _start(tiny_gguf, "--api_key", KEY)
    yield url
    _stop(proc)


@pytest.fixture()
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOLENS_OPENAI_API_KEY", KEY)


@pytest.fixture(scope="module")
def gg(tiny_gguf: Path):  # type: ignore[no-untyped-def]
    m = load_model(f"gguf:{tiny_gguf}", n_threads=1)
    yield m
    m.close()


def _exact(gg, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """``log p(ids[j] | ids[:j])`` and the entropy at each ``j >= 1``, from ``gguf:``."""
    rows = np.concatenate(list(gg.logits([Window(ids, 1)], max_rows=512))).astype(np.float64)
    ls = rows - np.logaddexp.reduce(rows, axis=1, keepdims=True)
    return ls[np.arange(ids.shape[0] - 1), ids[1:]], -(np.exp(ls) * ls).sum(1)


@pytest.mark.usefixtures("api_key")
@pytest.mark.parametrize("tokenizer", ["gguf", "hf"])
def test_observed_log_probs_equal_gguf(server, tiny_gguf, tiny_llama_dir, gg, tokenizer) -> None:  # type: ignore[no-untyped-def]
    spec = str(tiny_gguf) if tokenizer == "gguf" else f"hf:{tiny_llama_dir}"
    m = load_model(f"openai:{server}#tiny,tokenizer={spec},logprobs=5,concurrency=2")
    assert (m.vocab_size, m.bos_id) == (gg.vocab_size, gg.bos_id)
    ids = np.concatenate([[gg.bos_id], gg.tokenize(TEXT).ids[:200]])
    res = m.prompt_logprobs(ids)
    lp, ent = _exact(gg, ids)
    assert np.isnan(res.logprob[:2]).all()  # BOS, and the token after it: the server nulls it
    np.testing.assert_allclose(res.logprob[2:], lp[1:], rtol=1e-5, atol=1e-5)
    assert np.all(res.entropy_lower[2:] <= ent[1:] + 1e-6)
    assert np.all(ent[1:] <= res.entropy_upper[2:] + 1e-6)
    assert np.all(res.entropy_lower[2:] < res.entropy_upper[2:])
    assert m._ids_refused  # llama-cpp-python takes text prompts only: fell back on text


@pytest.mark.usefixtures("api_key")
def test_rows_for_scoring_exact_surprisal_upper_bound_entropy(server, tiny_gguf, gg) -> None:  # type: ignore[no-untyped-def]
    m = load_model(
        f"openai:{server}#tiny", tokenizer=f"gguf:{tiny_gguf}", logprobs=8, concurrency=3
    )
    ids = gg.tokenize(TEXT).ids
    windows = [Window(np.concatenate([[gg.bos_id], ids[a : a + 60]]), 2) for a in (0, 0, 0)]
    chunks = list(m.logits(windows, max_rows=16))
    assert all(c.shape[0] <= 16 and c.shape[1] == m.vocab_size for c in chunks)
    rows = np.concatenate(chunks)
    assert rows.shape[0] == 3 * 59
    lp, ent = _exact(gg, windows[0].ids)
    got = rows[np.arange(rows.shape[0]), np.tile(windows[0].ids[2:], 3)]
    np.testing.assert_allclose(got, np.tile(lp[1:], 3), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.exp(rows).sum(1), 1.0, atol=1e-6)  # proper distributions
    h_rows = -(np.exp(rows) * np.where(rows > -np.inf, rows, 0)).sum(1)
    assert np.all(h_rows + 1e-6 >= np.tile(ent[1:], 3))  # the uniform tail: an upper bound
    assert m.exact_distribution is False


@pytest.mark.usefixtures("api_key")
def test_what_the_server_cannot_give_is_refused_in_one_line(server, tiny_gguf) -> None:  # type: ignore[no-untyped-def]
    m = load_model(f"openai:{server}#tiny,tokenizer={tiny_gguf}")
    with pytest.raises(InputError, match="no log-prob for token 1 of a window") as e:
        score_documents(m, [Document("d", TEXT)], max_length=128, bos="first")
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="text prompts only"):
        score_documents(m, [Document("d", TEXT)], max_length=128, bos="none")
    ids_only = load_model(f"openai:{server}#tiny,tokenizer={tiny_gguf},prompt=ids,retries=0")
    with pytest.raises(InputError, match="refused the request: HTTP 500"):
        ids_only.prompt_logprobs(np.array([1, 400, 401]))
    other = load_model(f"openai:{server}#tiny,tokenizer={tiny_gguf}")
    with pytest.raises(InputError, match=r"tokenised the prompt into|the server's token"):
        # "Hello" without its dummy-prefix token: its text re-tokenises with one
        other.prompt_logprobs(np.concatenate([[1], m.tokenize("Hello world").ids[1:]]))


def test_api_key_is_sent_from_the_environment(server, tiny_gguf, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for var in ("INFOLENS_OPENAI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    m = load_model(f"openai:{server}#tiny,tokenizer={tiny_gguf},retries=0")
    with pytest.raises(InputError, match="HTTP 401"):
        m.prompt_logprobs(np.array([1, 400, 401]))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    m = load_model(f"openai:{server}#tiny,tokenizer={tiny_gguf},retries=0")
    assert m.prompt_logprobs(np.array([1, 422, 395, 291])).logprob.shape == (4,)


def test_server_without_log_probs_is_refused(tiny_gguf) -> None:  # type: ignore[no-untyped-def]
    _server_deps()
    proc, url = _start(tiny_gguf, "--logits_all", "False")
    try:
        m = load_model(f"openai:{url}#tiny,tokenizer={tiny_gguf},retries=1")
        with pytest.raises(
            InputError, match=r"refused the request: HTTP 500.*logprobs is not supported"
        ):
            m.prompt_logprobs(np.array([1, 422, 395, 291]))
    finally:
        _stop(proc)


def test_llama_server_answer_without_prompt_log_probs_is_detected(tiny_gguf) -> None:  # type: ignore[no-untyped-def]
    """The shape llama.cpp's llama-server gives to echo + logprobs: only the generated
    token's entry (the bug that put lm-eval scores at chance), parsed as the server sent it."""
    m = load_model(f"openai:http://127.0.0.1:9/v1#x,tokenizer={tiny_gguf}")
    answer = {"choices": [{"text": "x", "logprobs": {"tokens": ["x"], "token_logprobs": [-1.5],
                                                     "top_logprobs": [{"x": -1.5}]}}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 1}}  # fmt: skip
    with pytest.raises(InputError, match="does not echo prompt log-probs"):
        m._parse(np.array([1, 422, 395, 291, 300]), answer)
    with pytest.raises(InputError, match="returned no log-probs"):
        m._parse(np.array([1, 422]), {"choices": [{"text": "", "logprobs": None}]})


def test_no_server_is_one_line_after_retries(tiny_gguf) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{_free_port()}/v1"
    m = load_model(f"openai:{url}#x,tokenizer={tiny_gguf},retries=1,timeout=2")
    t = time.monotonic()
    with pytest.raises(InputError, match=r"no answer from .* after 2 attempt\(s\): ConnectError"):
        m.prompt_logprobs(np.array([1, 422, 395]))
    assert time.monotonic() - t < 10


def test_spec_and_options_errors(tiny_gguf) -> None:  # type: ignore[no-untyped-def]
    assert parse_spec("http://h:1/v1/#m,logprobs=3") == ("http://h:1/v1", "m", {"logprobs": 3})
    with pytest.raises(ModelSpecError, match="expected 'openai:URL#MODEL"):
        load_model("openai:http://127.0.0.1:1/v1")
    with pytest.raises(ModelSpecError, match="expected http:// or https://"):
        load_model("openai:ftp://x#m,tokenizer=t.gguf")
    with pytest.raises(ModelSpecError, match="expected a tokenizer=SPEC"):
        load_model("openai:http://127.0.0.1:1/v1#m")
    with pytest.raises(ModelSpecError, match="logprobs: expected a int, got 'many'"):
        load_model("openai:http://127.0.0.1:1/v1#m,logprobs=many")
    with pytest.raises(ModelSpecError, match="got 'colour=red'"):
        load_model("openai:http://127.0.0.1:1/v1#m,colour=red")
    with pytest.raises(InputError, match="concurrency: expected an integer >= 1, got 0"):
        load_model(f"openai:http://127.0.0.1:1/v1#m,tokenizer={tiny_gguf},concurrency=0")
    assert entropy_bounds([0.0], 10) == (0.0, 0.0)


@pytest.mark.usefixtures("api_key")
def test_compare_refuses_top_k_rows_as_the_model(server, tiny_gguf) -> None:  # type: ignore[no-untyped-def]
    from infolens.compare import compare_documents

    m = load_model(f"openai:{server}#tiny,tokenizer={tiny_gguf}")
    g = load_model(f"gguf:{tiny_gguf}")
    with pytest.raises(InputError, match="neither exact nor a bound; compare it as --base"):
        compare_documents(m, g, [Document("d", TEXT)])
    with pytest.raises(InputError, match="no log-prob for token 1"):  # as the base: bounds
        compare_documents(g, m, [Document("d", TEXT)], max_length=128)  # (this server nulls it)
    g.close()


@pytest.mark.usefixtures("api_key")
def test_server_as_base_gives_kl_lower_bounds(server, tiny_gguf, tiny_gguf_q8) -> None:  # type: ignore[no-untyped-def]
    """The F32 model behind the server as the base, its Q8_0 copy as the model: KL on
    {the server's known tokens, rest} from the server's records is at most the exact KL
    (both models run locally), and not far below it."""
    from infolens.basefile import coarse_token_stats
    from infolens.compare import token_stats

    m = load_model(f"openai:{server}#tiny,tokenizer={tiny_gguf},logprobs=10")
    f32 = load_model(f"gguf:{tiny_gguf}")
    q8 = load_model(f"gguf:{tiny_gguf_q8}")
    ids = f32.tokenize(TEXT).ids[:150]
    w = [Window(np.concatenate([[f32.bos_id], ids]), 2)]
    rec = np.concatenate(list(m.records(w, max_rows=32)))
    assert rec.shape == (149,) and rec.dtype["ids"].shape == (11,)
    q_rows = np.concatenate(list(q8.logits(w, max_rows=512)))
    p_rows = np.concatenate(list(f32.logits(w, max_rows=512)))
    bound = coarse_token_stats(rec, q_rows)
    exact = token_stats(p_rows, q_rows, w[0].targets)
    np.testing.assert_allclose(bound["nll_base"], exact["nll_base"], rtol=1e-5, atol=1e-5)
    for key in ("kl_base_model", "kl_model_base"):
        assert np.all(bound[key] <= exact[key] + 1e-6)
        assert bound[key].sum() > 0.2 * exact[key].sum()
    assert np.isnan(rec["entropy"]).all()
    f32.close()
    q8.close()


def test_vllm_prompt_logprobs_are_read_by_token_id(tiny_gguf) -> None:  # type: ignore[no-untyped-def]
    """The shape vLLM documents for ``prompt_logprobs`` (no vLLM on the test machines: the
    answer is parsed as such a server sends it): ids, not texts, place the alternatives."""
    m = load_model(f"openai:http://127.0.0.1:9/v1#x,tokenizer={tiny_gguf},prompt_logprobs=2")
    ids = np.array([1, 422, 395])
    entries = [
        None,
        {"422": {"logprob": -0.5, "rank": 1, "decoded_token": " "},
         "7": {"logprob": -1.5, "rank": 2, "decoded_token": "x"}},
        {"9": {"logprob": -0.1, "rank": 1, "decoded_token": "y"},
         "395": {"logprob": -3.0, "rank": 5, "decoded_token": "z"}},
    ]  # fmt: skip
    res = m._parse(ids, {"choices": [{"text": "", "prompt_logprobs": entries}]})
    np.testing.assert_allclose(res.logprob[1:], [-0.5, -3.0])
    assert np.isnan(res.logprob[0]) and res.known[2] == {9: -0.1, 395: -3.0}
    rows = np.concatenate(list(_rows(m, res, ids)))
    assert rows[0, 7] == -1.5 and rows[1, 9] == -0.1 and rows[1, 395] == -3.0
    np.testing.assert_allclose(np.exp(rows).sum(1), 1.0)
    with pytest.raises(InputError, match="lacks the prompt's token 395"):
        m._parse(
            ids, {"choices": [{"prompt_logprobs": [None, entries[1], {"9": {"logprob": -1}}]}]}
        )
    with pytest.raises(InputError, match="has 2 entries for a 3-token prompt"):
        m._parse(ids, {"choices": [{"prompt_logprobs": entries[:2]}]})


def _rows(m, res, ids):  # type: ignore[no-untyped-def]
    for j in range(1, ids.shape[0]):
        yield m._row(int(ids[j]), float(res.logprob[j]), res.known[j])[None]
