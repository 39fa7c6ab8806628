"""Exceptions raised by interop endpoints.

Both peers' clients list this module in ``allowed_remote_exmods``, so these
types are re-raised as themselves on the caller.
"""

from __future__ import annotations


class QuotaExceeded(Exception):
    """An application error with two constructor arguments."""

    def __init__(self, resource: str, limit: int) -> None:
        super().__init__(resource, limit)
        self.resource = resource
        self.limit = limit
