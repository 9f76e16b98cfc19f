"""History records and the SHA-256 chain that links them.

Each record holds the input event and the effects the core decided, with sequence number, time,
actor and the model hash the case is pinned to. ``hash`` covers all of that plus ``prev_hash``, so
altering, dropping or reordering any record breaks every hash after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.domain.canonical import canonical_json, json_string

__all__ = ["RECORD_FORMAT", "HistoryRecord"]

RECORD_FORMAT = 1
"""Bump with a migration and a frozen fixture of the old format when the record shape changes."""


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    seq: int
    at: str
    actor: str
    model_hash: str
    event: Mapping[str, Any]
    effects: tuple[Mapping[str, Any], ...]
    prev_hash: str
    hash: str
    format: int = RECORD_FORMAT
    # The canonical JSON of ``event`` and ``effects``, computed once while hashing and reused by
    # stores so a record is serialised once, not twice.
    event_text: str = field(default="", compare=False, repr=False)
    effects_text: str = field(default="", compare=False, repr=False)

    @staticmethod
    def digest(
        *,
        seq: int,
        at: str,
        actor: str,
        model_hash: str,
        event_text: str,
        effects_text: str,
        prev_hash: str,
        format: int = RECORD_FORMAT,
    ) -> str:
        """SHA-256 of the canonical JSON of the whole record body.

        The body is assembled around the already-canonical event and effects texts, keys in sorted
        order, which is byte-for-byte ``canonical_json`` of the body as one mapping (a unit test
        holds the two equal).
        """
        body = (
            f'{{"actor":{json_string(actor)},"at":{json_string(at)},'
            f'"effects":{effects_text},"event":{event_text},"format":{format},'
            f'"model_hash":{json_string(model_hash)},"prev_hash":{json_string(prev_hash)},'
            f'"seq":{seq}}}'
        )
        return hashlib.sha256(body.encode()).hexdigest()

    @classmethod
    def seal(
        cls,
        *,
        seq: int,
        at: str,
        actor: str,
        model_hash: str,
        event: Mapping[str, Any],
        effects: Sequence[Mapping[str, Any]],
        prev_hash: str,
    ) -> HistoryRecord:
        event_text = canonical_json(event)
        effects_text = canonical_json(list(effects))
        digest = cls.digest(
            seq=seq,
            at=at,
            actor=actor,
            model_hash=model_hash,
            event_text=event_text,
            effects_text=effects_text,
            prev_hash=prev_hash,
        )
        return cls(
            seq,
            at,
            actor,
            model_hash,
            event,
            tuple(effects),
            prev_hash,
            digest,
            RECORD_FORMAT,
            event_text,
            effects_text,
        )

    def hash_is_valid(self) -> bool:
        """Recompute the hash from the record's values (never from its cached texts)."""
        return self.hash == self.digest(
            seq=self.seq,
            at=self.at,
            actor=self.actor,
            model_hash=self.model_hash,
            event_text=canonical_json(self.event),
            effects_text=canonical_json([dict(e) for e in self.effects]),
            prev_hash=self.prev_hash,
            format=self.format,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "model_hash": self.model_hash,
            "event": dict(self.event),
            "effects": [dict(e) for e in self.effects],
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryRecord:
        return cls(
            seq=data["seq"],
            at=data["at"],
            actor=data["actor"],
            model_hash=data["model_hash"],
            event=dict(data["event"]),
            effects=tuple(dict(e) for e in data["effects"]),
            prev_hash=data["prev_hash"],
            hash=data["hash"],
            format=data.get("format", RECORD_FORMAT),
        )
