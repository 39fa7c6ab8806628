"""Lookup of the endpoint method a request names.

A server has a list of endpoint objects. An endpoint serves the namespace and
version of its ``target`` attribute (a :class:`~leveret.Target`, or anything
with ``namespace`` and ``version`` attributes), by default namespace None and
version ``"1.0"``. A request for version ``X.Y`` matches an endpoint of version
``X.Z`` with ``Z >= Y``; a request without a version asks for ``"1.0"``. The
first matching endpoint that has the method serves it.

Only public methods are callable: a name starting with ``_`` never is. With the
``"exposed"`` access policy, only methods decorated with :func:`expose` are.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from ._errors import ConfigurationError, NoSuchMethod, UnsupportedVersion
from ._target import parse_version

__all__ = ["AccessPolicy", "Dispatcher", "Handler", "HandlerKind", "expose"]

AccessPolicy = Literal["public", "exposed"]
DEFAULT_VERSION = "1.0"
_EXPOSED_FLAG = "__leveret_exposed__"

F = TypeVar("F", bound=Callable[..., Any])


def expose(method: F) -> F:
    """Mark an endpoint method as callable under the ``"exposed"`` access policy."""
    setattr(method, _EXPOSED_FLAG, True)
    return method


class HandlerKind(enum.Enum):
    """The way a method runs: in the thread pool or on the loop, streaming or not."""

    SYNC = "sync"
    SYNC_GENERATOR = "sync generator"
    ASYNC = "async"
    ASYNC_GENERATOR = "async generator"


@dataclasses.dataclass(frozen=True, slots=True)
class Handler:
    """A bound endpoint method and how to run it."""

    function: Callable[..., Any]
    kind: HandlerKind


def _kind_of(function: Callable[..., Any]) -> HandlerKind:
    if inspect.isasyncgenfunction(function):
        return HandlerKind.ASYNC_GENERATOR
    if inspect.iscoroutinefunction(function):
        return HandlerKind.ASYNC
    if inspect.isgeneratorfunction(function):
        return HandlerKind.SYNC_GENERATOR
    return HandlerKind.SYNC


# Successful lookups kept; a cap so that many distinct version strings sent
# by callers cannot grow the cache without bound.
_CACHE_MAX_ENTRIES = 4096


class _Endpoint:
    __slots__ = ("namespace", "obj", "version")

    def __init__(self, obj: object) -> None:
        target = getattr(obj, "target", None)
        self.obj = obj
        self.namespace: str | None = getattr(target, "namespace", None)
        version = getattr(target, "version", None) or DEFAULT_VERSION
        self.version = parse_version(version)


def _is_compatible(
    served: tuple[int, int, int], requested: tuple[int, int, int]
) -> bool:
    """Return True if *served* can serve *requested*: same major, not older."""
    return served[0] == requested[0] and served[1:] >= requested[1:]


class Dispatcher:
    """Map ``(namespace, version, method)`` of a request to a bound method."""

    def __init__(
        self, endpoints: Sequence[object], access_policy: AccessPolicy = "public"
    ) -> None:
        if access_policy not in ("public", "exposed"):
            raise ConfigurationError(
                f"invalid access_policy {access_policy!r}: use 'public' or 'exposed'"
            )
        if not endpoints:
            raise ConfigurationError("a server needs at least one endpoint object")
        self._endpoints = [_Endpoint(obj) for obj in endpoints]
        self._exposed_only = access_policy == "exposed"
        self._cache: dict[tuple[str | None, str, str], Handler] = {}

    def lookup(
        self, namespace: str | None, version: str | None, method: str
    ) -> Handler:
        """Return the method's handler, or raise NoSuchMethod / UnsupportedVersion."""
        key = (namespace, version or DEFAULT_VERSION, method)
        found = self._cache.get(key)
        if found is None:
            function = self._search(*key)
            found = Handler(function, _kind_of(function))
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = found
        return found

    def _search(
        self, namespace: str | None, version: str, method: str
    ) -> Callable[..., Any]:
        try:
            requested = parse_version(version)
        except ConfigurationError:
            raise UnsupportedVersion(version, method) from None
        # As oslo.messaging decides: NoSuchMethod when some endpoint of the
        # namespace serves the version but not the method, else (no such
        # namespace, or no compatible version) UnsupportedVersion.
        compatible_found = False
        for endpoint in self._endpoints:
            if endpoint.namespace != namespace:
                continue
            if not _is_compatible(endpoint.version, requested):
                continue
            bound = self._callable(endpoint.obj, method)
            if bound is not None:
                return bound
            compatible_found = True
        if compatible_found:
            raise NoSuchMethod(method)
        raise UnsupportedVersion(version, method)

    def _callable(self, obj: object, name: str) -> Callable[..., Any] | None:
        if name.startswith("_") or name == "target":
            return None
        attribute: Callable[..., Any] | None = getattr(obj, name, None)
        if not callable(attribute) or isinstance(attribute, type):
            return None
        if self._exposed_only and not getattr(attribute, _EXPOSED_FLAG, False):
            return None
        return attribute
