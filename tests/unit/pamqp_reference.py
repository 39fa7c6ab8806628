"""pamqp as an independent reader of the AMQP frames leveret writes."""

from __future__ import annotations

from typing import Any

from pamqp import frame as pamqp_frame


def unmarshal_all(data: bytes) -> list[tuple[int, Any]]:
    """Decode every frame in *data* with pamqp, as (channel, frame) pairs."""
    decoded = []
    while data:
        used, channel, value = pamqp_frame.unmarshal(data)
        decoded.append((channel, value))
        data = data[used:]
    return decoded
