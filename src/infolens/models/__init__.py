"""Model adapters. :func:`load_model` resolves a model spec string such as ``ngram``,
``ngram:order=4``, ``ngram:PATH`` or ``hf:PATH_OR_ID`` to a :class:`LanguageModel`."""

from __future__ import annotations

from typing import Any

from infolens.models.base import LanguageModel, ModelSpecError, Tokenized, Window

__all__ = ["LanguageModel", "ModelSpecError", "Tokenized", "Window", "load_model"]

DEFAULT_MODEL = "ngram"


def load_model(spec: str | None = None, **options: Any) -> LanguageModel:
    """Resolve a model spec string to an adapter.

    Parameters
    ----------
    spec : str, optional
        ``ngram`` (the default), ``ngram:order=N``, ``ngram:FILE[,adapt=1]`` or
        ``hf:PATH_OR_ID``.
    **options
        Adapter-specific keyword arguments (for ``hf:``: ``dtype``, ``device``,
        ``allow_download``, ``trust_remote_code``, ``batch_size``).

    Returns
    -------
    LanguageModel

    Raises
    ------
    ModelSpecError
        An empty spec, an unknown scheme or a bad ``ngram`` spec (unknown, repeated or
        empty keys included), naming it.

    Examples
    --------
    >>> m = load_model("ngram:order=3")
    >>> m.name, m.vocab_size, m.byte_level
    ('ngram:order=3', 256, True)
    """
    spec = DEFAULT_MODEL if spec is None else spec
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(
            f"--model: expected a spec like 'ngram', 'ngram:order=4', 'ngram:FILE' or "
            f"'hf:PATH_OR_ID', got {spec!r}"
        )
    scheme, _, rest = spec.partition(":")
    if scheme == "ngram":
        from infolens.models.ngram import load_ngram

        return load_ngram(rest, **options)
    if scheme == "hf":
        from infolens.models.hf import load_hf

        return load_hf(rest, **options)
    raise ModelSpecError(
        f"--model: expected a spec like 'ngram', 'ngram:order=4', 'ngram:FILE' or "
        f"'hf:PATH_OR_ID', got {spec!r}"
    )
