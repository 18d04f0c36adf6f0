"""The click journal: ring records the analytics actor has committed but not merged.

Merging clicks into the per-link stats is the expensive part of counting
(each touched link is read, merged and rewritten), while the ring must be
freed often under load, so that a restarted actor finds room. The journal
separates the two: the actor commits the raw records it took as one LMDB
value, in the transaction that moves the ring checkpoint past them, and
advances the ring. It merges once per flush interval: one transaction of
the stats environment adds every journaled click to the stats and
records the sequence number of the last entry it covered
(`workers.analytics.MERGED_THROUGH_KEY`); the entries are deleted after
it. A restarted actor skips entries at or below that number and reads
the rest back into its aggregator before it peeks the ring
(`workers.analytics`, Exactly once).

Entries live in the journal environment (`hyperlinkr.storage`,
`HYPERLINKR_DATA_DIR/journal`), in its meta database beside the ring
checkpoint, under `JOURNAL_PREFIX` and an 8-byte big-endian sequence
number, so entries sort in the order they were written. That environment
is apart from the stats so that journal commits go on, freeing the ring,
while a merge's write transaction is open. Its value is one or more chunks,
back to back, each what one peek of the ring took (so packing is spread
over the polls instead of one burst at the commit); a chunk, little
endian::

    offset  size     field
    0       4        record count n, u32
    4       2n       each record's length in bytes, u16
    4+2n    ...      the records, back to back
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import lmdb

__all__ = [
    "JOURNAL_PREFIX",
    "JournalEntry",
    "JournalError",
    "journal_key",
    "pack_records",
    "read_journal",
    "unpack_records",
]

JOURNAL_PREFIX = b"analytics.click_journal."
_COUNT = struct.Struct("<I")


class JournalError(ValueError):
    """A journal entry that does not decode to the records it was written with."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    key: bytes
    sequence: int
    records: list[bytes]
    error: str | None = None  # why the value did not decode (then no records)


def journal_key(sequence: int) -> bytes:
    return JOURNAL_PREFIX + sequence.to_bytes(8, "big")


def pack_records(records: Sequence[bytes]) -> bytes:
    """`records` as one chunk of a journal value."""
    count = len(records)
    # A u16 holds a click record's length (at most 512 bytes); struct.error
    # says so if a longer one ever came.
    lengths = struct.pack(f"<{count}H", *map(len, records))
    return b"".join((_COUNT.pack(count), lengths, *records))


def unpack_records(value: bytes | memoryview) -> list[bytes]:
    """The records of one journal value, every chunk's in turn; raise
    `JournalError` if it is not one."""
    view = memoryview(value)
    records: list[bytes] = []
    start = 0
    while start < len(view):
        if len(view) - start < _COUNT.size:
            raise JournalError(
                f"journal chunk at byte {start} is {len(view) - start} bytes; "
                "too short to count"
            )
        (count,) = _COUNT.unpack_from(view, start)
        offset = start + _COUNT.size + 2 * count
        if len(view) < offset:
            raise JournalError(
                f"journal chunk at byte {start} of {count} records ends at byte "
                f"{len(view)}; its lengths alone reach {offset}"
            )
        lengths = struct.unpack_from(f"<{count}H", view, start + _COUNT.size)
        end = offset + sum(lengths)
        if end > len(view):
            raise JournalError(
                f"journal chunk at byte {start} of {count} records ends at byte "
                f"{len(view)}; its records reach {end}"
            )
        for length in lengths:
            records.append(bytes(view[offset : offset + length]))
            offset += length
        start = end
    return records


def read_journal(txn: lmdb.Transaction, db: lmdb._Database) -> list[JournalEntry]:
    """Every journal entry in `db`, oldest first.

    An entry that does not decode comes back with no records and its
    `error`, for the caller to log: the next merge must still delete it.
    """
    entries: list[JournalEntry] = []
    cursor = txn.cursor(db=db)
    if not cursor.set_range(JOURNAL_PREFIX):
        return entries
    for raw_key, value in cursor:
        key = bytes(raw_key)
        if not key.startswith(JOURNAL_PREFIX):
            break
        sequence = int.from_bytes(key[len(JOURNAL_PREFIX) :], "big")
        try:
            entries.append(JournalEntry(key, sequence, unpack_records(value)))
        except JournalError as exc:
            entries.append(JournalEntry(key, sequence, [], str(exc)))
    return entries
