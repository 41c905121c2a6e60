"""infolens: information theory for AI engineers.

Exact, fast entropy, cross-entropy, KL divergence, perplexity and friends for numpy arrays,
torch tensors and language models. Results are in nats unless ``base=`` says otherwise.
"""

from __future__ import annotations

__version__ = "0.1.0"
