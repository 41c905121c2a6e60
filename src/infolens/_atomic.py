"""Write a file so that it appears only when complete (reports, token JSONL, base files)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_output"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(
    path: str | os.PathLike[str], mode: str = "w", **open_kwargs: Any
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; rename it to ``path`` on a clean exit.

    On an exception the temporary file is deleted and an existing ``path`` is left as it
    was. The finished file gets the usual permissions (``0o666`` less the umask), not the
    ``0o600`` of a temporary file.

    Parameters
    ----------
    path : str or Path
        The file to write.
    mode : str
        ``"w"`` (text) or ``"wb"`` (binary).
    **open_kwargs
        Passed to :func:`os.fdopen` (e.g. ``encoding="utf-8"``).

    Yields
    ------
    file object
        The open temporary file.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_output(out, encoding="utf-8") as f:
    ...     _ = f.write("done")
    >>> out.read_text()
    'done'
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
