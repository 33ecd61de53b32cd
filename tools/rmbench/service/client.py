"""A small HTTP(S) client for the local service: pinned CA, hostname checked, JSON in and out."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmbench.errors import ServiceError


@dataclass(frozen=True)
class Reply:
    """One HTTP reply: status, headers (lower-case names) and raw body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def pinned_context(ca_file: Path) -> ssl.SSLContext:
    """TLS that trusts only `ca_file` and checks the hostname."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def request(
    base_url: str,
    method: str,
    path: str,
    *,
    ca_file: Path | None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """Send one request on a new connection and read the whole reply.

    Raises:
        ServiceError: the server could not be reached or TLS failed.
    """
    url = urllib.parse.urlsplit(base_url)
    host = url.hostname or "localhost"
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        if ca_file is None:
            raise ServiceError(f"{base_url}: HTTPS needs the server CA (server-ca.pem)")
        conn = http.client.HTTPSConnection(
            host, url.port, timeout=timeout, context=pinned_context(ca_file)
        )
    else:
        conn = http.client.HTTPConnection(host, url.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    except (OSError, http.client.HTTPException) as e:
        raise ServiceError(f"{method} {base_url}{path}: {e}") from e
    finally:
        conn.close()


# --- the fault endpoint (a server started with --faults) ----------------------------------------

ADMIN_FAULTS = "/_rmbench/faults"


def _admin(base_url: str, ca_file: Path | None, method: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    reply = request(base_url, method, ADMIN_FAULTS, ca_file=ca_file, body=data)
    if reply.status == 404:
        raise ServiceError(
            f"{base_url} has no fault endpoint", hint="start it with `rmbench serve --faults`"
        )
    try:
        obj = reply.json()
    except ValueError:
        obj = None
    if reply.status != 200:
        reason = (
            obj.get("description")
            if isinstance(obj, dict)
            else reply.body[:200].decode(errors="replace")
        )
        raise ServiceError(f"fault endpoint refused: HTTP {reply.status}: {reason}")
    return obj


def add_fault(
    base_url: str,
    ca_file: Path | None,
    kind: str,
    count: int = 1,
    path: str | None = None,
    **params: object,
) -> dict[str, Any]:
    """Queue a fault for the next `count` requests (see rmbench.service.faults for the kinds).

    Returns the fault as the server queued it. Raises ServiceError if it was refused.
    """
    body: dict[str, object] = {"kind": kind, "count": count, "path": path, **params}
    result: dict[str, Any] = _admin(base_url, ca_file, "POST", body)["queued"]
    return result


def clear_faults(base_url: str, ca_file: Path | None) -> int:
    """Drop every pending fault; returns how many were pending."""
    return int(_admin(base_url, ca_file, "DELETE")["cleared"])


def list_faults(base_url: str, ca_file: Path | None) -> list[dict[str, Any]]:
    """The pending faults, in the order they apply."""
    faults: list[dict[str, Any]] = _admin(base_url, ca_file, "GET")["faults"]
    return faults
