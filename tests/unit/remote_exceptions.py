"""Exceptions raised by test endpoints; clients may allow this module."""

from __future__ import annotations


class QuotaExceeded(Exception):
    """An application error with two constructor arguments."""

    def __init__(self, resource: str, limit: int) -> None:
        super().__init__(resource, limit)
        self.resource = resource
        self.limit = limit
