"""Exceptions with one clear line each: the argument, what was expected, what came."""

from __future__ import annotations


class InfolensError(Exception):
    """Base class for errors infolens reports to users as one line."""


class InputError(InfolensError, ValueError):
    """An input (file, document, argument) is not what was expected."""
