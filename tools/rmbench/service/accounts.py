"""Operations on a state directory: add users, register boards, list a user's nodes, hand over
a node's mapping message (used by the CLI, the harness and the MQTT side)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rmbench.errors import UsageError
from rmbench.service.logic import Settings
from rmbench.service.mapping import MappingService, NodeMappingOutcome
from rmbench.service.store import DEFAULT_QUOTA, Store, StoreError, UserNode

_MAC_SEPARATORS = re.compile(r"[:\-.\s]")


def normalize_mac(text: str) -> str:
    """12 uppercase hex digits from a MAC written with or without ':'/'-' separators."""
    mac = _MAC_SEPARATORS.sub("", text).upper()
    if not re.fullmatch(r"[0-9A-F]{12}", mac):
        raise UsageError(f"MAC must be 6 bytes in hex, e.g. 7C:DF:A1:00:03:3B, got {text!r}")
    return mac


def parse_unique_id(text: str) -> bytes:
    """The 16-byte OPTIONAL_UNIQUE_ID from 32 hex digits."""
    cleaned = text.strip().removeprefix("0x").removeprefix("0X")
    if not re.fullmatch(r"[0-9A-Fa-f]{32}", cleaned):
        raise UsageError(f"unique id must be 32 hex digits (16 bytes), got {text!r}")
    return bytes.fromhex(cleaned)


@dataclass(frozen=True)
class Registration:
    """A board registered for self-claiming."""

    mac: str
    unique_id: bytes
    replaced: bool  # an earlier, different unique id was overwritten


def add_user(
    state_dir: Path, token: str, quota: int = DEFAULT_QUOTA, user_id: str | None = None
) -> str:
    """Create (or update) a user with this access token; returns the user id.

    Raises:
        UsageError: empty token, negative quota, or a token that belongs to another user.
    """
    store = Store.open(state_dir)
    try:
        return store.add_user(token, quota, user_id)
    except StoreError as e:
        raise UsageError(str(e)) from e
    finally:
        store.close()


def register_device(state_dir: Path, mac: str, unique_id: bytes) -> Registration:
    """Record a board's MAC and 16-byte eFuse OPTIONAL_UNIQUE_ID so it can self-claim.

    Raises:
        UsageError: a bad MAC or unique id length.
    """
    mac = normalize_mac(mac)
    if len(unique_id) != 16:
        raise UsageError(f"unique id must be 16 bytes, got {len(unique_id)}")
    store = Store.open(state_dir)
    try:
        same = store.register_device(mac, unique_id)
    finally:
        store.close()
    return Registration(mac, unique_id, replaced=not same)


def user_nodes(
    state_dir: Path, *, token: str | None = None, user_id: str | None = None
) -> list[UserNode]:
    """The nodes mapped to the user holding `token` (or to `user_id`), by node id.

    Raises:
        UsageError: neither or both given, or no such user.
    """
    if (token is None) == (user_id is None):
        raise UsageError("give the user's --token or --user-id")
    store = Store.open(state_dir)
    try:
        user = store.user_for_token(token) if token is not None else store.user(str(user_id))
        if user is None:
            what = "this token" if token is not None else f"user id {user_id!r}"
            raise UsageError(f"{state_dir}: no user has {what} (rmbench user add)")
        nodes, _, _ = store.user_nodes(user.user_id)
        return nodes
    finally:
        store.close()


def node_mapping_message(state_dir: Path, node_id: str, payload: bytes) -> NodeMappingOutcome:
    """Hand the service what node `node_id` published on node/<node_id>/user/mapping, in this
    process (a running `rmbench serve` on the same state directory sees the result at once: the
    database is shared). node_id is the node the broker authenticated (certificate CN, topic).

    Raises:
        ClaimFailure: a malformed message, one naming another node (400), or a node this
            service issued no certificate to (404).
    """
    store = Store.open(state_dir)
    try:
        return MappingService(store, Settings()).node_message(node_id, payload)
    finally:
        store.close()
