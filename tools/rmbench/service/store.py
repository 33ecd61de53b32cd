"""The service's SQLite database: users, registered boards, challenges, nodes and certificates,
and the user-node mappings (challenges, secret-key requests, node reports, mapped nodes).

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
# The mapping tables came later, as CREATE TABLE IF NOT EXISTS only: an older database gains
# them when it is opened, so the version stays 1.
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
CREATE TABLE IF NOT EXISTS mapping_challenges (
    request_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    challenge TEXT NOT NULL,
    expires REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS mapping_requests (
    request_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    secret_key TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('requested', 'confirmed', 'discarded')),
    updated REAL NOT NULL,
    tags TEXT,
    metadata TEXT
);
CREATE INDEX IF NOT EXISTS mapping_requests_node ON mapping_requests (node_id, status);
CREATE TABLE IF NOT EXISTS node_reports (
    node_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    secret_key TEXT NOT NULL,
    reset INTEGER NOT NULL,
    received REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS user_nodes (
    node_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    mapped REAL NOT NULL,
    how TEXT NOT NULL CHECK (how IN ('challenge_response', 'secret_key')),
    tags TEXT,
    metadata TEXT
);
CREATE INDEX IF NOT EXISTS user_nodes_user ON user_nodes (user_id, node_id);
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


@dataclass(frozen=True)
class MappingChallenge:
    """A challenge-response mapping started by a user (user/nodes/mapping/initiate)."""

    request_id: str
    user_id: str
    challenge: str
    expires: float
    used: bool


@dataclass(frozen=True)
class MappingRequest:
    """A secret-key mapping request (PUT user/nodes/mapping); status as stored: requested,
    confirmed or discarded (a requested one past `expires` is shown as timed out)."""

    request_id: str
    user_id: str
    node_id: str
    secret_key: str
    created: float
    expires: float
    status: str
    tags: str | None
    metadata: str | None


@dataclass(frozen=True)
class NodeReport:
    """The last mapping message a node sent that no request has taken yet."""

    node_id: str
    user_id: str
    secret_key: str
    reset: bool
    received: float


@dataclass(frozen=True)
class UserNode:
    """A node mapped to a user; how = challenge_response or secret_key; tags and metadata as
    JSON text (or None)."""

    node_id: str
    user_id: str
    mapped: float
    how: str
    tags: str | None = None
    metadata: str | None = None


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

    @staticmethod
    def latest_certificate(db: sqlite3.Connection, node_id: str) -> str | None:
        """The PEM of the certificate issued last to node_id (the one its key now matches)."""
        row = db.execute(
            "SELECT pem FROM certificates WHERE node_id = ? ORDER BY issued DESC, rowid DESC"
            " LIMIT 1",
            (node_id,),
        ).fetchone()
        return None if row is None else str(row[0])

    # --- user-node mapping: challenge-response --------------------------------------------------

    def new_mapping_challenge(
        self, user_id: str, request_id: str, challenge: str, expires: float, now: float
    ) -> None:
        with self.transaction() as db:
            # Challenges an hour past their expiry are dropped as new ones come in.
            db.execute("DELETE FROM mapping_challenges WHERE expires < ?", (now - 3600.0,))
            db.execute(
                "INSERT INTO mapping_challenges (request_id, user_id, challenge, expires)"
                " VALUES (?, ?, ?, ?)",
                (request_id, user_id, challenge, expires),
            )

    @staticmethod
    def mapping_challenge(db: sqlite3.Connection, request_id: str) -> MappingChallenge | None:
        row = db.execute(
            "SELECT user_id, challenge, expires, used FROM mapping_challenges"
            " WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        if row is None:
            return None
        return MappingChallenge(request_id, row[0], row[1], row[2], bool(row[3]))

    @staticmethod
    def spend_mapping_challenge(db: sqlite3.Connection, request_id: str) -> None:
        db.execute("UPDATE mapping_challenges SET used = 1 WHERE request_id = ?", (request_id,))

    # --- user-node mapping: secret-key requests and node reports --------------------------------

    @staticmethod
    def add_mapping_request(db: sqlite3.Connection, request: MappingRequest) -> None:
        db.execute(
            "INSERT INTO mapping_requests (request_id, user_id, node_id, secret_key, created,"
            " expires, status, updated, tags, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request.request_id,
                request.user_id,
                request.node_id,
                request.secret_key,
                request.created,
                request.expires,
                request.status,
                request.created,
                request.tags,
                request.metadata,
            ),
        )

    @staticmethod
    def open_mapping_requests(
        db: sqlite3.Connection, node_id: str, now: float
    ) -> list[MappingRequest]:
        """The node's requests still waiting (requested, not expired), newest first."""
        rows = db.execute(
            "SELECT request_id, user_id, secret_key, created, expires, tags, metadata"
            " FROM mapping_requests WHERE node_id = ? AND status = 'requested' AND expires >= ?"
            " ORDER BY created DESC, rowid DESC",
            (node_id, now),
        ).fetchall()
        return [
            MappingRequest(r[0], r[1], node_id, r[2], r[3], r[4], "requested", r[5], r[6])
            for r in rows
        ]

    @staticmethod
    def set_request_status(
        db: sqlite3.Connection, request_id: str, status: str, now: float
    ) -> None:
        db.execute(
            "UPDATE mapping_requests SET status = ?, updated = ? WHERE request_id = ?",
            (status, now, request_id),
        )

    @staticmethod
    def discard_open_requests(
        db: sqlite3.Connection, node_id: str, now: float, user_id: str | None = None
    ) -> None:
        """Mark the node's waiting requests (of one user, or of everyone) discarded."""
        sql = (
            "UPDATE mapping_requests SET status = 'discarded', updated = ?"
            " WHERE node_id = ? AND status = 'requested' AND expires >= ?"
        )
        params: tuple[object, ...] = (now, node_id, now)
        if user_id is not None:
            sql += " AND user_id = ?"
            params += (user_id,)
        db.execute(sql, params)

    def mapping_request(self, request_id: str) -> MappingRequest | None:
        with self.snapshot() as db:
            row = db.execute(
                "SELECT user_id, node_id, secret_key, created, expires, status, tags, metadata"
                " FROM mapping_requests WHERE request_id = ?",
                (request_id,),
            ).fetchone()
        if row is None:
            return None
        return MappingRequest(request_id, *row)

    @staticmethod
    def node_report(db: sqlite3.Connection, node_id: str) -> NodeReport | None:
        row = db.execute(
            "SELECT user_id, secret_key, reset, received FROM node_reports WHERE node_id = ?",
            (node_id,),
        ).fetchone()
        return None if row is None else NodeReport(node_id, row[0], row[1], bool(row[2]), row[3])

    @staticmethod
    def keep_node_report(db: sqlite3.Connection, report: NodeReport) -> None:
        db.execute(
            "INSERT INTO node_reports (node_id, user_id, secret_key, reset, received)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET"
            " user_id = excluded.user_id, secret_key = excluded.secret_key,"
            " reset = excluded.reset, received = excluded.received",
            (
                report.node_id,
                report.user_id,
                report.secret_key,
                int(report.reset),
                report.received,
            ),
        )

    @staticmethod
    def drop_node_report(db: sqlite3.Connection, node_id: str) -> None:
        db.execute("DELETE FROM node_reports WHERE node_id = ?", (node_id,))

    # --- mapped nodes ---------------------------------------------------------------------------

    @staticmethod
    def node_owner(db: sqlite3.Connection, node_id: str) -> str | None:
        row = db.execute("SELECT user_id FROM user_nodes WHERE node_id = ?", (node_id,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def map_node(db: sqlite3.Connection, mapping: UserNode) -> None:
        """Make mapping.user_id the node's (only) user, replacing any other."""
        db.execute(
            "INSERT INTO user_nodes (node_id, user_id, mapped, how, tags, metadata)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET"
            " user_id = excluded.user_id, mapped = excluded.mapped, how = excluded.how,"
            " tags = excluded.tags, metadata = excluded.metadata",
            (
                mapping.node_id,
                mapping.user_id,
                mapping.mapped,
                mapping.how,
                mapping.tags,
                mapping.metadata,
            ),
        )

    @staticmethod
    def unmap_node(db: sqlite3.Connection, node_id: str, user_id: str | None = None) -> bool:
        """Remove the node's mapping (only if it is user_id's, when given); True if one went."""
        if user_id is None:
            cur = db.execute("DELETE FROM user_nodes WHERE node_id = ?", (node_id,))
        else:
            cur = db.execute(
                "DELETE FROM user_nodes WHERE node_id = ? AND user_id = ?", (node_id, user_id)
            )
        return cur.rowcount > 0

    def user_nodes(
        self, user_id: str, start_id: str | None = None, limit: int | None = None
    ) -> tuple[list[UserNode], int, str | None]:
        """(one page of the user's nodes by node id from start_id, how many the user has in
        all, the node id the next page starts at or None)."""
        with self.snapshot() as db:
            (total,) = db.execute(
                "SELECT COUNT(*) FROM user_nodes WHERE user_id = ?", (user_id,)
            ).fetchone()
            rows = db.execute(
                "SELECT node_id, mapped, how, tags, metadata FROM user_nodes"
                " WHERE user_id = ? AND node_id >= ? ORDER BY node_id LIMIT ?",
                (user_id, start_id or "", -1 if limit is None else limit + 1),
            ).fetchall()
        nodes = [UserNode(r[0], user_id, r[1], r[2], r[3], r[4]) for r in rows]
        next_id = None
        if limit is not None and len(nodes) > limit:
            next_id = nodes.pop().node_id
        return nodes, int(total), next_id
