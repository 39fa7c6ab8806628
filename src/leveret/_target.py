"""Target: where a request goes, or what a server or endpoint serves."""

from __future__ import annotations

import dataclasses
import re

from ._errors import InvalidTarget

__all__ = ["Target", "parse_version"]

# ASCII digits only, and fullmatch: "$" alone would accept a trailing newline.
_VERSION_PATTERN = re.compile(r"([0-9]+)\.([0-9]+)(?:\.([0-9]+))?")


def parse_version(version: str) -> tuple[int, int, int]:
    """Split a ``"major.minor"`` or ``"major.minor.revision"`` version.

    A missing revision is 0. Raises :class:`InvalidTarget` if invalid.
    """
    match = _VERSION_PATTERN.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise InvalidTarget(
            f"invalid version {version!r}: expected 'major.minor' or "
            "'major.minor.revision', e.g. '1.2'"
        )
    major, minor, revision = match.groups(default="0")
    return int(major), int(minor), int(revision)


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """An immutable description of a message's destination.

    - ``topic``: the service's topic; any one server of the topic takes a request.
    - ``server``: send to, or serve as, this one server of the topic.
    - ``fanout``: send a cast to every server of the topic.
    - ``exchange``: the control exchange; None means the transport's default.
    - ``namespace`` and ``version`` (``"major.minor"``): pick the endpoint. On an
      endpoint's ``target`` attribute they state what the endpoint serves, and
      ``topic`` may then be None.
    """

    topic: str | None = None
    server: str | None = None
    fanout: bool = False
    exchange: str | None = None
    namespace: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        for name in ("topic", "server", "exchange", "namespace"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidTarget(
                    f"invalid {name} {value!r}: expected non-empty text"
                )
        if not isinstance(self.fanout, bool):
            raise InvalidTarget(
                f"invalid fanout {self.fanout!r}: expected True or False"
            )
        if self.version is not None:
            parse_version(self.version)

    def replace(self, **changes: object) -> Target:
        """Return a copy with the given fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
