"""Links in LMDB: cheap reads from any process, group-committed writes.

Every process opens its own environment (`hyperlinkr.storage`); readers use
`LinkReader`, which begins a fresh read transaction per call so it always
sees the newest commit and never pins an old snapshot (which would stop
LMDB from reusing pages). The persister is the only process that writes,
through `LinkWriter.apply`, which commits a whole batch in one transaction:
one fsync for many mutations is what makes group commit cheap. Every
mutation in the batch becomes durable together, or none does.

Mutations reach the persister through the fixed-size shared write ring.
Their wire form is one kind byte followed by the payload:

    kind 1 Create, 2 Update:  the link's LMDB record (`encode_record`)
    kind 3 Delete:            the code, UTF-8

and is at most `MAX_MUTATION_BYTES`, sized for a 2048-character ASCII URL
plus the record's metadata.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import lmdb

from hyperlinkr.errors import RecordError, StoreError
from hyperlinkr.links import Link, decode_record, encode_record
from hyperlinkr.storage import LINKS_DB

__all__ = [
    "MAX_MUTATION_BYTES",
    "Create",
    "Delete",
    "LinkReader",
    "LinkWriter",
    "Mutation",
    "MutationKind",
    "Update",
    "decode_mutation",
    "encode_mutation",
]

logger = logging.getLogger(__name__)

MAX_MUTATION_BYTES = 2560


class MutationKind(enum.IntEnum):
    """The first byte of an encoded mutation."""

    CREATE = 1
    UPDATE = 2
    DELETE = 3


@dataclass(frozen=True, slots=True)
class Create:
    """Store a new link; an existing link with the same code is kept."""

    link: Link


@dataclass(frozen=True, slots=True)
class Update:
    """Replace an existing link; nothing happens if the code is unknown."""

    link: Link


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove the link with this code, if there is one."""

    code: str


Mutation = Create | Update | Delete


class LinkReader:
    """Reads links; safe to use from any process that opened its own env."""

    def __init__(self, env: lmdb.Environment) -> None:
        self._env = env
        self._db = env.open_db(LINKS_DB)

    def get(self, code: str) -> Link | None:
        """The link stored under `code`, or None."""
        try:
            with self._env.begin(db=self._db, buffers=False) as txn:
                data = txn.get(code.encode("utf-8"))
        except lmdb.Error as exc:
            raise StoreError(f"reading link {code!r} from LMDB failed: {exc}") from exc
        return None if data is None else decode_record(data)

    def count(self) -> int:
        """How many links are stored."""
        try:
            with self._env.begin(db=self._db) as txn:
                entries: int = txn.stat(self._db)["entries"]
        except lmdb.Error as exc:
            raise StoreError(f"counting links in LMDB failed: {exc}") from exc
        return entries


class LinkWriter:
    """Applies batches of mutations; only the persister should hold one."""

    def __init__(self, env: lmdb.Environment) -> None:
        self._env = env
        self._db = env.open_db(LINKS_DB)

    def apply(self, mutations: Sequence[Mutation]) -> list[bool]:
        """Commit every mutation in one durable transaction.

        Returns, per mutation, whether it changed anything: False for a
        Create whose code exists, an Update or Delete of an unknown code.
        Raises StoreError if the commit fails; then nothing was applied.
        """
        if not mutations:
            return []
        try:
            with self._env.begin(write=True, db=self._db) as txn:
                results = [_apply_one(txn, mutation) for mutation in mutations]
        except lmdb.Error as exc:
            raise StoreError(
                f"committing {len(mutations)} link mutations to LMDB failed "
                f"({exc}); none were applied. If the map is full, raise "
                "HYPERLINKR_LMDB_MAP_SIZE_MB"
            ) from exc
        logger.debug("committed %d link mutations", len(mutations))
        return results


def _apply_one(txn: lmdb.Transaction, mutation: Mutation) -> bool:
    if isinstance(mutation, Create):
        key = mutation.link.code.encode("utf-8")
        return bool(txn.put(key, encode_record(mutation.link), overwrite=False))
    if isinstance(mutation, Update):
        key = mutation.link.code.encode("utf-8")
        if txn.get(key) is None:
            return False
        return bool(txn.put(key, encode_record(mutation.link)))
    return bool(txn.delete(mutation.code.encode("utf-8")))


def encode_mutation(mutation: Mutation) -> bytes:
    """The write-ring form of `mutation`; RecordError if it does not fit."""
    if isinstance(mutation, Delete):
        data = bytes((MutationKind.DELETE,)) + mutation.code.encode("utf-8")
    elif isinstance(mutation, Create):
        data = bytes((MutationKind.CREATE,)) + encode_record(mutation.link)
    else:
        data = bytes((MutationKind.UPDATE,)) + encode_record(mutation.link)
    if len(data) > MAX_MUTATION_BYTES:
        # The URL policy keeps URLs ASCII and at most 2048 characters, which
        # always fits; this guards other callers.
        raise RecordError(
            f"encoded mutation is {len(data)} bytes; write-ring records hold "
            f"at most {MAX_MUTATION_BYTES}: shorten the URL or percent-encode "
            "its non-ASCII characters"
        )
    return data


def decode_mutation(data: bytes | memoryview) -> Mutation:
    """The mutation encoded in `data`; RecordError if it is malformed."""
    if len(data) < 2:
        raise RecordError(
            f"mutation is {len(data)} bytes; expected a kind byte and a payload"
        )
    try:
        kind = MutationKind(data[0])
    except ValueError as exc:
        raise RecordError(
            f"mutation kind {data[0]} is unknown; expected 1, 2 or 3 "
            "(written by another Hyperlinkr version?)"
        ) from exc
    payload = bytes(data[1:])
    if kind is MutationKind.DELETE:
        return Delete(_utf8(payload))
    link = decode_record(payload)
    return Create(link) if kind is MutationKind.CREATE else Update(link)


def _utf8(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"delete mutation code is not UTF-8: {exc}") from exc
