r"""OpenAI-compatible completion servers (``openai:URL#MODEL``), scored from prompt log-probs.

The adapter asks ``POST {URL}/completions`` for each window with ``echo: true``,
``logprobs: K``, ``max_tokens: 1`` and ``temperature: 0`` (what lm-evaluation-harness
sends; the one generated token is ignored), the prompt being the window's token ids, or
its text for a server that accepts only text (llama-cpp-python's). What comes back is, for
every prompt token after the first, the log-probability of the token that was there
(``token_logprobs``) and the server's ``K`` most probable alternatives
(``top_logprobs``, keyed by token text); with ``prompt_logprobs=K`` a vLLM server's
``prompt_logprobs`` (keyed by token id) are read instead. So:

* **surprisal is exact** for every observed token (the server's own number);
* **entropy is not known**, only bounds: with ``P`` the probability of the known tokens
  (the top ``K`` and the observed one) and ``T = 1 - P`` the tail,
  ``H_low = -sum p log p - T log T`` (the tail as one outcome: merging outcomes never
  raises entropy, the data-processing inequality) and
  ``H_up = H_low + T log(V - k)`` (the tail spread evenly over the ``V - k`` other
  tokens, the most entropy it can have), in nats;
* the rows given to infolens's scoring (:meth:`OpenAIModel.logits`) are that second
  distribution (known tokens exact, the tail uniform), so ``infolens score`` gives the
  exact NLL, perplexity and bits per byte, and ``H_up`` as its entropy, labelled an upper
  bound (:attr:`OpenAIModel.exact_distribution` is ``False``);
* KL: ``infolens compare`` takes such a model only as the base, its answers as records
  like a saved top-k base file's (:meth:`OpenAIModel.records`), so KL and JS are computed
  on {known tokens, rest}: lower bounds (data-processing inequality).
  :meth:`OpenAIModel.prompt_logprobs` gives the per-token numbers with both bounds.

Tokenisation is local: ``tokenizer=SPEC`` names an infolens model whose tokeniser is the
server's (``gguf:FILE`` is read with ``vocab_only``; ``hf:PATH_OR_ID`` loads its
tokeniser and config only, offline, :func:`hf_tokenizer`); its ``vocab_size`` is ``V``. The adapter checks that the server echoed as many prompt tokens
as the window has (with or without the BOS token, which llama-cpp-python's server
strips), and refuses, in one line, a server that returns no prompt log-probs (llama.cpp's
``llama-server`` returns only the generated token's), a different tokenisation, or a null
log-prob where a prediction is needed (llama-cpp-python's server nulls the first token
after BOS: see ``docs/openai.md``).

Networking: ``httpx`` with a timeout per request, retries with exponential backoff on
connection errors and HTTP 408, 409, 425, 429, 500, 502, 503 and 504, and at most ``concurrency`` requests in flight. The
API key comes from ``$INFOLENS_OPENAI_API_KEY``, else ``$OPENAI_API_KEY`` (sent as
``Authorization: Bearer``; none is sent when both are unset).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from infolens.errors import InputError
from infolens.models.base import ModelSpecError, Tokenized, Window, check_windows

#: Environment variables read for the API key, in order.
API_KEY_VARS = ("INFOLENS_OPENAI_API_KEY", "OPENAI_API_KEY")
#: Keys accepted after ``#MODEL`` in an ``openai:`` spec, with their types.
SPEC_KEYS: dict[str, type] = {
    "tokenizer": str,
    "logprobs": int,
    "concurrency": int,
    "timeout": float,
    "retries": int,
    "n_ctx": int,
    "prompt": str,
    "prompt_logprobs": int,
}
#: How the prompt is sent: ``auto`` (token ids, else text when the server refuses ids),
#: ``ids`` or ``text``.
PROMPT_MODES = ("auto", "ids", "text")
#: HTTP statuses that are retried.
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass
class PromptLogprobs:
    """Per-token numbers of one prompt, as the server gave them (nats).

    Attributes
    ----------
    ids : numpy.ndarray
        The prompt's token ids (``int64 [n]``).
    logprob : numpy.ndarray
        ``log p(ids[j] | ids[:j])`` (float64 ``[n]``); ``nan`` where the server gave none
        (always the first token).
    entropy_lower, entropy_upper : numpy.ndarray
        Bounds on the entropy of each predicted distribution (float64 ``[n]``, ``nan``
        where no log-prob came): the tail as one outcome, and the tail spread evenly.
    known : list of dict
        The server's alternatives at each position, ``{token text: log-prob}`` (the
        observed token included), or ``{token id: log-prob}`` from vLLM's
        ``prompt_logprobs``; ``{}`` where none came.
    """

    ids: np.ndarray
    logprob: np.ndarray
    entropy_lower: np.ndarray
    entropy_upper: np.ndarray
    known: list[dict[Any, float]]


def entropy_bounds(logprobs: Sequence[float], vocab_size: int) -> tuple[float, float]:
    """Bounds on an entropy (nats) from the log-probs of some distinct outcomes.

    Parameters
    ----------
    logprobs : sequence of float
        Natural-log probabilities of ``k`` distinct outcomes (e.g. a server's top ``K`` and
        the observed token).
    vocab_size : int
        Number of outcomes ``V`` (``>= k``).

    Returns
    -------
    (float, float)
        ``(H_low, H_up)``: the tail ``T = 1 - sum p`` taken as one outcome, and spread
        evenly over the ``V - k`` others.

    Examples
    --------
    >>> lo, hi = entropy_bounds([math.log(0.5), math.log(0.25)], 4)
    >>> uniform_tail = [0.5, 0.25, 0.125, 0.125]
    >>> round(lo, 4), round(hi, 4), round(-sum(p * math.log(p) for p in uniform_tail), 4)
    (1.0397, 1.213, 1.213)
    """
    p = np.exp(np.asarray(logprobs, dtype=np.float64))
    known = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    tail = max(0.0, 1.0 - float(p.sum()))
    if tail <= 1e-12:
        return known, known
    low = known - tail * math.log(tail)
    rest = int(vocab_size) - int(p.shape[0])
    high = low + tail * math.log(rest) if rest >= 1 else low
    return low, high


def parse_spec(rest: str) -> tuple[str, str, dict[str, Any]]:
    """Split the part of an ``openai:`` spec after ``openai:`` into URL, model and options.

    Examples
    --------
    >>> parse_spec("http://127.0.0.1:8000/v1#tiny,tokenizer=m.gguf,logprobs=5")
    ('http://127.0.0.1:8000/v1', 'tiny', {'tokenizer': 'm.gguf', 'logprobs': 5})
    """
    url, hash_, tail = rest.partition("#")
    if not hash_ or not url or not tail:
        raise ModelSpecError(
            f"--model openai:{rest}: expected 'openai:URL#MODEL[,key=value...]', e.g. "
            f"'openai:http://127.0.0.1:8000/v1#my-model,tokenizer=model.gguf'"
        )
    if not url.startswith(("http://", "https://")):
        raise ModelSpecError(
            f"--model openai:{rest}: URL: expected http:// or https://, got {url!r}"
        )
    model, *parts = tail.split(",")
    options: dict[str, Any] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or key not in SPEC_KEYS:
            raise ModelSpecError(
                f"--model openai:{rest}: expected key=value with a key among "
                f"{', '.join(SPEC_KEYS)}, got {part!r}"
            )
        if key in options:
            raise ModelSpecError(f"--model openai:{rest}: the key {key!r} is given twice")
        try:
            options[key] = SPEC_KEYS[key](value)
        except ValueError:
            raise ModelSpecError(
                f"--model openai:{rest}: {key}: expected a {SPEC_KEYS[key].__name__}, got {value!r}"
            ) from None
    return url.rstrip("/"), model, options


class OpenAIModel:
    """An OpenAI-compatible completion server as a
    :class:`~infolens.models.base.LanguageModel` (see the module docstring).

    Parameters
    ----------
    url : str
        Base URL of the API, e.g. ``http://127.0.0.1:8000/v1`` (``/completions`` is added).
    model : str
        The ``model`` field of each request.
    tokenizer : LanguageModel
        An adapter whose tokeniser is the server's (its ``tokenize``, ``bos_id``,
        ``vocab_size``, ``decode`` and ``decode_token`` are used).
    logprobs : int
        ``K``, alternatives asked per position (vLLM caps it at ``--max-logprobs``, 20 by
        default; OpenAI's legacy API at 5).
    concurrency : int
        Requests in flight at once.
    timeout : float
        Seconds per request (connect, read and write each).
    retries : int
        Further attempts after a failed one (backoff 0.5 s, 1 s, 2 s, ...).
    n_ctx : int, optional
        The server's context, ``max_context`` (default: the tokenizer's).
    prompt : {"auto", "ids", "text"}
        Send token ids, or the window's text (decoded by ``tokenizer``); ``auto`` tries ids
        and falls back on text for good when the server refuses them.
    prompt_logprobs : int
        Also ask for vLLM's ``prompt_logprobs`` (``K`` alternatives by token id, read
        instead of ``echo``'s by text when the answer has them); 0: not asked.
    """

    predicts_first = False
    byte_level = False
    #: Rows are the top-K plus a uniform tail, not the model's distribution: surprisal is
    #: exact, entropy from them an upper bound, KL meaningless.
    exact_distribution = False
    #: What the entropy of :meth:`logits` rows is.
    entropy_kind = "upper bound (top-K log-probs + tail spread evenly)"

    def __init__(
        self,
        url: str,
        model: str,
        tokenizer: Any,
        *,
        logprobs: int = 5,
        concurrency: int = 4,
        timeout: float = 60.0,
        retries: int = 3,
        n_ctx: int | None = None,
        prompt: str = "auto",
        prompt_logprobs: int = 0,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise InputError(
                f"openai: needs httpx (pip install 'infolens[openai]'): {exc}"
            ) from None
        for key, value, lo in (("logprobs", logprobs, 1), ("concurrency", concurrency, 1),
                               ("retries", retries, 0), ("prompt_logprobs", prompt_logprobs, 0)):  # fmt: skip
            if not isinstance(value, int) or value < lo:
                raise InputError(f"openai: {key}: expected an integer >= {lo}, got {value!r}")
        if not timeout > 0:
            raise InputError(f"openai: timeout: expected seconds > 0, got {timeout!r}")
        if prompt not in PROMPT_MODES:
            raise InputError(
                f"openai: prompt: expected one of {', '.join(PROMPT_MODES)}, got {prompt!r}"
            )
        self.url = url.rstrip("/")
        self.model = model
        self.name = f"openai:{self.url}#{model}"
        self.tokenizer = tokenizer
        self.vocab_size = int(tokenizer.vocab_size)
        self.bos_id = tokenizer.bos_id
        self.max_context = int(n_ctx) if n_ctx is not None else tokenizer.max_context
        self.k = int(logprobs)
        self.concurrency = int(concurrency)
        self.retries = int(retries)
        self.prompt_mode = prompt
        self.prompt_logprobs_k = int(prompt_logprobs)
        headers = {"Content-Type": "application/json"}
        api_key = next((os.environ[v] for v in API_KEY_VARS if os.environ.get(v)), None)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._httpx = httpx
        self._client = httpx.Client(
            timeout=httpx.Timeout(float(timeout)),
            headers=headers,
            limits=httpx.Limits(max_connections=self.concurrency),
        )
        self._ids_refused = prompt == "text"
        self._index: dict[str, int] | None = None

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> OpenAIModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ tokens

    def tokenize(self, text: str | bytes) -> Tokenized:
        """The ``tokenizer`` adapter's tokenisation (ids and byte spans)."""
        return self.tokenizer.tokenize(text)  # type: ignore[no-any-return]

    def decode_token(self, token_id: int) -> str:
        """Text of one token (the tokenizer's)."""
        return str(self.tokenizer.decode_token(int(token_id)))

    def decode(self, ids: Any) -> str:
        """Text of token ids (the tokenizer's)."""
        return str(self.tokenizer.decode(ids))

    @property
    def eos_id(self) -> int | None:
        return getattr(self.tokenizer, "eos_id", None)

    def _token_index(self) -> dict[str, int]:
        """Token text -> id, for the texts that name one token only (to place the
        server's alternatives in a row)."""
        if self._index is None:
            seen: dict[str, int] = {}
            dup: set[str] = set()
            for t in range(self.vocab_size):
                s = self.decode_token(t)
                if s in seen:
                    dup.add(s)
                else:
                    seen[s] = t
            self._index = {s: t for s, t in seen.items() if s not in dup and s}
        return self._index

    # ------------------------------------------------------------------ requests

    def _post(self, body: dict[str, Any], retry_http: bool = True) -> Any:
        """One completion request with retries (of HTTP failures too unless
        ``retry_http`` is false); the parsed JSON, or a one-line error."""
        httpx = self._httpx
        url = self.url + "/completions"
        delay = 0.5
        retries = self.retries
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                r = self._client.post(url, json=body)
            except httpx.TransportError as exc:
                if last:
                    raise InputError(
                        f"{self.name}: no answer from {url} after {attempt + 1} attempt(s): "
                        f"{type(exc).__name__}: {exc}"
                    ) from None
            else:
                if r.status_code == 200:
                    try:
                        return r.json()
                    except ValueError:
                        raise InputError(
                            f"{self.name}: {url} answered 200 with a body that is not JSON"
                        ) from None
                if r.status_code not in RETRY_STATUS or last or not retry_http:
                    raise _HTTPRefused(r.status_code, r.text[:300].replace("\n", " "))
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _request(self, ids: np.ndarray) -> dict[str, Any]:
        """Ask for the prompt log-probs of ``ids`` (a window), ids first, then text."""
        body: dict[str, Any] = {"model": self.model, "echo": True, "logprobs": self.k,
                                "max_tokens": 1, "temperature": 0}  # fmt: skip
        if self.prompt_logprobs_k:
            body["prompt_logprobs"] = self.prompt_logprobs_k
        if not self._ids_refused:
            try:
                return self._post(
                    {**body, "prompt": [int(i) for i in ids]},
                    retry_http=self.prompt_mode == "ids",
                )
            except _HTTPRefused as exc:
                # llama-cpp-python answers a token-id prompt with 500 "... prompt ... valid string"
                refused = exc.status in (400, 422) or (exc.status == 500 and "prompt" in str(exc))
                if self.prompt_mode == "ids" or not refused:
                    raise InputError(
                        f"{self.name}: the server refused the request: {exc}"
                    ) from None
                self._ids_refused = True  # a text-only server: for good
        if not (self.bos_id is not None and ids.shape[0] and int(ids[0]) == self.bos_id):
            raise InputError(
                f"{self.name}: the server takes text prompts only and puts its own BOS token "
                f"first, so a window without BOS cannot be sent (score with --bos every, or "
                f"a --max-length that holds each document)"
            )
        try:
            return self._post({**body, "prompt": self.decode(ids[1:])})  # type: ignore[no-any-return]
        except _HTTPRefused as exc:
            raise InputError(f"{self.name}: the server refused the request: {exc}") from None

    def prompt_logprobs(self, ids: np.ndarray) -> PromptLogprobs:
        """The server's log-probs for the prompt ``ids`` (a window: BOS first if any).

        Raises
        ------
        infolens.errors.InputError
            The server returned no prompt log-probs, or echoed a different number of
            prompt tokens than ``ids`` has.
        """
        ids = np.asarray(ids, dtype=np.int64)
        data = self._request(ids)
        return self._parse(ids, data)

    def _parse(self, ids: np.ndarray, data: Any) -> PromptLogprobs:
        n = int(ids.shape[0])
        try:
            choice = data["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise InputError(
                f"{self.name}: the answer has no choices[0]: {str(data)[:200]}"
            ) from None
        vllm = choice.get("prompt_logprobs") if isinstance(choice, dict) else None
        if isinstance(vllm, list):
            return self._parse_prompt_logprobs(ids, vllm)
        lp = choice.get("logprobs") if isinstance(choice, dict) else None
        if not isinstance(lp, dict) or not isinstance(lp.get("token_logprobs"), list):
            raise InputError(
                f"{self.name}: the server returned no log-probs (expected choices[0].logprobs"
                f".token_logprobs with echo and logprobs; got {str(lp)[:120]})"
            )
        values: list[Any] = lp["token_logprobs"]
        tops: list[Any] = lp.get("top_logprobs") or [None] * len(values)
        usage = data.get("usage") if isinstance(data, dict) else None
        generated = usage.get("completion_tokens") if isinstance(usage, dict) else None
        echoed = len(values) - (generated if isinstance(generated, int) else 1)
        has_bos = self.bos_id is not None and n > 0 and int(ids[0]) == self.bos_id
        counted = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if isinstance(counted, int) and counted != n and echoed > 1:
            raise InputError(
                f"{self.name}: the server tokenised the prompt into {counted} token(s), infolens "
                f"into {n}{' (BOS included)' if has_bos else ''}: the tokenizer is not the "
                f"server's, or the window's text re-tokenises differently (send token ids)"
            )
        if echoed == n:
            skip = 0
        elif echoed == n - 1 and has_bos:
            skip = 1  # the server strips BOS from what it echoes (llama-cpp-python)
        elif echoed <= 0 or (echoed < n - 1 and len(values) <= 2):
            raise InputError(
                f"{self.name}: the server returned log-probs for {len(values)} token(s) of a "
                f"{n}-token prompt: it does not echo prompt log-probs (llama.cpp's "
                f"llama-server returns only the generated token's); use a server that does "
                f"(vLLM, llama-cpp-python)"
            )
        else:
            raise InputError(
                f"{self.name}: the server tokenised the prompt into {echoed} token(s), infolens "
                f"into {n}{' (BOS included)' if has_bos else ''}: the tokenizer is not the "
                f"server's, or the window's text re-tokenises differently (send token ids)"
            )
        self._check_tokens(ids, lp.get("tokens"), skip)
        logprob = np.full(n, np.nan)
        low = np.full(n, np.nan)
        high = np.full(n, np.nan)
        known: list[dict[Any, float]] = [{} for _ in range(n)]
        for j in range(skip, n):
            v = values[j - skip]
            if v is None:
                continue
            logprob[j] = float(v)
            top = tops[j - skip] if j - skip < len(tops) else None
            alts = {str(s): float(x) for s, x in (top or {}).items() if x is not None}
            known[j] = alts
            vals = list(alts.values())
            if not any(abs(x - logprob[j]) <= 1e-6 * max(1.0, abs(x)) for x in vals):
                vals.append(logprob[j])  # the observed token, when the server left it out
            low[j], high[j] = entropy_bounds(vals, self.vocab_size)
        return PromptLogprobs(ids, logprob, low, high, known)

    def _parse_prompt_logprobs(self, ids: np.ndarray, entries: list[Any]) -> PromptLogprobs:
        """vLLM's ``prompt_logprobs``: one entry per prompt token (``None`` for the first),
        ``{token id: {"logprob": x, ...}}`` holding the prompt token and the top ``K``."""
        n = int(ids.shape[0])
        if len(entries) != n:
            raise InputError(
                f"{self.name}: the server's prompt_logprobs has {len(entries)} entries for a "
                f"{n}-token prompt: the tokenizer is not the server's"
            )
        logprob = np.full(n, np.nan)
        low = np.full(n, np.nan)
        high = np.full(n, np.nan)
        known: list[dict[Any, float]] = [{} for _ in range(n)]
        for j, entry in enumerate(entries):
            if entry is None:
                continue
            try:
                alts = {
                    int(t): float(v["logprob"] if isinstance(v, dict) else v)
                    for t, v in entry.items()
                }
            except (AttributeError, KeyError, TypeError, ValueError):
                raise InputError(
                    f"{self.name}: prompt_logprobs[{j}]: expected {{token id: {{'logprob': x}}}}, "
                    f"got {str(entry)[:80]}"
                ) from None
            if int(ids[j]) not in alts:
                raise InputError(
                    f"{self.name}: prompt_logprobs[{j}] lacks the prompt's token {int(ids[j])}: "
                    f"the tokenizer is not the server's"
                )
            logprob[j] = alts[int(ids[j])]
            known[j] = alts
            low[j], high[j] = entropy_bounds(list(alts.values()), self.vocab_size)
        return PromptLogprobs(ids, logprob, low, high, known)

    def _check_tokens(self, ids: np.ndarray, echoed: Any, skip: int) -> None:
        """The server's token texts against ours, token by token (spaces and the
        ``\u2581`` marker ignored; a text with a partial UTF-8 character matches any)."""
        if not isinstance(echoed, list):
            return

        def norm(s: str) -> str | None:
            s = s.replace("\u2581", " ").strip()
            return None if not s or "\ufffd" in s else s

        for j in range(skip, int(ids.shape[0])):
            if j - skip >= len(echoed) or not isinstance(echoed[j - skip], str):
                return
            a, b = norm(echoed[j - skip]), norm(self.decode_token(int(ids[j])))
            if a is not None and b is not None and a != b:
                raise InputError(
                    f"{self.name}: the server's token {j - skip} is {echoed[j - skip]!r}, "
                    f"infolens's {self.decode_token(int(ids[j]))!r}: the tokenizer is not the "
                    f"server's, or the window's text re-tokenises differently"
                )

    # ------------------------------------------------------------------ rows

    def _placed(self, target: int, lp: float, alts: dict[Any, float]) -> dict[int, float]:
        """The known log-probs by token id: the observed token's, and each alternative
        whose id is given or whose text names one token of the tokeniser."""
        placed = {int(target): lp}
        for key, x in alts.items():
            t = key if isinstance(key, int) else self._token_index().get(key)
            if t is not None and 0 <= t < self.vocab_size and t not in placed:
                placed[t] = x
        return placed

    def _row(self, target: int, lp: float, alts: dict[Any, float]) -> np.ndarray:
        """A distribution over ``V``: the known tokens (:meth:`_placed`) at their values,
        the rest of the mass spread evenly."""
        placed = self._placed(target, lp, alts)
        row = np.empty(self.vocab_size, np.float64)
        ids = np.fromiter(placed.keys(), np.int64, len(placed))
        vals = np.fromiter(placed.values(), np.float64, len(placed))
        tail = 1.0 - float(np.exp(vals).sum())
        rest = self.vocab_size - len(placed)
        row.fill(math.log(tail / rest) if tail > 1e-12 and rest > 0 else -np.inf)
        row[ids] = vals
        return row

    def _window_results(self, windows: Sequence[Window]) -> Iterator[tuple[Window, PromptLogprobs]]:
        """Each window with the server's answer (``concurrency`` requests in flight, in
        window order), checked to have a log-prob at every position to be predicted."""
        check_windows(self, windows)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for w, res in zip(windows, pool.map(lambda w: self.prompt_logprobs(w.ids), windows)):
                missing = np.flatnonzero(np.isnan(res.logprob[w.start :]))
                if missing.size:
                    j = int(w.start + missing[0])
                    raise InputError(
                        f"{self.name}: the server returned no log-prob for token {j} of a "
                        f"window (a null token_logprobs entry); llama-cpp-python's server "
                        f"nulls the first token after BOS, so the first token of a document "
                        f"cannot be scored with it (docs/openai.md)"
                    )
                yield w, res

    def logits(self, windows: Sequence[Window], *, max_rows: int) -> Iterator[np.ndarray]:
        """Rows of log-probabilities for the predicted positions of ``windows``: the
        observed token exact, the server's other top-K at their values, the tail spread
        evenly (float64, ``<= max_rows`` rows each).

        Raises
        ------
        infolens.errors.InputError
            A position to be predicted got no log-prob from the server, or see
            :meth:`prompt_logprobs`.
        """
        if max_rows < 1:
            raise ValueError(f"max_rows: expected >= 1, got {max_rows}")
        for w, res in self._window_results(windows):
            n = w.n_predictions
            for r0 in range(0, n, max_rows):
                r1 = min(n, r0 + max_rows)
                yield np.stack([
                    self._row(int(w.ids[j]), float(res.logprob[j]), res.known[j])
                    for j in range(w.start + r0, w.start + r1)
                ])  # fmt: skip

    @property
    def record_k(self) -> int:
        """Entries per base record (:meth:`records`): the top ``K`` and the observed token."""
        return self.k + 1

    def records(self, windows: Sequence[Window], *, max_rows: int) -> Iterator[np.ndarray]:
        """The server's answers as base-file records (:func:`infolens.basefile.record_dtype`
        of :attr:`record_k`), for ``infolens compare --base openai:...``: the known tokens
        (by id) most likely first, padded with id ``-1``; the tail's log-mass; the observed
        token's exact log-prob; ``entropy`` NaN (only bounds are known). KL and JS on
        {known, rest} are lower bounds of the true values (data-processing inequality)."""
        from infolens.basefile import record_dtype

        if max_rows < 1:
            raise ValueError(f"max_rows: expected >= 1, got {max_rows}")
        k = self.record_k
        dt = record_dtype(k)
        for w, res in self._window_results(windows):
            n = w.n_predictions
            for r0 in range(0, n, max_rows):
                r1 = min(n, r0 + max_rows)
                rec = np.zeros(r1 - r0, dtype=dt)
                rec["ids"] = -1
                rec["logp"] = -np.inf
                for i, j in enumerate(range(w.start + r0, w.start + r1)):
                    target = int(w.ids[j])
                    placed = self._placed(target, float(res.logprob[j]), res.known[j])
                    top = sorted(placed.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
                    rec["ids"][i, : len(top)] = [t for t, _ in top]
                    rec["logp"][i, : len(top)] = [x for _, x in top]
                    tail = 1.0 - float(np.exp(np.fromiter((x for _, x in top), np.float64)).sum())
                    rec["log_tail"][i] = math.log(tail) if tail > 1e-12 else -np.inf
                    rec["target"][i] = target
                    rec["target_logp"][i] = min(float(res.logprob[j]), 0.0)
                rec["entropy"] = np.nan
                yield rec


class _HTTPRefused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status


def load_openai(rest: str, **options: Any) -> OpenAIModel:
    """Resolve the part of an ``openai:`` spec after ``openai:``.

    Parameters
    ----------
    rest : str
        ``URL#MODEL[,key=value...]`` with keys from :data:`SPEC_KEYS`: ``tokenizer`` (an
        infolens model spec, or a ``.gguf`` path; required), ``logprobs``,
        ``concurrency``, ``timeout``, ``retries``, ``n_ctx``, ``prompt``.
    **options
        The same keys as keyword arguments; ``tokenizer`` may also be an adapter object.

    Raises
    ------
    ModelSpecError
        A malformed spec, an unknown or repeated key, or no tokenizer.
    InputError
        httpx missing, or a bad option value.
    """
    url, model, spec_opts = parse_spec(rest)
    given = {k: v for k, v in options.items() if v is not None}
    for k in given:
        if k not in SPEC_KEYS:
            raise ModelSpecError(
                f"--model openai:{rest}: unknown option {k!r} (expected one of {', '.join(SPEC_KEYS)})"
            )
        if k in spec_opts:
            raise ModelSpecError(f"--model openai:{rest}: {k} is given twice")
    opts = {**spec_opts, **given}
    tok = opts.pop("tokenizer", None)
    if tok is None:
        raise ModelSpecError(
            f"--model openai:{rest}: expected a tokenizer=SPEC option naming the server's "
            f"tokeniser (e.g. tokenizer=model.gguf or tokenizer=hf:ORG/NAME)"
        )
    if isinstance(tok, str):
        from infolens.models import load_model

        if tok.endswith(".gguf") and not tok.startswith("gguf:"):
            tok = "gguf:" + tok
        if tok.startswith("gguf:"):
            tok = load_model(tok, vocab_only=True)
        elif tok.startswith("hf:"):
            tok = hf_tokenizer(tok[3:])
        else:
            tok = load_model(tok)
    return OpenAIModel(url, model, tok, **opts)


class _HFTokenizer:
    """A transformers tokeniser with the tokenising methods of ``hf:`` models
    (:class:`infolens.models.hf.HFModel`'s own, so the ids and spans are the same), without
    the weights."""

    from infolens.models.hf import HFModel as _M

    tokenize = _M.tokenize
    tokenize_stream = _M.tokenize_stream
    decode_token = _M.decode_token
    decode = _M.decode
    eos_id = _M.eos_id
    _encoder = _M._encoder
    _atomic = _M._atomic
    del _M

    predicts_first = False
    byte_level = False

    def __init__(self, tokenizer: Any, name: str, vocab_size: int, context: int | None) -> None:
        self.tokenizer = tokenizer
        self.name = name
        self.split_special_tokens = False
        self.tokenize_piece = 1 << 16
        self.vocab_size = vocab_size
        self.max_context = context
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is None:
            bos = getattr(tokenizer, "eos_token_id", None)
        self.bos_id = None if bos is None else int(bos)


def hf_tokenizer(path_or_id: str) -> Any:
    """The tokeniser of ``hf:PATH_OR_ID`` alone (no weights), offline: the ``tokenizer=``
    of an ``openai:`` model served from that checkpoint. ``V`` is the larger of the
    tokeniser's length and the config's ``vocab_size`` (the model's output size)."""
    try:
        from transformers import AutoConfig, AutoTokenizer
    except ImportError as exc:
        raise InputError(
            f"tokenizer=hf:{path_or_id}: needs transformers (pip install 'infolens[hf]'): {exc}"
        ) from None
    from infolens.models.hf import _context, _offline, _text_config

    with _offline(True):
        try:
            tok = AutoTokenizer.from_pretrained(path_or_id, local_files_only=True)
            config = AutoConfig.from_pretrained(path_or_id, local_files_only=True)
        except Exception as exc:
            raise InputError(
                f"tokenizer=hf:{path_or_id}: cannot load the tokenizer offline: "
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            ) from None
    v = max(len(tok), int(getattr(_text_config(config), "vocab_size", 0) or 0))
    return _HFTokenizer(tok, f"hf:{path_or_id}", v, _context(config, tok))
