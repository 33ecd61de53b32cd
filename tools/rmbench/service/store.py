"""The service's SQLite database: users, registered boards, challenges, nodes and certificates.

Every write that depends on what it read runs in one `BEGIN IMMEDIATE` transaction, so concurrent
requests (one connection per thread) can never overspend a quota or reuse a challenge.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "claims.sqlite3"
SCHEMA_VERSION = "1"
DEFAULT_QUOTA = 5
_ALNUM = string.ascii_letters + string.digits

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    quota INTEGER NOT NULL CHECK (quota >= 0),
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    mac TEXT PRIMARY KEY,
    unique_id BLOB NOT NULL CHECK (length(unique_id) = 16),
    registered REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS challenges (
    auth_id TEXT PRIMARY KEY,
    mac TEXT NOT NULL,
    challenge TEXT NOT NULL,
    expires REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY,
    mac TEXT NOT NULL,
    user_id TEXT NOT NULL,
    claimed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (mac, user_id)
);
CREATE TABLE IF NOT EXISTS certificates (
    serial TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    mac TEXT NOT NULL,
    user_id TEXT,
    mode TEXT NOT NULL,
    issued REAL NOT NULL,
    pem TEXT NOT NULL
);
"""


def random_alnum(length: int) -> str:
    """`length` random ASCII letters and digits (ids, challenges)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def token_digest(token: str) -> str:
    # Tokens are stored hashed: the database never holds a usable credential.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    user_id: str
    quota: int
    claimed: int


@dataclass(frozen=True)
class Challenge:
    auth_id: str
    mac: str
    challenge: str
    expires: float
    used: bool


@dataclass(frozen=True)
class Node:
    node_id: str
    mac: str
    user_id: str
    claimed: bool


class StoreError(Exception):
    """A store rule was broken (token taken by another user, bad value)."""


class Store:
    """The database of one state directory; safe to share between threads."""

    # Test-only: called with the node id inside claim_node's transaction, after the owner's
    # claims are counted and before the node is marked claimed (host_tests/service/
    # test_races.py holds a claim there to make a quota race certain). None in every real run.
    quota_counted: Callable[[str], None] | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        # executescript commits on its own, so the schema is made outside a transaction.
        self._connection().executescript(_SCHEMA)
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )
        with self.transaction() as db:
            (version,) = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{path}: schema version {version}, this rmbench knows {SCHEMA_VERSION}"
            )

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        state_dir.mkdir(parents=True, exist_ok=True)
        return cls(state_dir / DB_NAME)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit mode: transactions are opened explicitly below.
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: taken before the first read)."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: a consistent view that does not block writers (WAL)."""
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- users ----------------------------------------------------------------------------------

    def add_user(self, token: str, quota: int = DEFAULT_QUOTA, user_id: str | None = None) -> str:
        """Create a user, or update the quota (and token) of an existing one; returns its id.

        An existing user is found by user_id when given, else by token. A token can belong to one
        user only.
        """
        if not token:
            raise StoreError("the token must not be empty")
        if quota < 0:
            raise StoreError(f"quota must be 0 or more, got {quota}")
        digest = token_digest(token)
        with self.transaction() as db:
            owner = db.execute(
                "SELECT user_id FROM users WHERE token_sha256 = ?", (digest,)
            ).fetchone()
            if user_id is None:
                user_id = owner[0] if owner else random_alnum(22)
            elif owner and owner[0] != user_id:
                raise StoreError(f"this token already belongs to user {owner[0]}")
            db.execute(
                "INSERT INTO users (user_id, token_sha256, quota, created) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET token_sha256 = excluded.token_sha256,"
                " quota = excluded.quota",
                (user_id, digest, quota, time.time()),
            )
        return user_id

    def user_for_token(self, token: str) -> User | None:
        with self.snapshot() as db:
            row = db.execute(
                "SELECT user_id, quota FROM users WHERE token_sha256 = ?", (token_digest(token),)
            ).fetchone()
            if row is None:
                return None
            return User(row[0], row[1], self._claimed_count(db, row[0]))

    def user(self, user_id: str) -> User | None:
        with self.snapshot() as db:
            row = db.execute("SELECT quota FROM users WHERE user_id = ?", (user_id,)).fetchone()
            if row is None:
                return None
            return User(user_id, row[0], self._claimed_count(db, user_id))

    @staticmethod
    def _claimed_count(db: sqlite3.Connection, user_id: str) -> int:
        (n,) = db.execute(
            "SELECT COUNT(*) FROM nodes WHERE user_id = ? AND claimed = 1", (user_id,)
        ).fetchone()
        return int(n)

    # --- devices (self-claim) -------------------------------------------------------------------

    def register_device(self, mac: str, unique_id: bytes) -> bool:
        """Record a board's 16-byte OPTIONAL_UNIQUE_ID; returns False if it replaced another."""
        if len(unique_id) != 16:
            raise StoreError(f"unique id must be 16 bytes, got {len(unique_id)}")
        with self.transaction() as db:
            old = db.execute("SELECT unique_id FROM devices WHERE mac = ?", (mac,)).fetchone()
            db.execute(
                "INSERT INTO devices (mac, unique_id, registered) VALUES (?, ?, ?)"
                " ON CONFLICT (mac) DO UPDATE SET unique_id = excluded.unique_id,"
                " registered = excluded.registered",
                (mac, unique_id, time.time()),
            )
        return old is None or bytes(old[0]) == unique_id

    def unique_id(self, mac: str) -> bytes | None:
        with self.snapshot() as db:
            row = db.execute("SELECT unique_id FROM devices WHERE mac = ?", (mac,)).fetchone()
        return None if row is None else bytes(row[0])

    def new_challenge(self, mac: str, auth_id: str, challenge: str, ttl: float) -> None:
        with self.transaction() as db:
            # Old spent or expired challenges are dropped as new ones come in.
            db.execute("DELETE FROM challenges WHERE expires < ?", (time.time() - 3600.0,))
            db.execute(
                "INSERT INTO challenges (auth_id, mac, challenge, expires) VALUES (?, ?, ?, ?)",
                (auth_id, mac, challenge, time.time() + ttl),
            )

    def spend_challenge(self, auth_id: str) -> Challenge | None:
        """Mark a challenge used and return it as it was before (None if unknown)."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT mac, challenge, expires, used FROM challenges WHERE auth_id = ?",
                (auth_id,),
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE challenges SET used = 1 WHERE auth_id = ?", (auth_id,))
        return Challenge(auth_id, row[0], row[1], row[2], bool(row[3]))

    # --- nodes (token claims) -------------------------------------------------------------------

    def node_for(self, mac: str, user_id: str) -> Node:
        """The node of (MAC, user), created on first use with a fresh 22-character id."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT node_id, claimed FROM nodes WHERE mac = ? AND user_id = ?", (mac, user_id)
            ).fetchone()
            if row is None:
                node_id = random_alnum(22)
                db.execute(
                    "INSERT INTO nodes (node_id, mac, user_id) VALUES (?, ?, ?)",
                    (node_id, mac, user_id),
                )
                return Node(node_id, mac, user_id, False)
        return Node(row[0], mac, user_id, bool(row[1]))

    def node(self, node_id: str) -> Node | None:
        with self.snapshot() as db:
            row = db.execute(
                "SELECT mac, user_id, claimed FROM nodes WHERE node_id = ?", (node_id,)
            ).fetchone()
        return None if row is None else Node(node_id, row[0], row[1], bool(row[2]))

    @contextmanager
    def claim_node(self, node_id: str) -> Iterator[tuple[sqlite3.Connection, bool]]:
        """Hold the write lock while a node is claimed; yields (db, over_quota).

        over_quota is True when the node was never claimed and the owner's quota is spent. The
        caller issues the certificate and records it in the same transaction (or raises, which
        rolls everything back).
        """
        with self.transaction() as db:
            row = db.execute(
                "SELECT user_id, claimed FROM nodes WHERE node_id = ?", (node_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"unknown node {node_id}")
            user_id, claimed = row[0], bool(row[1])
            over = False
            if not claimed:
                (quota,) = db.execute(
                    "SELECT quota FROM users WHERE user_id = ?", (user_id,)
                ).fetchone()
                over = self._claimed_count(db, user_id) >= quota
                if self.quota_counted is not None:
                    self.quota_counted(node_id)
                if not over:
                    db.execute("UPDATE nodes SET claimed = 1 WHERE node_id = ?", (node_id,))
            yield db, over

    # --- certificates ---------------------------------------------------------------------------

    @staticmethod
    def record_certificate(
        db: sqlite3.Connection,
        *,
        serial: int,
        node_id: str,
        mac: str,
        user_id: str | None,
        mode: str,
        pem: str,
    ) -> None:
        db.execute(
            "INSERT INTO certificates (serial, node_id, mac, user_id, mode, issued, pem)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (format(serial, "x"), node_id, mac, user_id, mode, time.time(), pem),
        )

    def certificates(self, node_id: str | None = None) -> list[tuple[str, str, str]]:
        """(serial hex, node id, PEM) of issued certificates, oldest first."""
        with self.snapshot() as db:
            if node_id is None:
                rows = db.execute(
                    "SELECT serial, node_id, pem FROM certificates ORDER BY issued, rowid"
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT serial, node_id, pem FROM certificates WHERE node_id = ?"
                    " ORDER BY issued, rowid",
                    (node_id,),
                ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]
