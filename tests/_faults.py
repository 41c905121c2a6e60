"""The fault suite every file format infolens writes joins: corrupt a small file at every
offset (a few bit patterns) and truncate it at every length; reading it back must raise
one clear :class:`InputError` line each time, never a traceback or a silent success.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from infolens.errors import InputError

#: XOR masks applied at each offset: the lowest bit, the highest bit, every bit.
PATTERNS = (0x01, 0x80, 0xFF)


def _refused(read: Callable[[Path], object], path: Path, what: str) -> str:
    try:
        read(path)
    except InputError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg, f"{what}: not one line: {msg!r}"
        return msg
    raise AssertionError(f"{what}: accepted silently")


def assert_corruptions_refused(
    good: Path, read: Callable[[Path], object], tmp: Path, *, patterns: tuple[int, ...] = PATTERNS
) -> dict[str, int]:
    """Flip every byte of ``good`` with each of ``patterns`` and truncate it at every length;
    ``read`` (which opens the file and uses every value in it) must raise InputError.

    Returns how many variants were tried (``flips``, ``truncations``), so a caller can
    assert the suite really ran.
    """
    data = good.read_bytes()
    read(good)  # the pristine file reads
    bad = tmp / ("corrupt-" + good.name)
    flips = 0
    for offset in range(len(data)):
        for mask in patterns:
            b = bytearray(data)
            b[offset] ^= mask
            bad.write_bytes(bytes(b))
            _refused(read, bad, f"byte {offset} ^ {mask:#04x}")
            flips += 1
    for n in range(len(data)):
        bad.write_bytes(data[:n])
        _refused(read, bad, f"truncated to {n} bytes")
    return {"flips": flips, "truncations": len(data)}
