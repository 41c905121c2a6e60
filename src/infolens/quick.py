r"""One call from a string to its scores: :func:`score_text`.

A thin convenience over :func:`infolens.score.score_documents` for the common case of one
text held in memory; exported at the top level as ``infolens.score_text``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infolens.models.base import LanguageModel

__all__ = ["score_text"]


def score_text(
    text: str | bytes,
    model: str | LanguageModel = "ngram",
    *,
    name: str = "<text>",
    **settings: Any,
) -> dict[str, Any]:
    r"""Score one text with a language model: perplexity, bits per byte and the rest.

    With ``N`` predicted tokens of surprisal ``s_k = -ln p(token_k | context)`` (nats):
    ``nll_nats = sum_k s_k``, ``perplexity = exp(nll_nats / N)``,
    ``bits_per_token = nll_nats / (N ln 2)`` and
    ``bits_per_byte = nll_nats / (ln 2 * bytes)`` (``bytes``: the UTF-8 length of ``text``).
    The windows, BOS policy and intervals are those of ``docs/scoring.md``; the numbers are
    exactly those of ``infolens score FILE --json`` for a file holding ``text``.

    Parameters
    ----------
    text : str or bytes
        The text. ``bytes`` that are not UTF-8 are accepted by byte-level models only.
    model : str or LanguageModel
        A model spec for :func:`infolens.models.load_model` (``"ngram"``, the built-in
        byte-level model, needs no download; ``"hf:PATH"`` a local Hugging Face causal LM),
        or an adapter already loaded (load once to score many texts).
    name : str
        The document's name in the result.
    **settings
        Keyword arguments of :func:`infolens.score.score_documents`: ``max_length``,
        ``stride``, ``bos``, ``block_tokens``, ``compressors``, ...

    Returns
    -------
    dict
        The keys of ``infolens score --json`` without its ``documents`` list (one text: its
        numbers are the corpus numbers): ``tokens``, ``nll_nats`` (nats),
        ``perplexity``, ``bits_per_token``, ``bits_per_byte``, ``word_perplexity``,
        ``mean_entropy_bits``, ``calibration_gap_bits`` (bits), the intervals
        ``perplexity_ci95_iid`` and ``perplexity_ci95_batch_means``, ``model``,
        ``max_length``, ``stride``, ``bos`` and ``compressors``.

    Raises
    ------
    infolens.models.ModelSpecError
        ``model`` is not a valid spec.
    ValueError
        A setting is out of range, naming it.

    Examples
    --------
    >>> from infolens import score_text
    >>> r = score_text("abab" * 100)  # the built-in adaptive byte model learns the pattern
    >>> r["tokens"], r["bytes"], round(r["bits_per_byte"], 3)
    (400, 400, 0.051)
    >>> import math
    >>> math.isclose(r["bits_per_byte"], r["nll_nats"] / (r["bytes"] * math.log(2)))
    True
    >>> lo, hi = r["perplexity_ci95_iid"]
    >>> 1 <= lo <= r["perplexity"] <= hi
    True
    """
    from infolens.models import load_model
    from infolens.score import Document, score_documents

    lm = load_model(model) if isinstance(model, str) else model
    result = score_documents(lm, [Document(name, text)], **settings).to_dict()
    del result["documents"]
    return result
