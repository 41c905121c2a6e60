"""Shared pytest fixtures. Others may append fixtures here."""

from hf_fixtures import tiny_hf, tiny_hf_dir  # noqa: F401
