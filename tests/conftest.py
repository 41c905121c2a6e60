"""Shared pytest fixtures. Others may append fixtures here."""

from collections.abc import Iterator

import pytest

from gguf_fixtures import tiny_gguf, tiny_gguf_q4k, tiny_gguf_q8, tiny_llama_dir  # noqa: F401
from hf_fixtures import tiny_hf, tiny_hf_dir  # noqa: F401


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for the module: tiny models run fastest so (the box is shared).

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
