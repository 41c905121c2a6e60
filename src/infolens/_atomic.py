"""Loss-free output: every file infolens writes appears whole or not at all.

What an output path names decides how it is written (:func:`output_kind`):

* ``-``, or a path naming descriptor 1 (``/dev/stdout``, ``/dev/fd/1``): standard output,
  written through (the caller moves its own summary to stderr);
* a character device or a FIFO (``/dev/null``, a named pipe), or a path naming another
  open descriptor (``/dev/stderr``, ``/dev/fd/N``, whatever it points to): written through
  as a stream, never replaced;
* a regular file, or a path that does not exist yet: written to a temporary file in the
  same directory, flushed, fsynced and renamed over the path (the directory is fsynced
  too); an existing file keeps its permission bits (and owner, where allowed); a symbolic
  link is resolved and its target replaced, never the link;
* anything else (a directory, a socket, a block device), and an existing file that is
  read-only, is refused with one :class:`~infolens.errors.InputError` line.

On any failure (an exception, ``KeyboardInterrupt``, the ``SIGTERM`` the CLI turns into
:class:`Terminated`, a full disk) the temporary file is removed and an existing file is
left exactly as it was.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from infolens.errors import InputError

__all__ = [
    "Terminated",
    "atomic_output",
    "check_writable",
    "output_kind",
    "probe_directory",
    "terminate_cleanly",
]


class Terminated(BaseException):
    """Raised by :func:`terminate_cleanly`'s ``SIGTERM`` handler, so that every ``with``
    block (temporary files included) unwinds before the process exits with status 143."""


@contextmanager
def terminate_cleanly() -> Iterator[None]:
    """Within the block, ``SIGTERM`` raises :class:`Terminated` (in the main thread only;
    elsewhere this does nothing). The previous handler is restored on exit."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_kind(path: str | os.PathLike[str], option: str = "output") -> str:
    """How ``path`` will be written: ``"stdout"``, ``"stream"`` or ``"file"``.

    Parameters
    ----------
    path : str or Path
        The output path.
    option : str
        How errors name it (e.g. ``"--tokens"``).

    Returns
    -------
    str
        ``"stdout"`` for ``-`` and paths naming descriptor 1 (``/dev/stdout``);
        ``"stream"`` for other descriptors, character devices and FIFOs (after following
        symbolic links); ``"file"`` for a regular file or a path that does not exist yet.

    Raises
    ------
    InputError
        A directory, a socket, a block device, a dangling or looping symbolic link, or an
        existing read-only file.

    Examples
    --------
    >>> output_kind("-"), output_kind("/dev/null")
    ('stdout', 'stream')
    >>> output_kind("/")
    Traceback (most recent call last):
    ...
    infolens.errors.InputError: output: / is a directory; expected a file path
    """
    p = os.fspath(path)
    if p == "-":
        return "stdout"
    fd = _descriptor(p)
    if fd == 1:
        return "stdout"  # /dev/stdout, /dev/fd/1: the same as '-'
    if fd is not None:
        return "stream"  # /dev/fd/3 ...: whatever the descriptor is, write to it
    try:
        st = os.stat(p)  # follows links
    except FileNotFoundError:
        if os.path.islink(p):
            target = os.readlink(p)
            raise InputError(
                f"{option}: {p} is a symbolic link to {target}, which does not exist"
            ) from None
        return "file"
    except OSError as exc:
        raise InputError(f"{option}: {p}: {exc.strerror or exc}") from None
    mode = st.st_mode
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return "stream"
    if stat.S_ISDIR(mode):
        raise InputError(f"{option}: {p} is a directory; expected a file path")
    if not stat.S_ISREG(mode):
        what = "a socket" if stat.S_ISSOCK(mode) else "a block device" if stat.S_ISBLK(mode) else "a special file"
        raise InputError(f"{option}: {p} is {what}; expected a regular file, a FIFO or '-'")
    if not os.access(p, os.W_OK) or not mode & 0o222:
        raise InputError(f"{option}: {p} exists and is read-only; refusing to replace it")
    return "file"


_FD_PATH = re.compile(r"^/(dev/(?P<std>stdout|stderr)|dev/fd/(?P<n>\d+)|proc/self/fd/(?P<m>\d+))$")


def _descriptor(p: str) -> int | None:
    """The descriptor that ``p``, or a symbolic link on the way to its target, names
    (``/dev/stdout`` is 1, ``/dev/fd/N`` and ``/proc/self/fd/N`` are N), else ``None``."""
    cur = os.path.abspath(p)
    for _ in range(40):
        m = _FD_PATH.match(cur)
        if m:
            if m["std"]:
                return 1 if m["std"] == "stdout" else 2
            return int(m["n"] or m["m"])
        if not os.path.islink(cur):
            return None
        cur = os.path.normpath(os.path.join(os.path.dirname(cur), os.readlink(cur)))
    return None


def check_writable(path: str | os.PathLike[str], option: str = "output") -> None:
    """Refuse, before any work, an output that :func:`atomic_output` could not write.

    Checks :func:`output_kind` and, for a file, that its directory exists and a file can
    be created there (a real probe, so read-only mounts and permissions are seen).

    Raises
    ------
    InputError
        One line naming ``option``.
    """
    if output_kind(path, option) != "file":
        return
    probe_directory(Path(os.path.realpath(path)).parent, option)


def probe_directory(directory: str | os.PathLike[str], option: str = "output") -> None:
    """Refuse a directory that does not exist or in which no file can be created (a real
    probe file, created and removed: read-only mounts and permissions are seen).

    Examples
    --------
    >>> import tempfile
    >>> probe_directory(tempfile.mkdtemp())
    >>> probe_directory("/nonexistent/dir", "--plots")
    Traceback (most recent call last):
    ...
    infolens.errors.InputError: --plots: /nonexistent/dir: no such directory
    """
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"{option}: {d}: no such directory")
    try:
        with tempfile.TemporaryFile(dir=d):
            pass
    except OSError as exc:
        raise InputError(f"{option}: cannot write in {d}: {exc.strerror or exc}") from None


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be fsynced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def atomic_output(
    path: str | os.PathLike[str], mode: str = "w", *, option: str = "output", **open_kwargs: Any
) -> Iterator[IO[Any]]:
    """Open ``path`` for writing so that nothing is lost or half-written.

    A regular file is written to a temporary file beside it, fsynced and renamed into
    place on a clean exit; on an exception (``KeyboardInterrupt`` and
    :class:`Terminated` included) the temporary file is deleted and an existing file is
    left as it was. An existing file's permission bits are kept (a new one gets
    ``0o666`` less the umask). ``-``, character devices and FIFOs are written through; a
    symbolic link's target is replaced, not the link. See the module docstring.

    Parameters
    ----------
    path : str or Path
        The output.
    mode : str
        ``"w"`` (text) or ``"wb"`` (binary).
    option : str
        How errors name the output (e.g. ``"--tokens"``).
    **open_kwargs
        Passed to :func:`open` (e.g. ``encoding="utf-8"``).

    Yields
    ------
    file object
        The file to write.

    Raises
    ------
    InputError
        The path cannot be written (see :func:`output_kind`).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_output(out, encoding="utf-8") as f:
    ...     _ = f.write("done")
    >>> out.read_text()
    'done'
    """
    kind = output_kind(path, option)
    if kind == "stdout":
        if sys.stdout is None:
            raise InputError(f"{option}: '-' names standard output, which is closed")
        if "b" in mode:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
            return
        # the caller's encoding and newline, whatever the locale gave sys.stdout
        sys.stdout.flush()
        text = io.TextIOWrapper(
            sys.stdout.buffer,
            encoding=open_kwargs.get("encoding", "utf-8"),
            newline=open_kwargs.get("newline"),
        )
        try:
            yield text
            text.flush()
        finally:
            text.detach()  # leave sys.stdout's buffer open
        return
    if kind == "stream":
        with open(path, mode, **open_kwargs) as f:
            yield f
        return
    target = Path(os.path.realpath(path))
    try:
        existing: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        existing = None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if existing is not None:
            os.chmod(tmp, stat.S_IMODE(existing.st_mode))
            with contextlib.suppress(OSError):  # only root may give a file away
                os.chown(tmp, existing.st_uid, existing.st_gid)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
