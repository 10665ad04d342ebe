"""Forgetting a resident, free of I/O: how a forgotten resident is recognised without keeping their id.

A resident who asked to be forgotten is remembered only as the SHA-256 digest of their id, with the tombstone that
replaces it (the same in every service). An event that still names them (published before its producer applied the
erasure) is read as if it named the tombstone: whatever it says, nothing about them is stored again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from buurtkracht_contracts import Envelope


def digest(person_id: str) -> bytes:
    """What stands for a forgotten resident's id: it recognises the id, and cannot be read back as it."""
    return hashlib.sha256(person_id.encode()).digest()


def with_tombstones(value: Any, tombstones: dict[str, str]) -> Any:
    """Decoded JSON `value` with every string that is a key of `tombstones` (a value or a key) replaced by its
    tombstone, wherever it stands."""
    if isinstance(value, str):
        return tombstones.get(value, value)
    if isinstance(value, list):
        return [with_tombstones(item, tombstones) for item in value]
    if isinstance(value, dict):
        return {tombstones.get(key, key): with_tombstones(item, tombstones) for key, item in value.items()}
    return value


def json_with_tombstones(text: str, tombstones: dict[str, str]) -> str:
    """A JSON text (a webhook delivery's CloudEvent) with `with_tombstones` applied; the same text when it names
    none of them."""
    value = json.loads(text)
    replaced = with_tombstones(value, tombstones)
    return text if replaced == value else json.dumps(replaced, separators=(",", ":"), ensure_ascii=False)


def tombstoned(envelope: Envelope, tombstones: dict[str, str]) -> Envelope:
    """`envelope` naming each forgotten resident of `tombstones` (id -> tombstone) by their tombstone instead."""
    return envelope.model_copy(
        update={
            "data": with_tombstones(envelope.data, tombstones),
            "subject": tombstones.get(envelope.subject, envelope.subject),
        }
    )
