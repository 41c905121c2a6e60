"""infolens: information theory for AI engineers.

Exact, fast entropy, cross-entropy, KL divergence, perplexity and friends for numpy arrays,
torch tensors and language models. Results are in nats unless ``base=`` says otherwise.

Scoring text with a language model (perplexity, bits per byte): :func:`score_text` for one
string, :func:`score_documents` over :func:`read_documents` (or :class:`Document` objects)
for files and corpora, with a model from :func:`load_model`; :func:`generate` samples from
a model with the temperature and truncation steps of :mod:`infolens.sampling`. These are
imported on first use, so ``import infolens`` stays light (numpy only; never torch).
:mod:`infolens.sampling` (warpers on logits), :mod:`infolens.calibration` (ECE, Brier,
temperature scaling) and :mod:`infolens.alignment` (RLHF KL estimators, exact KL, KL
controllers, DPO losses) are modules of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from infolens.compare_stats import compare_logits
from infolens.measures import (
    cross_entropy,
    entropy,
    js_divergence,
    kl_divergence,
    renyi_divergence,
    renyi_entropy,
    surprisal,
    total_variation,
)

if TYPE_CHECKING:
    from infolens.documents import Document, read_documents
    from infolens.generation import generate
    from infolens.models import load_model
    from infolens.quick import score_text
    from infolens.score import ScoreResult, score_documents

__version__ = "0.1.0"

#: Names exported lazily: name -> the module that defines it (imported on first access).
_LAZY = {
    "Document": "infolens.documents",
    "generate": "infolens.generation",
    "ScoreResult": "infolens.score",
    "read_documents": "infolens.documents",
    "score_documents": "infolens.score",
    "load_model": "infolens.models",
    "score_text": "infolens.quick",
}

__all__ = [
    "Document",
    "ScoreResult",
    "__version__",
    "compare_logits",
    "cross_entropy",
    "entropy",
    "generate",
    "js_divergence",
    "kl_divergence",
    "load_model",
    "read_documents",
    "renyi_divergence",
    "renyi_entropy",
    "score_documents",
    "score_text",
    "surprisal",
    "total_variation",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'infolens' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
