"""Exceptions raised by wsc."""

from __future__ import annotations


class FormatError(ValueError):
    """A .wsc file is malformed, truncated, corrupt, or of an unknown version or coder."""


__all__ = ["FormatError"]
