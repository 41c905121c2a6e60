"""The ``infolens`` command line: thin commands over library functions.

Data goes to stdout, diagnostics to stderr; every command has ``--json``. Errors are one
line on stderr and a non-zero exit status (2 for bad input), never a traceback unless
``--debug`` is given.
"""

from __future__ import annotations

import click

from infolens import __version__
from infolens.cli._common import InfolensGroup


@click.group(cls=InfolensGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="infolens")
def main() -> None:
    """infolens: information theory for AI engineers.

    Entropy, cross-entropy, KL divergence and perplexity, computed exactly, on text and
    language models. Nats by default; bits where a name says so.
    """


def _register() -> None:
    # Each command lives in its own module; importing it registers it on ``main``.
    from infolens.cli import (  # noqa: F401
        calibrate,
        compare,
        compress,
        kl,
        measure,
        mi,
        ngram,
        rag,
        sample,
        score,
        semantic_entropy,
    )


_register()

__all__ = ["main"]
