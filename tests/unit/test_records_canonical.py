"""The record hash is assembled from pre-serialised parts; it must equal hashing the whole body."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from engine.domain.model import canonical_json
from engine.domain.records import RECORD_FORMAT, HistoryRecord

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    seq=st.integers(min_value=1, max_value=10**6),
    at=st.text(max_size=40),
    actor=st.text(max_size=40),
    event=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    effects=st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), max_size=5),
)
def test_assembled_digest_equals_hash_of_the_canonical_body(
    seq: int, at: str, actor: str, event: dict[str, object], effects: list[dict[str, object]]
) -> None:
    record = HistoryRecord.seal(
        seq=seq,
        at=at,
        actor=actor,
        model_hash="m" * 64,
        event=event,
        effects=effects,
        prev_hash="p" * 64,
    )
    body = {
        "format": RECORD_FORMAT,
        "seq": seq,
        "at": at,
        "actor": actor,
        "model_hash": "m" * 64,
        "event": event,
        "effects": effects,
        "prev_hash": "p" * 64,
    }
    assert record.hash == hashlib.sha256(canonical_json(body).encode()).hexdigest()
    assert record.hash_is_valid()
