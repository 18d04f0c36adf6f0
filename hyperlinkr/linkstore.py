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
    kind 4 Patch:             orjson {"c": code, "f": {changed fields}}
    kind 5 Create, once:      orjson {"i": key digest, "p": fingerprint},
                              a NUL byte, then the link's record

and is at most `MAX_MUTATION_BYTES`, sized for a 2048-character ASCII URL
plus the record's metadata.

Besides `links`, the writer keeps two indexes in the same transactions:
`urls` maps (digest of the URL, code) to nothing, so links to one URL can
be found by a prefix scan; `idempotency` maps the digest of a client's
idempotency key to the code it created and a fingerprint of the request,
so a repeated create finds the first answer (and a different request
under the same key is told so). A "create once" whose key is already
recorded creates nothing.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lmdb
import orjson

from hyperlinkr.errors import RecordError, StoreError
from hyperlinkr.links import Link, decode_record, encode_record
from hyperlinkr.storage import IDEMPOTENCY_DB, LINKS_DB, OUTBOX_DB, URLS_DB

__all__ = [
    "MAX_MUTATION_BYTES",
    "PATCH_FIELDS",
    "Create",
    "Delete",
    "Idempotency",
    "LinkReader",
    "LinkWriter",
    "Mutation",
    "MutationKind",
    "Patch",
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
    PATCH = 4
    CREATE_ONCE = 5


# Patchable Link attributes, by their one-letter wire names.
PATCH_FIELDS = {
    "u": "url",
    "x": "expires_at_ms",
    "s": "redirect_status",
    "e": "enabled",
    "q": "forward_query",
}
_URL_DIGEST_BYTES = 16


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A client's idempotency key (as a digest) and its request's fingerprint."""

    key_digest: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Create:
    """Store a new link; an existing link with the same code is kept.

    With `once`, nothing is created if its key digest was already used.
    """

    link: Link
    once: Idempotency | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """Replace an existing link; nothing happens if the code is unknown."""

    link: Link


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove the link with this code, if there is one."""

    code: str


@dataclass(frozen=True, slots=True)
class Patch:
    """Change some fields of an existing link; wire names in PATCH_FIELDS."""

    code: str
    fields: dict[str, Any]


Mutation = Create | Update | Delete | Patch


def url_digest(url: str) -> bytes:
    return hashlib.sha256(url.encode()).digest()[:_URL_DIGEST_BYTES]


class LinkReader:
    """Reads links; safe to use from any process that opened its own env."""

    def __init__(self, env: lmdb.Environment) -> None:
        self._env = env
        self._db = env.open_db(LINKS_DB)

    def get(self, code: str) -> Link | None:
        """The link stored under `code`, or None."""
        data = self.record(code)
        return None if data is None else decode_record(data)

    def record(self, code: str) -> bytes | None:
        """The stored bytes of `code`'s link (see `encode_record`), or None."""
        try:
            with self._env.begin(db=self._db, buffers=False) as txn:
                data: bytes | None = txn.get(code.encode("utf-8"))
        except lmdb.Error as exc:
            raise StoreError(f"reading link {code!r} from LMDB failed: {exc}") from exc
        return data

    def with_url(self, url: str, limit: int = 20) -> list[Link]:
        """Up to `limit` links whose target is exactly `url`."""
        prefix = url_digest(url)
        links: list[Link] = []
        try:
            with self._env.begin() as txn:
                cursor = txn.cursor(db=self._env.open_db(URLS_DB))
                found = cursor.set_range(prefix)
                while found and len(links) < limit:
                    key = bytes(cursor.key())
                    if not key.startswith(prefix):
                        break
                    data = txn.get(key[len(prefix) :], db=self._db)
                    if data is not None:
                        links.append(decode_record(data))
                    found = cursor.next()
        except lmdb.Error as exc:
            raise StoreError(f"reading the URL index failed: {exc}") from exc
        return [link for link in links if link.url == url]

    def idempotent(self, key_digest: str) -> tuple[str, str] | None:
        """(code, fingerprint) recorded for an idempotency key, or None."""
        try:
            with self._env.begin(db=self._env.open_db(IDEMPOTENCY_DB)) as txn:
                data = txn.get(key_digest.encode())
        except lmdb.Error as exc:
            raise StoreError(f"reading the idempotency index failed: {exc}") from exc
        if data is None:
            return None
        record = orjson.loads(data)
        return str(record["c"]), str(record["p"])

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
        self._urls = env.open_db(URLS_DB)
        self._idempotency = env.open_db(IDEMPOTENCY_DB)
        self._outbox = env.open_db(OUTBOX_DB)

    def apply_and_record(self, mutations: Sequence[Mutation]) -> list[bool]:
        """`apply`, and record what changed in the outbox, in one commit.

        The outbox gets the resulting state, not the request: a Patch is
        recorded as an Update carrying the whole record, so applying the
        outbox elsewhere needs nothing but the events themselves.
        """
        return self.apply(mutations, record=True)

    def outbox(self, limit: int) -> list[tuple[bytes, Mutation]]:
        """The oldest `limit` unpublished changes, with their outbox keys."""
        with self._env.begin(db=self._outbox) as txn:
            cursor = txn.cursor()
            entries = []
            for key, value in cursor:
                entries.append((bytes(key), decode_mutation(value)))
                if len(entries) >= limit:
                    break
        return entries

    def forget_published(self, keys: Sequence[bytes]) -> None:
        with self._env.begin(write=True, db=self._outbox) as txn:
            for key in keys:
                txn.delete(key)

    def apply(self, mutations: Sequence[Mutation], record: bool = False) -> list[bool]:
        """Commit every mutation in one durable transaction.

        Returns, per mutation, whether it changed anything: False for a
        Create whose code exists, an Update or Delete of an unknown code.
        Raises StoreError if the commit fails; then nothing was applied.
        """
        if not mutations:
            return []
        try:
            with self._env.begin(write=True, db=self._db) as txn:
                results = [self._apply_one(txn, mutation) for mutation in mutations]
                if record:
                    self._record(txn, mutations, results)
        except lmdb.Error as exc:
            raise StoreError(
                f"committing {len(mutations)} link mutations to LMDB failed "
                f"({exc}); none were applied. If the map is full, raise "
                "HYPERLINKR_LMDB_MAP_SIZE_MB"
            ) from exc
        logger.debug("committed %d link mutations", len(mutations))
        return results

    def _apply_one(self, txn: lmdb.Transaction, mutation: Mutation) -> bool:
        if isinstance(mutation, Create):
            return self._create(txn, mutation)
        code = mutation.link.code if isinstance(mutation, Update) else mutation.code
        key = code.encode("utf-8")
        data = txn.get(key)
        if data is None:
            return False
        old = decode_record(data)
        if isinstance(mutation, Delete):
            txn.delete(url_digest(old.url) + key, db=self._urls)
            return bool(txn.delete(key))
        new = mutation.link if isinstance(mutation, Update) else _patched(old, mutation)
        if new.url != old.url:
            txn.delete(url_digest(old.url) + key, db=self._urls)
            txn.put(url_digest(new.url) + key, b"", db=self._urls)
        return bool(txn.put(key, encode_record(new)))

    def _record(
        self,
        txn: lmdb.Transaction,
        mutations: Sequence[Mutation],
        results: Sequence[bool],
    ) -> None:
        cursor = txn.cursor(db=self._outbox)
        seq = int.from_bytes(cursor.key(), "big") + 1 if cursor.last() else 1
        for mutation, changed in zip(mutations, results, strict=True):
            if not changed:
                continue
            event = _event(txn, mutation)
            txn.put(seq.to_bytes(8, "big"), encode_mutation(event), db=self._outbox)
            seq += 1

    def _create(self, txn: lmdb.Transaction, mutation: Create) -> bool:
        link, once = mutation.link, mutation.once
        key = link.code.encode("utf-8")
        if once is not None:
            if txn.get(once.key_digest.encode(), db=self._idempotency) is not None:
                return False
        if not txn.put(key, encode_record(link), overwrite=False):
            return False
        txn.put(url_digest(link.url) + key, b"", db=self._urls)
        if once is not None:
            record = orjson.dumps({"c": link.code, "p": once.fingerprint})
            txn.put(once.key_digest.encode(), record, db=self._idempotency)
        return True


def _event(txn: lmdb.Transaction, mutation: Mutation) -> Mutation:
    """What other nodes must apply to reach the state `mutation` left."""
    if isinstance(mutation, Create):
        return Create(mutation.link)
    if isinstance(mutation, Delete):
        return mutation
    code = mutation.link.code if isinstance(mutation, Update) else mutation.code
    data = txn.get(code.encode("utf-8"))
    if data is None:
        return Delete(code)
    return Update(decode_record(data))


def _patched(link: Link, patch: Patch) -> Link:
    changes = {PATCH_FIELDS[name]: value for name, value in patch.fields.items()}
    return dataclasses.replace(link, **changes)


def encode_mutation(mutation: Mutation) -> bytes:
    """The write-ring form of `mutation`; RecordError if it does not fit."""
    if isinstance(mutation, Delete):
        data = bytes((MutationKind.DELETE,)) + mutation.code.encode("utf-8")
    elif isinstance(mutation, Patch):
        body = orjson.dumps({"c": mutation.code, "f": mutation.fields})
        data = bytes((MutationKind.PATCH,)) + body
    elif isinstance(mutation, Create) and mutation.once is not None:
        once = orjson.dumps(
            {"i": mutation.once.key_digest, "p": mutation.once.fingerprint}
        )
        record = encode_record(mutation.link)
        data = bytes((MutationKind.CREATE_ONCE,)) + once + b"\0" + record
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
            f"mutation kind {data[0]} is unknown; expected 1 to 5 "
            "(written by another Hyperlinkr version?)"
        ) from exc
    payload = bytes(data[1:])
    if kind is MutationKind.DELETE:
        return Delete(_utf8(payload))
    if kind is MutationKind.PATCH:
        return _decode_patch(payload)
    if kind is MutationKind.CREATE_ONCE:
        return _decode_create_once(payload)
    link = decode_record(payload)
    return Create(link) if kind is MutationKind.CREATE else Update(link)


def _json(payload: bytes, what: str) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"{what} is not valid JSON: {exc}") from exc


def _decode_patch(payload: bytes) -> Patch:
    body = _json(payload, "patch mutation")
    try:
        code, fields = body["c"], body["f"]
    except (KeyError, TypeError) as exc:
        raise RecordError(f"patch mutation lacks {exc}") from exc
    if not isinstance(code, str) or not isinstance(fields, dict):
        raise RecordError("patch mutation has a malformed code or field map")
    unknown = set(fields) - set(PATCH_FIELDS)
    if unknown:
        raise RecordError(f"patch mutation has unknown fields {sorted(unknown)}")
    return Patch(code, fields)


def _decode_create_once(payload: bytes) -> Create:
    head, separator, record = payload.partition(b"\0")
    body = _json(head, "create-once mutation")
    if not separator or not isinstance(body, dict):
        raise RecordError("create-once mutation is malformed")
    try:
        once = Idempotency(str(body["i"]), str(body["p"]))
    except KeyError as exc:
        raise RecordError(f"create-once mutation lacks {exc}") from exc
    return Create(decode_record(record), once)


def _utf8(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"delete mutation code is not UTF-8: {exc}") from exc
