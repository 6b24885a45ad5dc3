"""The default :class:`~waflow.store.base.Store`: one SQLite file in WAL mode.

Every method is one transaction (``BEGIN IMMEDIATE``), so several processes can share the file:
leases keep them from handling the same event twice, and a crashed process's leases simply expire.
The schema is versioned (``PRAGMA user_version``) and migrated forward on open. Commits are
``synchronous=FULL`` by default: a webhook answered 200 survives a power cut, not only a crash.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, TypeVar

from waflow.store.base import InboxItem, InboxState, MessageRecord, NewInboxItem, StatusUpdate

__all__ = ["MIGRATIONS", "SQLiteStore"]

T = TypeVar("T")

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
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(f"PRAGMA synchronous = {synchronous}")
        self._migrate()

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://:memory:``."""
        if not url.startswith("sqlite://"):
            raise ValueError(f"not a sqlite URL: {url}")
        path = url[len("sqlite://") :]
        path = path[1:] if path.startswith("/") else path
        return cls(path or ":memory:")

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

    async def inbox_add(self, items: Sequence[NewInboxItem], now: datetime) -> list[bool]:
        def add(db: sqlite3.Connection) -> list[bool]:
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

        return self._run(add)

    async def inbox_claim(
        self, customer: str, now: datetime, lease_seconds: float, owner: str
    ) -> InboxItem | None:
        def claim(db: sqlite3.Connection) -> InboxItem | None:
            row = db.execute(
                "SELECT * FROM inbox WHERE customer = ? AND state = 'pending' ORDER BY seq LIMIT 1",
                (customer,),
            ).fetchone()
            if row is None or row["next_attempt_at"] > _ts(now):
                return None
            if row["lease_until"] is not None and row["lease_until"] > _ts(now):
                return None
            until = _ts(now) + lease_seconds
            db.execute(
                "UPDATE inbox SET lease_owner = ?, lease_until = ? WHERE key = ?",
                (owner, until, row["key"]),
            )
            item = _row_item(row)
            return InboxItem(**{**item.__dict__, "lease_owner": owner, "lease_until": _dt(until)})

        return self._run(claim)

    async def inbox_complete(self, key: str, owner: str) -> None:
        self._run(
            lambda db: db.execute(
                "UPDATE inbox SET state = 'done', attempts = attempts + 1, lease_owner = NULL,"
                " lease_until = NULL WHERE key = ? AND lease_owner = ? AND state = 'pending'",
                (key, owner),
            )
        )

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
            return [
                row["customer"]
                for row in rows
                if row["next_attempt_at"] <= stamp
                and (row["lease_until"] is None or row["lease_until"] <= stamp)
            ][:limit]

        return self._run(due)

    async def inbox_get(self, key: str) -> InboxItem | None:
        def get(db: sqlite3.Connection) -> InboxItem | None:
            row = db.execute("SELECT * FROM inbox WHERE key = ?", (key,)).fetchone()
            return None if row is None else _row_item(row)

        return self._run(get)

    async def inbox_dead(self, limit: int = 100) -> list[InboxItem]:
        def dead(db: sqlite3.Connection) -> list[InboxItem]:
            rows = db.execute(
                "SELECT * FROM inbox WHERE state = 'dead' ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
            return [_row_item(row) for row in rows]

        return self._run(dead)

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
                "INSERT OR REPLACE INTO message_status (message_id, record) VALUES (?, ?)",
                (update.message_id, _record_to_json(updated)),
            )
            return updated

        return self._run(record)

    async def message_record(self, message_id: str) -> MessageRecord | None:
        def get(db: sqlite3.Connection) -> MessageRecord | None:
            row = db.execute(
                "SELECT record FROM message_status WHERE message_id = ?", (message_id,)
            ).fetchone()
            return None if row is None else _record_from_json(row["record"])

        return self._run(get)

    async def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"
