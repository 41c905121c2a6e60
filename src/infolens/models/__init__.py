"""Model adapters. :func:`load_model` resolves a model spec string such as ``ngram``,
``ngram:order=4``, ``ngram:PATH``, ``hf:PATH_OR_ID``, ``gguf:PATH`` or
``openai:URL#MODEL`` to a :class:`LanguageModel`."""

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
        ``hf:PATH_OR_ID``, ``gguf:PATH[,key=value...]`` (llama.cpp, :mod:`infolens.models.gguf`)
        or ``openai:URL#MODEL[,key=value...]`` (an OpenAI-compatible completion server,
        :mod:`infolens.models.openai`).
    **options
        Adapter-specific keyword arguments (for ``hf:``: ``dtype``, ``device``,
        ``allow_download``, ``trust_remote_code``, ``batch_size``; for ``gguf:``:
        ``n_ctx``, ``n_gpu_layers``, ``n_threads``, ``n_batch``, ``special_tokens``; for
        ``openai:``: see :func:`infolens.models.openai.load_openai`).

    Returns
    -------
    LanguageModel

    Raises
    ------
    ModelSpecError
        An empty spec, an unknown scheme or a bad ``ngram``, ``gguf`` or ``openai`` spec
        (unknown, repeated or empty keys included), naming it.
    infolens.errors.InputError
        The engine's package is missing (naming the extra to install), or the model cannot
        be loaded.

    Examples
    --------
    >>> m = load_model("ngram:order=3")
    >>> m.name, m.vocab_size, m.byte_level
    ('ngram:order=3', 256, True)
    """
    spec = DEFAULT_MODEL if spec is None else spec
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(
            f"--model: expected a spec like 'ngram', 'ngram:order=4', 'ngram:FILE', "
            f"'hf:PATH_OR_ID', 'gguf:PATH' or 'openai:URL#MODEL', got {spec!r}"
        )
    scheme, _, rest = spec.partition(":")
    if scheme == "ngram":
        from infolens.models.ngram import load_ngram

        return load_ngram(rest, **options)
    if scheme == "hf":
        from infolens.models.hf import load_hf

        return load_hf(rest, **options)
    if scheme == "gguf":
        from infolens.models.gguf import load_gguf

        return load_gguf(rest, **options)
    if scheme == "openai":
        from infolens.models.openai import load_openai

        return load_openai(rest, **options)
    raise ModelSpecError(
        f"--model: expected a spec like 'ngram', 'ngram:order=4', 'ngram:FILE', "
        f"'hf:PATH_OR_ID', 'gguf:PATH' or 'openai:URL#MODEL', got {spec!r}"
    )
