"""infolens: information theory for AI engineers.

Exact, fast entropy, cross-entropy, KL divergence, perplexity and friends for numpy arrays,
torch tensors and language models. Results are in nats unless ``base=`` says otherwise.
"""

from __future__ import annotations

from infolens.compare import compare_logits
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

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "compare_logits",
    "cross_entropy",
    "entropy",
    "js_divergence",
    "kl_divergence",
    "renyi_divergence",
    "renyi_entropy",
    "surprisal",
    "total_variation",
]
