"""Identifiers made in bulk are real, distinct, time-ordered UUIDv7s."""

import time
import uuid

from gaas.core.ids import new_id, new_ids


def test_bulk_ids_are_distinct_ordered_uuid7_of_now():
    before = time.time_ns() // 1_000_000
    ids = new_ids(10_000)  # more than the 12-bit counter holds: the millisecond moves on
    assert len(set(ids)) == 10_000 and ids == sorted(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 and type(i) is uuid.UUID for i in ids)
    assert before <= ids[0].int >> 80 <= before + 1000
    assert new_ids(0) == [] and new_id().version == 7
