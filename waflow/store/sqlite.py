"""The default :class:`~waflow.store.base.Store`: one SQLite file in WAL mode.

Every method that writes is one transaction (``BEGIN IMMEDIATE``), so several processes can share
the file: leases keep them from handling the same event twice, and a crashed process's leases simply
expire. A read of one statement needs no transaction (it sees one committed state on its own) and
goes through a connection of its own, so in WAL mode it never waits for a write. The outbox's batch
calls (:meth:`SQLiteStore.outbox_claim`, :meth:`SQLiteStore.outbox_complete_many`) run in a worker
thread: a drain goes on sending while a batch is written and synced to disk.
The schema is versioned (``PRAGMA user_version``) and migrated forward on open. Commits are
``synchronous=FULL`` by default: a webhook answered 200 survives a power cut, not only a crash.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from waflow.errors import ConcurrentUpdateError, ConfigError
from waflow.store.base import (
    LEASE_RAN_OUT,
    USED_HANDOFF,
    Commit,
    Document,
    InboxItem,
    InboxState,
    MessageRecord,
    NewInboxItem,
    OutboxCompletion,
    OutboxItem,
    OutboxState,
    StatusUpdate,
    first_new_customer,
)

__all__ = ["MIGRATIONS", "SQLiteStore"]

T = TypeVar("T")

#: Ids bound in one statement at most (SQLite before 3.32 allows 999 parameters).
_MAX_PARAMETERS = 500

#: Schema migrations, applied in order; the database's user_version counts those applied.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE inbox (
        key TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        customer TEXT NOT NULL,
        event TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        received_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        lease_owner TEXT,
        lease_until REAL
    );
    CREATE INDEX inbox_pending ON inbox (customer, seq) WHERE state = 'pending';
    CREATE INDEX inbox_dead ON inbox (seq) WHERE state = 'dead';
    CREATE INDEX inbox_done ON inbox (received_at) WHERE state = 'done';
    CREATE TABLE message_status (
        message_id TEXT PRIMARY KEY,
        record TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE documents (
        id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        version INTEGER NOT NULL
    );
    CREATE TABLE id_index (
        key TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL
    );
    CREATE TABLE handoffs (
        code TEXT PRIMARY KEY,
        record TEXT NOT NULL
    );
    CREATE TABLE deadlines (
        customer_id TEXT PRIMARY KEY,
        at REAL NOT NULL
    );
    CREATE INDEX deadlines_at ON deadlines (at);
    CREATE TABLE locks (
        key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until REAL NOT NULL
    );
    CREATE TABLE outbox (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        customer TEXT NOT NULL,
        channel TEXT NOT NULL,
        business_id TEXT NOT NULL,
        message TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        message_id TEXT,
        sent_at REAL,
        lease_owner TEXT,
        lease_until REAL
    );
    CREATE INDEX outbox_pending ON outbox (customer, seq) WHERE state = 'pending';
    CREATE INDEX outbox_parked ON outbox (seq) WHERE state = 'parked';
    """,
    # Each customer's head (oldest pending message) with the time it can next be handed out, so
    # a claim is a range scan of due heads instead of a search for every customer's oldest row;
    # and indexes to prune sent messages and delivery records by age.
    """
    CREATE TABLE outbox_heads (
        customer TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        ready_at REAL NOT NULL
    );
    CREATE INDEX outbox_heads_ready ON outbox_heads (ready_at, seq);
    INSERT INTO outbox_heads (customer, seq, ready_at)
        SELECT customer, seq, MAX(next_attempt_at, COALESCE(lease_until, 0)) FROM outbox AS o
        WHERE state = 'pending' AND seq = (SELECT MIN(seq) FROM outbox
            WHERE customer = o.customer AND state = 'pending');
    CREATE INDEX outbox_sent ON outbox (sent_at) WHERE state = 'sent';
    ALTER TABLE message_status ADD COLUMN updated_at REAL;
    UPDATE message_status SET updated_at = CAST(strftime('%s', 'now') AS REAL);
    CREATE INDEX message_status_updated ON message_status (updated_at);
    """,
]


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc)


def _row_item(row: sqlite3.Row) -> InboxItem:
    state: InboxState = row["state"]
    return InboxItem(
        key=row["key"],
        customer=row["customer"],
        seq=row["seq"],
        event=json.loads(row["event"]),
        state=state,
        attempts=row["attempts"],
        received_at=_dt(row["received_at"]),  # type: ignore[arg-type]
        next_attempt_at=_dt(row["next_attempt_at"]),  # type: ignore[arg-type]
        last_error=row["last_error"],
        lease_owner=row["lease_owner"],
        lease_until=_dt(row["lease_until"]),
    )


def _row_outbox(
    row: sqlite3.Row, lease_owner: str | None = None, lease_until: datetime | None = None
) -> OutboxItem:
    """The item of ``row``; with ``lease_owner``, as just leased to it until ``lease_until``."""
    state: OutboxState = row["state"]
    return OutboxItem(
        id=row["id"],
        customer=row["customer"],
        seq=row["seq"],
        channel=row["channel"],
        business_id=row["business_id"],
        message=json.loads(row["message"]),
        state=state,
        attempts=row["attempts"],
        created_at=_dt(row["created_at"]),  # type: ignore[arg-type]
        next_attempt_at=_dt(row["next_attempt_at"]),  # type: ignore[arg-type]
        last_error=row["last_error"],
        message_id=row["message_id"],
        sent_at=_dt(row["sent_at"]),
        lease_owner=lease_owner or row["lease_owner"],
        lease_until=lease_until if lease_owner else _dt(row["lease_until"]),
    )


def _sync_head(db: sqlite3.Connection, customer: str) -> None:
    """Make ``outbox_heads`` hold the customer's current head (or nothing), after a change to the
    customer's pending messages: ready when due and not leased."""
    _sync_heads(db, [customer])


def _sync_heads(db: sqlite3.Connection, customers: Iterable[str]) -> None:
    """:func:`_sync_head` for several customers, one statement each for all of them."""
    rows = [(customer,) for customer in customers]
    db.executemany("DELETE FROM outbox_heads WHERE customer = ?", rows)
    db.executemany(
        "INSERT INTO outbox_heads (customer, seq, ready_at)"
        " SELECT customer, seq, MAX(next_attempt_at, COALESCE(lease_until, 0)) FROM outbox"
        " WHERE customer = ? AND state = 'pending' ORDER BY seq LIMIT 1",
        rows,
    )


def _complete(db: sqlite3.Connection, completions: Sequence[OutboxCompletion], owner: str) -> int:
    """Mark those of ``completions`` sent that ``owner`` still holds; return how many."""
    marks = ", ".join("?" * len(completions))  # only placeholders are formatted into the query
    query = "SELECT id, customer FROM outbox WHERE state = 'pending' AND lease_owner = ?"
    query += f" AND id IN ({marks})"
    held = {
        row["id"]: row["customer"]
        for row in db.execute(query, (owner, *(done.item_id for done in completions)))
    }
    db.executemany(
        "UPDATE outbox SET state = 'sent', attempts = attempts + 1, message_id = ?, sent_at = ?,"
        " lease_owner = NULL, lease_until = NULL WHERE id = ? AND state = 'pending'",
        [
            (done.message_id, _ts(done.sent_at), done.item_id)
            for done in completions
            if done.item_id in held
        ],
    )
    _sync_heads(db, set(held.values()))
    return len(held)


def _record_to_json(record: MessageRecord) -> str:
    return json.dumps(
        {
            "message_id": record.message_id,
            "status": record.status,
            "statuses": {name: _ts(at) for name, at in record.statuses.items()},
            "recipient": record.recipient,
            "errors": record.errors,
            "callback_data": record.callback_data,
        }
    )


def _record_from_json(text: str) -> MessageRecord:
    data = json.loads(text)
    data["statuses"] = {name: _dt(at) for name, at in data["statuses"].items()}
    return MessageRecord(**data)


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def _patiently(action: Callable[[], object], seconds: float) -> None:
    """Run ``action``, trying again for up to ``seconds`` while another connection locks the file.

    Workers started together on a new file race to switch it to WAL and to create the schema.
    SQLite refuses the switch at once, without waiting for its busy timeout, while another
    connection writes (say, creating the schema), so opening is retried here.
    """
    retrying = Retrying(
        retry=retry_if_exception(_is_busy),
        stop=stop_after_delay(seconds),
        wait=wait_exponential(multiplier=0.01, max=0.25),
        reraise=True,
    )
    retrying(action)


class SQLiteStore:
    """A store in the SQLite file at ``path`` (``":memory:"`` for a private in-memory database)."""

    def __init__(
        self,
        path: str | Path = "waflow.db",
        *,
        synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL",
        busy_timeout_ms: int = 10_000,
    ) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = self._connect(busy_timeout_ms)
        private = self.path in (":memory:", "")  # a second connection would see another database
        patience = busy_timeout_ms / 1000
        if not private:
            _patiently(lambda: self._db.execute("PRAGMA journal_mode = WAL"), patience)
        self._db.execute(f"PRAGMA synchronous = {synchronous}")
        _patiently(self._migrate, patience)
        self._reader, self._read_lock = self._db, self._lock
        if not private:
            self._reader, self._read_lock = self._connect(busy_timeout_ms), threading.Lock()
            self._reader.execute("PRAGMA query_only = 1")

    def _connect(self, busy_timeout_ms: int) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        return db

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://:memory:``."""
        if not url.startswith("sqlite://"):
            raise ValueError(f"not a sqlite URL: {url}")
        path = url[len("sqlite://") :]
        path = path[1:] if path.startswith("/") else path
        if not path:
            # Not silently a database that vanishes at exit: that would lose what was recorded.
            raise ConfigError(
                f"store URL {url!r} names no file: use sqlite:///waflow.db (or sqlite://:memory:"
                " for a private in-memory database)"
            )
        return cls(path)

    @property
    def schema_version(self) -> int:
        """How many migrations this database has had."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._transaction() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.path} has schema version {version}, newer than this waflow "
                    f"({len(MIGRATIONS)}); upgrade waflow"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._transaction() as db:
            return work(db)

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work``, one SELECT, outside a transaction: no write lock taken, nothing to commit."""
        with self._read_lock:
            return work(self._reader)

    async def _run_in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """:meth:`_run` in a worker thread; the event loop runs on while SQLite writes and syncs."""
        return await asyncio.to_thread(self._run, work)

    async def inbox_add(self, items: Sequence[NewInboxItem], now: datetime) -> list[bool]:
        return self._run(lambda db: self._add(db, items, now))

    async def inbox_claim(
        self, customer: str, now: datetime, lease_seconds: float, owner: str
    ) -> InboxItem | None:
        return self._run(lambda db: self._claim(db, customer, now, lease_seconds, owner))

    async def inbox_add_claim(
        self, items: Sequence[NewInboxItem], now: datetime, lease_seconds: float, owner: str
    ) -> tuple[list[bool], InboxItem | None]:
        def add_claim(db: sqlite3.Connection) -> tuple[list[bool], InboxItem | None]:
            added = self._add(db, items, now)
            customer = first_new_customer(items, added)
            if customer is None:
                return added, None
            return added, self._claim(db, customer, now, lease_seconds, owner)

        return self._run(add_claim)

    @staticmethod
    def _add(db: sqlite3.Connection, items: Sequence[NewInboxItem], now: datetime) -> list[bool]:
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM inbox").fetchone()[0]
        added = []
        for item in items:
            seq += 1
            cursor = db.execute(
                "INSERT OR IGNORE INTO inbox (key, seq, customer, event, state, received_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (item.key, seq, item.customer, json.dumps(item.event), _ts(now), _ts(now)),
            )
            added.append(cursor.rowcount == 1)
        return added

    @staticmethod
    def _claim(
        db: sqlite3.Connection, customer: str, now: datetime, lease_seconds: float, owner: str
    ) -> InboxItem | None:
        row = db.execute(
            "SELECT * FROM inbox WHERE customer = ? AND state = 'pending' ORDER BY seq LIMIT 1",
            (customer,),
        ).fetchone()
        if row is None or row["next_attempt_at"] > _ts(now):
            return None
        if row["lease_until"] is not None and row["lease_until"] > _ts(now):
            return None
        until = _ts(now) + lease_seconds
        item = _row_item(row)
        attempts, error = item.attempts, item.last_error
        if item.lease_owner is not None:  # its holder stopped before settling it: an attempt
            attempts, error = attempts + 1, LEASE_RAN_OUT
        db.execute(
            "UPDATE inbox SET lease_owner = ?, lease_until = ?, attempts = ?, last_error = ?"
            " WHERE key = ?",
            (owner, until, attempts, error, row["key"]),
        )
        return InboxItem(
            **{
                **item.__dict__,
                "lease_owner": owner,
                "lease_until": _dt(until),
                "attempts": attempts,
                "last_error": error,
            }
        )

    async def inbox_complete(self, key: str, owner: str) -> bool | None:
        def complete(db: sqlite3.Connection) -> bool | None:
            settled = db.execute(
                "UPDATE inbox SET state = 'done', attempts = attempts + 1, lease_owner = NULL,"
                " lease_until = NULL WHERE key = ? AND lease_owner = ? AND state = 'pending'",
                (key, owner),
            )
            if settled.rowcount != 1:
                return None  # not this owner's lease: nothing changed
            more = db.execute(
                "SELECT EXISTS (SELECT 1 FROM inbox WHERE state = 'pending' AND customer ="
                " (SELECT customer FROM inbox WHERE key = ?))",
                (key,),
            ).fetchone()[0]
            return bool(more)

        return self._run(complete)

    async def inbox_renew(self, key: str, owner: str, until: datetime) -> bool:
        renewed: int = self._run(
            lambda db: (
                db.execute(
                    "UPDATE inbox SET lease_until = ? WHERE key = ? AND lease_owner = ?"
                    " AND state = 'pending'",
                    (_ts(until), key, owner),
                ).rowcount
            )
        )
        return renewed == 1

    async def inbox_fail(self, key: str, owner: str, error: str, retry_at: datetime | None) -> None:
        state = "pending" if retry_at is not None else "dead"
        self._run(
            lambda db: db.execute(
                "UPDATE inbox SET state = ?, attempts = attempts + 1, last_error = ?,"
                " next_attempt_at = COALESCE(?, next_attempt_at), lease_owner = NULL,"
                " lease_until = NULL WHERE key = ? AND lease_owner = ? AND state = 'pending'",
                (state, error, None if retry_at is None else _ts(retry_at), key, owner),
            )
        )

    async def inbox_due_customers(self, now: datetime, limit: int = 100) -> list[str]:
        def due(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT customer, next_attempt_at, lease_until, seq FROM inbox AS i"
                " WHERE state = 'pending' AND seq = (SELECT MIN(seq) FROM inbox"
                " WHERE customer = i.customer AND state = 'pending') ORDER BY seq",
            ).fetchall()
            stamp = _ts(now)
            heads = []
            for row in rows:
                due = max(row["next_attempt_at"], row["lease_until"] or row["next_attempt_at"])
                if due <= stamp:  # due longest first, then by arrival (as outbox_claim)
                    heads.append((due, row["seq"], row["customer"]))
            return [customer for _, _, customer in sorted(heads)[:limit]]

        return self._read(due)

    async def inbox_get(self, key: str) -> InboxItem | None:
        def get(db: sqlite3.Connection) -> InboxItem | None:
            row = db.execute("SELECT * FROM inbox WHERE key = ?", (key,)).fetchone()
            return None if row is None else _row_item(row)

        return self._read(get)

    async def inbox_dead(self, limit: int = 100) -> list[InboxItem]:
        def dead(db: sqlite3.Connection) -> list[InboxItem]:
            rows = db.execute(
                "SELECT * FROM inbox WHERE state = 'dead' ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
            return [_row_item(row) for row in rows]

        return self._read(dead)

    async def inbox_replay(self, key: str, now: datetime) -> bool:
        def replay(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE inbox SET state = 'pending', attempts = 0, next_attempt_at = ?"
                " WHERE key = ? AND state = 'dead'",
                (_ts(now), key),
            )
            return cursor.rowcount == 1

        return self._run(replay)

    async def inbox_prune(self, before: datetime) -> int:
        def prune(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "DELETE FROM inbox WHERE state = 'done' AND received_at < ?", (_ts(before),)
            )
            return cursor.rowcount

        return self._run(prune)

    async def record_status(self, update: StatusUpdate) -> MessageRecord:
        def record(db: sqlite3.Connection) -> MessageRecord:
            row = db.execute(
                "SELECT record FROM message_status WHERE message_id = ?", (update.message_id,)
            ).fetchone()
            current = None if row is None else _record_from_json(row["record"])
            updated = (
                MessageRecord.first(update) if current is None else current.with_update(update)
            )
            db.execute(
                "INSERT OR REPLACE INTO message_status (message_id, record, updated_at)"
                " VALUES (?, ?, ?)",
                (update.message_id, _record_to_json(updated), _ts(max(updated.statuses.values()))),
            )
            return updated

        return self._run(record)

    async def message_record(self, message_id: str) -> MessageRecord | None:
        def get(db: sqlite3.Connection) -> MessageRecord | None:
            row = db.execute(
                "SELECT record FROM message_status WHERE message_id = ?", (message_id,)
            ).fetchone()
            return None if row is None else _record_from_json(row["record"])

        return self._read(get)

    async def status_prune(self, before: datetime) -> int:
        def prune(db: sqlite3.Connection) -> int:
            cursor = db.execute("DELETE FROM message_status WHERE updated_at < ?", (_ts(before),))
            return cursor.rowcount

        return self._run(prune)

    # -- customers ---------------------------------------------------------------------------

    async def document_get(self, customer_id: str) -> Document | None:
        def get(db: sqlite3.Connection) -> Document | None:
            row = db.execute(
                "SELECT data, version FROM documents WHERE id = ?", (customer_id,)
            ).fetchone()
            if row is None:
                return None
            return Document(customer_id, json.loads(row["data"]), row["version"])

        return self._read(get)

    async def documents_get(self, customer_ids: Sequence[str]) -> dict[str, Document]:
        def get(db: sqlite3.Connection) -> dict[str, Document]:
            found: dict[str, Document] = {}
            ids = list(dict.fromkeys(customer_ids))
            for start in range(0, len(ids), _MAX_PARAMETERS):
                chunk = ids[start : start + _MAX_PARAMETERS]
                marks = ", ".join("?" * len(chunk))  # only placeholders are formatted in
                query = "SELECT id, data, version FROM documents WHERE id IN"
                # fetchall(): no statement stays open on the reader, even if a row fails below
                # (an open one would pin the reader to an old snapshot for as long as it lives).
                rows = db.execute(f"{query} ({marks})", chunk).fetchall()
                for row in rows:
                    found[row["id"]] = Document(row["id"], json.loads(row["data"]), row["version"])
            return found

        if not customer_ids:
            return {}
        return self._read(get)

    async def index_lookup(self, keys: Sequence[str]) -> dict[str, str]:
        def lookup(db: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for key in keys:
                row = db.execute(
                    "SELECT customer_id FROM id_index WHERE key = ?", (key,)
                ).fetchone()
                if row is not None:
                    found[key] = row["customer_id"]
            return found

        return self._run(lookup)

    async def handoff_get(self, code: str) -> dict[str, Any] | None:
        def get(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute("SELECT record FROM handoffs WHERE code = ?", (code,)).fetchone()
            return None if row is None else dict(json.loads(row["record"]))

        return self._read(get)

    async def deadlines_due(self, now: datetime, limit: int = 100) -> list[tuple[str, datetime]]:
        def due(db: sqlite3.Connection) -> list[tuple[str, datetime]]:
            rows = db.execute(
                "SELECT customer_id, at FROM deadlines WHERE at <= ? ORDER BY at, customer_id LIMIT ?",
                (_ts(now), limit),
            ).fetchall()
            return [(row["customer_id"], _dt(row["at"])) for row in rows]  # type: ignore[misc]

        return self._read(due)

    async def commit(self, change: Commit) -> None:
        def apply(db: sqlite3.Connection) -> None:
            for document in change.save:
                row = db.execute(
                    "SELECT version FROM documents WHERE id = ?", (document.id,)
                ).fetchone()
                stored = 0 if row is None else row["version"]
                if stored != document.version:
                    raise ConcurrentUpdateError(
                        f"customer {document.id} is at version {stored}, not {document.version}"
                    )
            stored_now = {str(record["code"]) for record in change.handoffs}
            for code in change.handoffs_used:
                if code in stored_now:
                    continue
                if db.execute("SELECT 1 FROM handoffs WHERE code = ?", (code,)).fetchone() is None:
                    raise ConcurrentUpdateError(USED_HANDOFF)
            for document in change.save:
                db.execute(
                    "INSERT OR REPLACE INTO documents (id, data, version) VALUES (?, ?, ?)",
                    (document.id, json.dumps(document.data), document.version + 1),
                )
            for customer_id in change.delete:
                db.execute("DELETE FROM documents WHERE id = ?", (customer_id,))
                db.execute("DELETE FROM deadlines WHERE customer_id = ?", (customer_id,))
            for key, owner in change.index.items():
                if owner is None:
                    db.execute("DELETE FROM id_index WHERE key = ?", (key,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO id_index (key, customer_id) VALUES (?, ?)",
                        (key, owner),
                    )
            for deadline_owner, at in change.deadlines.items():
                if at is None:
                    db.execute("DELETE FROM deadlines WHERE customer_id = ?", (deadline_owner,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO deadlines (customer_id, at) VALUES (?, ?)",
                        (deadline_owner, _ts(at)),
                    )
            for record in change.handoffs:
                db.execute(
                    "INSERT OR REPLACE INTO handoffs (code, record) VALUES (?, ?)",
                    (str(record["code"]), json.dumps(record)),
                )
            for code in change.handoffs_used:
                db.execute("DELETE FROM handoffs WHERE code = ?", (code,))
            if change.outbox:
                seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]
                for new in change.outbox:
                    seq += 1
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO outbox (id, seq, customer, channel, business_id,"
                        " message, state, created_at, next_attempt_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                        (
                            new.id,
                            seq,
                            new.customer,
                            new.channel,
                            new.business_id,
                            json.dumps(new.message),
                            _ts(new.created_at),
                            _ts(new.created_at),
                        ),
                    )
                    if cursor.rowcount == 1:
                        # The new message heads its customer's queue only if the queue was empty.
                        db.execute(
                            "INSERT OR IGNORE INTO outbox_heads (customer, seq, ready_at)"
                            " VALUES (?, ?, ?)",
                            (new.customer, seq, _ts(new.created_at)),
                        )

        self._run(apply)

    # -- locks ---------------------------------------------------------------------------------

    async def lock_acquire(self, key: str, owner: str, ttl_seconds: float, now: datetime) -> bool:
        def acquire(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT owner, until FROM locks WHERE key = ?", (key,)).fetchone()
            if row is not None and row["owner"] != owner and row["until"] > _ts(now):
                return False
            db.execute(
                "INSERT OR REPLACE INTO locks (key, owner, until) VALUES (?, ?, ?)",
                (key, owner, _ts(now) + ttl_seconds),
            )
            return True

        return self._run(acquire)

    async def lock_release(self, key: str, owner: str) -> None:
        self._run(
            lambda db: db.execute("DELETE FROM locks WHERE key = ? AND owner = ?", (key, owner))
        )

    # -- outbox --------------------------------------------------------------------------------

    async def outbox_claim(
        self, now: datetime, lease_seconds: float, owner: str, limit: int = 50
    ) -> list[OutboxItem]:
        def claim(db: sqlite3.Connection) -> list[OutboxItem]:
            stamp = _ts(now)
            rows = db.execute(
                "SELECT o.* FROM outbox_heads AS h JOIN outbox AS o ON o.seq = h.seq"
                " WHERE h.ready_at <= ? ORDER BY h.ready_at, h.seq LIMIT ?",
                (stamp, limit),
            ).fetchall()
            until = stamp + lease_seconds
            db.executemany(
                "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE seq = ?",
                [(owner, until, row["seq"]) for row in rows],
            )
            # A leased head is next ready when its lease runs out (its retry time has passed).
            db.executemany(
                "UPDATE outbox_heads SET ready_at = ? WHERE customer = ?",
                [(until, row["customer"]) for row in rows],
            )
            leased_until = _dt(until)
            return [_row_outbox(row, owner, leased_until) for row in rows]

        def anything_due(db: sqlite3.Connection) -> bool:
            due = "SELECT 1 FROM outbox_heads WHERE ready_at <= ? LIMIT 1"
            return db.execute(due, (_ts(now),)).fetchone() is not None

        # Most drains find nothing due (one runs after every webhook): a read tells, without the
        # worker thread and the write transaction a claim takes.
        if not self._read(anything_due):
            return []
        return await self._run_in_thread(claim)

    async def outbox_complete(
        self, item_id: str, owner: str, message_id: str | None, now: datetime
    ) -> None:
        await self.outbox_complete_many([OutboxCompletion(item_id, message_id, now)], owner)

    async def outbox_complete_many(
        self, completions: Sequence[OutboxCompletion], owner: str
    ) -> int:
        def complete(db: sqlite3.Connection) -> int:
            completed = 0
            for start in range(0, len(completions), _MAX_PARAMETERS):
                completed += _complete(db, completions[start : start + _MAX_PARAMETERS], owner)
            return completed

        if not completions:
            return 0
        return await self._run_in_thread(complete)

    async def outbox_renew(self, item_ids: Sequence[str], owner: str, until: datetime) -> list[str]:
        def renew(db: sqlite3.Connection) -> list[str]:
            renewed: list[str] = []
            customers: list[str] = []
            for item_id in item_ids:
                row = db.execute(
                    "SELECT customer FROM outbox WHERE id = ? AND lease_owner = ?"
                    " AND state = 'pending'",
                    (item_id, owner),
                ).fetchone()
                if row is not None:
                    db.execute(
                        "UPDATE outbox SET lease_until = ? WHERE id = ?", (_ts(until), item_id)
                    )
                    renewed.append(item_id)
                    customers.append(row["customer"])
            # Once per customer (two of its messages can be leased at once after a retry);
            # a head is ready again when its lease ends.
            _sync_heads(db, dict.fromkeys(customers))
            return renewed

        if not item_ids:
            return []
        return await self._run_in_thread(renew)

    async def outbox_fail(
        self, item_id: str, owner: str, error: str, retry_at: datetime | None
    ) -> None:
        state = "pending" if retry_at is not None else "parked"

        def fail(db: sqlite3.Connection) -> None:
            row = db.execute(
                "SELECT customer FROM outbox WHERE id = ? AND lease_owner = ? AND state = 'pending'",
                (item_id, owner),
            ).fetchone()
            if row is None:
                return
            db.execute(
                "UPDATE outbox SET state = ?, attempts = attempts + 1, last_error = ?,"
                " next_attempt_at = COALESCE(?, next_attempt_at), lease_owner = NULL,"
                " lease_until = NULL WHERE id = ?",
                (state, error, None if retry_at is None else _ts(retry_at), item_id),
            )
            _sync_head(db, row["customer"])

        self._run(fail)

    async def outbox_get(self, item_id: str) -> OutboxItem | None:
        def get(db: sqlite3.Connection) -> OutboxItem | None:
            row = db.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)).fetchone()
            return None if row is None else _row_outbox(row)

        return self._read(get)

    async def outbox_list(self, state: OutboxState, limit: int = 100) -> list[OutboxItem]:
        query = (
            "SELECT * FROM outbox WHERE state = ? ORDER BY sent_at, seq LIMIT ?"
            if state == "sent"
            else "SELECT * FROM outbox WHERE state = ? ORDER BY seq LIMIT ?"
        )

        def listed(db: sqlite3.Connection) -> list[OutboxItem]:
            rows = db.execute(query, (state, limit)).fetchall()
            return [_row_outbox(row) for row in rows]

        return self._read(listed)

    async def outbox_retry(self, item_id: str, now: datetime) -> bool:
        def retry(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT customer FROM outbox WHERE id = ? AND state = 'parked'", (item_id,)
            ).fetchone()
            if row is None:
                return False
            db.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ? WHERE id = ?",
                (_ts(now), item_id),
            )
            _sync_head(db, row["customer"])  # back at its place by arrival: maybe the head again
            return True

        return self._run(retry)

    async def outbox_prune(self, sent_before: datetime, parked_before: datetime) -> int:
        def prune(db: sqlite3.Connection) -> int:
            sent = db.execute(
                "DELETE FROM outbox WHERE state = 'sent' AND sent_at < ?", (_ts(sent_before),)
            ).rowcount
            parked = db.execute(
                "DELETE FROM outbox WHERE state = 'parked' AND created_at < ?",
                (_ts(parked_before),),
            ).rowcount
            return sent + parked

        return self._run(prune)

    async def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"
