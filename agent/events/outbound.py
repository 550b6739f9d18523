"""An event ready for Kafka: key, value and headers, and its compact form in the spool.

The value is the CloudEvents JSON of ``event.to_dict()`` (structured mode); the key
is the event's subject (the entity it is about), so one entity's events share a
partition and stay in order.

>>> from agent.model import Event
>>> e = Event.new(type="t", source="s", subject="api", data={}, time=0.0)
>>> out = OutboundEvent.from_event(e, emitted_at=1.5)
>>> OutboundEvent.decode(out.encode()) == out
True
>>> out.key
b'api'
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from agent.model import Event

CONTENT_TYPE = b"application/cloudevents+json; charset=UTF-8"
_HEAD = struct.Struct("<dHHi")


@dataclass(frozen=True, slots=True)
class OutboundEvent:
    """One event as produced: ``emitted_at`` (seconds) feeds the delivery latency."""

    id: str
    type: str
    key: bytes | None
    value: bytes
    emitted_at: float

    @classmethod
    def from_event(cls, event: Event, emitted_at: float) -> OutboundEvent:
        value = json.dumps(event.to_dict(), separators=(",", ":"), default=str).encode()
        key = event.subject.encode() if event.subject is not None else None
        return cls(event.id, event.type, key, value, emitted_at)

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers: ``ce_type``, ``ce_id`` and ``content-type``."""
        return [
            ("ce_type", self.type.encode()),
            ("ce_id", self.id.encode()),
            ("content-type", CONTENT_TYPE),
        ]

    def encode(self) -> bytes:
        """The spool record: a fixed head, then type, id, key and value bytes."""
        type_, id_ = self.type.encode(), self.id.encode()
        key_len = -1 if self.key is None else len(self.key)
        head = _HEAD.pack(self.emitted_at, len(type_), len(id_), key_len)
        return b"".join((head, type_, id_, self.key or b"", self.value))

    @classmethod
    def decode(cls, data: bytes) -> OutboundEvent:
        emitted_at, type_len, id_len, key_len = _HEAD.unpack_from(data)
        pos = _HEAD.size
        type_ = data[pos : pos + type_len].decode()
        pos += type_len
        id_ = data[pos : pos + id_len].decode()
        pos += id_len
        key = None if key_len < 0 else data[pos : pos + key_len]
        pos += max(key_len, 0)
        return cls(id_, type_, key, data[pos:], emitted_at)
