"""HTTP routes of the local claiming service (FastAPI) and its OpenAPI document.

Bodies are read and checked by logic.py (claiming) and mapping.py (user-node mapping, under
/v1/ as esp-rainmaker-cli's profile `host` names it) rather than by FastAPI's models, so every
refusal has the real service's shape, `{"status":"failure","description":...}`, and every reply a
Content-Length. POST /internal/node-mapping (loopback only, not in the OpenAPI document) is where
the MQTT side hands over what a node published on node/<node_id>/user/mapping.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rmbench.service.client import ADMIN_FAULTS
from rmbench.service.faults import FaultError, FaultLayer, FaultQueue, parse_fault
from rmbench.service.logic import MAX_BODY, ClaimFailure, ClaimService, parse_bool_param
from rmbench.service.mapping import MappingService

# Where the MQTT side posts a node's mapping message: ?node_id=<the node the broker
# authenticated>, the body exactly as published.
INTERNAL_NODE_MAPPING = "/internal/node-mapping"

log = logging.getLogger("rmbench.service")


def failure(status: int, description: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"status": "failure", "description": description}, status, headers)


async def read_body(request: Request) -> bytes:
    """The request body, refused past MAX_BODY bytes (before reading it all when declared)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise ClaimFailure(413, f"Request body is larger than {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ClaimFailure(413, f"Request body is larger than {MAX_BODY} bytes")
    return bytes(body)


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_FAILURE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["failure"]},
        "description": {"type": "string"},
    },
    "required": ["status", "description"],
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


_CLAIM_REASONS = {
    400: "Invalid request",
    401: "Unauthorized, or a bad auth_id/challenge_response",
    403: "Quota exhausted or MAC not registered",
    413: "Body over 8 KB",
}
_USER_REASONS = {
    400: "Invalid request, or a spent/expired request_id or a wrong challenge_response",
    401: "Unauthorized: no or an unknown access token",
    403: "user_id is not the token's user",
    404: "Unknown request_id, node or mapping",
    413: "Body over 8 KB",
}


def _responses(
    ok: dict[str, Any], *codes: int, reasons: dict[int, str] = _CLAIM_REASONS
) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {
        200: {"description": "Success", "content": _json_content(ok)}
    }
    for code in codes:
        out[code] = {"description": reasons[code], "content": _json_content(_FAILURE_SCHEMA)}
    return out


_AUTH_HEADER: dict[str, Any] = {
    "name": "Authorization",
    "in": "header",
    "required": False,
    "description": "The user's access token, raw or as `Bearer <token>`; absent for self-claim",
    "schema": {"type": "string"},
}

_INITIATE_BODY: dict[str, Any] = {
    "required": True,
    "content": _json_content(
        {
            "type": "object",
            "properties": {
                "mac_addr": {
                    "type": "string",
                    "pattern": "^[0-9A-F]{12}$",
                    "description": "12 uppercase hex digits, no separators",
                    "example": "7CDFA100033B",
                },
                "platform": {
                    "type": "string",
                    "description": "esp32, esp32s2, esp32s3, esp32c2, esp32c3, esp32c6, esp32h2 "
                    "(any case); host with a token; self-claim needs s2/s3/c3/c6/h2",
                    "example": "esp32s3",
                },
            },
            "required": ["mac_addr", "platform"],
        }
    ),
}

_VERIFY_BODY: dict[str, Any] = {
    "required": True,
    "content": _json_content(
        {
            "type": "object",
            "properties": {
                "csr": {"type": "string", "description": "PEM PKCS#10 request, CN = node id"},
                "auth_id": {"type": "string"},
                "challenge_response": {
                    "type": "string",
                    "pattern": "^[0-9A-F]{128}$",
                    "description": "HMAC-SHA512(unique id, challenge) as 128 uppercase hex digits",
                },
                "send_mqtt_host": {"type": "boolean"},
                "node_policies": {"type": "string"},
            },
            "required": ["csr"],
        }
    ),
}

_VERIFY_PARAMS: list[dict[str, Any]] = [
    {
        "name": "matter",
        "in": "query",
        "required": False,
        "description": "issue a Matter-usable certificate (needs an EC P-256 key)",
        "schema": {"type": "boolean", "default": False},
    },
    {
        "name": "test",
        "in": "query",
        "required": False,
        "description": "accepted and ignored",
        "schema": {"type": "boolean", "default": False},
    },
    _AUTH_HEADER,
]


_USER_AUTH: dict[str, Any] = {
    "name": "Authorization",
    "in": "header",
    "required": True,
    "description": "The user's access token, raw (as esp-rainmaker-cli sends it) or as "
    "`Bearer <token>`",
    "schema": {"type": "string"},
}

_SUCCESS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["success"]},
        "description": {"type": "string"},
    },
    "required": ["status"],
}

_TAGS_METADATA: dict[str, Any] = {
    "tags": {"type": "array", "items": {"type": "string"}, "description": "key:value strings"},
    "metadata": {"type": "object"},
}

_MAPPING_INITIATE_BODY: dict[str, Any] = {
    "required": False,
    "content": _json_content(
        {
            "type": "object",
            "properties": {
                "timeout": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 3600,
                    "description": "challenge lifetime in seconds (default 360)",
                }
            },
        }
    ),
}

_MAPPING_VERIFY_BODY: dict[str, Any] = {
    "required": True,
    "content": _json_content(
        {
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "node_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                "challenge_response": {
                    "type": "string",
                    "pattern": "^([0-9a-f]{2})+$",
                    "description": "the node's signature of the challenge (ECDSA P-256 over "
                    "SHA-256, DER; RSA: PSS) as lowercase hex",
                },
                **_TAGS_METADATA,
            },
            "required": ["request_id", "node_id", "challenge_response"],
        }
    ),
}

_MAPPING_PUT_BODY: dict[str, Any] = {
    "required": True,
    "content": _json_content(
        {
            "type": "object",
            "properties": {
                "user_id": {"type": "string", "description": "if given, the token's user"},
                "node_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                "secret_key": {"type": "string", "description": "add: what the node publishes"},
                "operation": {"type": "string", "enum": ["add", "remove"]},
                **_TAGS_METADATA,
            },
            "required": ["node_id", "operation"],
        }
    ),
}


def create_app(
    service: ClaimService,
    faults: FaultQueue | None = None,
    mapping: MappingService | None = None,
) -> Any:
    """The ASGI application; with a FaultQueue, the loopback-only fault endpoint is on too.
    The mapping API runs over the claim service's store and settings unless one is given."""
    if mapping is None:
        mapping = MappingService(service.store, service.settings)
    user_api = mapping
    app = FastAPI(
        title="ESP RainMaker Claiming Service (rmbench local)",
        version="1.0.0",
        description="A local stand-in for the ESP RainMaker claiming service.",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(ClaimFailure)
    async def _claim_failure(request: Request, exc: ClaimFailure) -> Response:
        del request
        return failure(exc.status, exc.description)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        del request
        return failure(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return failure(500, "Internal error in the local claiming service")

    @app.post(
        "/claim/initiate",
        summary="Start a claim: node_id (token) or auth_id + challenge (self-claim)",
        openapi_extra={"requestBody": _INITIATE_BODY, "parameters": [_AUTH_HEADER]},
        responses=_responses(
            {
                "type": "object",
                "properties": {
                    "node_id": {"type": "string"},
                    "auth_id": {"type": "string"},
                    "challenge": {"type": "string"},
                },
            },
            400,
            401,
            403,
            413,
        ),
    )
    async def initiate(request: Request) -> Response:
        body = await read_body(request)
        auth = request.headers.get("authorization")
        return JSONResponse(await run_in_threadpool(service.initiate, body, auth))

    @app.post(
        "/claim/verify",
        summary="Finish a claim: CSR in, certificate (device PEM + claim CA PEM) out",
        openapi_extra={"requestBody": _VERIFY_BODY, "parameters": _VERIFY_PARAMS},
        responses=_responses(
            {
                "type": "object",
                "properties": {
                    "certificate": {"type": "string"},
                    "mqtt_host": {"type": "string"},
                },
                "required": ["certificate"],
            },
            400,
            401,
            403,
            413,
        ),
    )
    async def verify(request: Request) -> Response:
        matter = parse_bool_param("matter", request.query_params.get("matter"))
        body = await read_body(request)
        auth = request.headers.get("authorization")
        return JSONResponse(await run_in_threadpool(service.verify, body, auth, matter))

    @app.get(
        "/mqtt_host",
        summary="The MQTT endpoint devices should use",
        responses=_responses({"type": "object", "properties": {"mqtt_host": {"type": "string"}}}),
    )
    async def mqtt_host() -> Response:
        return JSONResponse(service.mqtt_host())

    # --- user-node mapping (esp-rainmaker-cli's profile host is <base URL>/v1/) ---------------

    @app.post(
        "/v1/user/nodes/mapping/initiate",
        summary="Start a challenge-response mapping: a challenge for the node to sign",
        openapi_extra={"requestBody": _MAPPING_INITIATE_BODY, "parameters": [_USER_AUTH]},
        responses=_responses(
            {
                "type": "object",
                "properties": {
                    "status": {"type": "string"},
                    "request_id": {"type": "string"},
                    "challenge": {"type": "string"},
                },
                "required": ["request_id", "challenge"],
            },
            400,
            401,
            413,
            reasons=_USER_REASONS,
        ),
    )
    async def mapping_initiate(request: Request) -> Response:
        body = await read_body(request)
        auth = request.headers.get("authorization")
        return JSONResponse(await run_in_threadpool(user_api.initiate, body, auth))

    @app.post(
        "/v1/user/nodes/mapping/verify",
        summary="Finish a challenge-response mapping: the node's signature maps it to the user",
        openapi_extra={"requestBody": _MAPPING_VERIFY_BODY, "parameters": [_USER_AUTH]},
        responses=_responses(_SUCCESS, 400, 401, 404, 413, reasons=_USER_REASONS),
    )
    async def mapping_verify(request: Request) -> Response:
        body = await read_body(request)
        auth = request.headers.get("authorization")
        return JSONResponse(await run_in_threadpool(user_api.verify, body, auth))

    @app.put(
        "/v1/user/nodes/mapping",
        summary="Secret-key mapping: add (confirmed when the node's own message agrees) or remove",
        openapi_extra={"requestBody": _MAPPING_PUT_BODY, "parameters": [_USER_AUTH]},
        responses=_responses(
            {
                "type": "object",
                "properties": {
                    "status": {"type": "string"},
                    "request_id": {"type": "string"},
                    "description": {"type": "string"},
                },
            },
            400,
            401,
            403,
            404,
            413,
            reasons=_USER_REASONS,
        ),
    )
    async def mapping_put(request: Request) -> Response:
        body = await read_body(request)
        auth = request.headers.get("authorization")
        return JSONResponse(await run_in_threadpool(user_api.put_mapping, body, auth))

    @app.get(
        "/v1/user/nodes/mapping",
        summary="Status of a secret-key mapping request",
        openapi_extra={
            "parameters": [
                {
                    "name": "request_id",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string"},
                },
                _USER_AUTH,
            ]
        },
        responses=_responses(
            {
                "type": "object",
                "properties": {
                    "request_id": {"type": "string"},
                    "request_status": {
                        "type": "string",
                        "enum": ["requested", "confirmed", "timedout", "discarded"],
                    },
                    "user_node_id": {"type": "string"},
                    "request_source": {"type": "string"},
                },
                "required": ["request_status"],
            },
            400,
            401,
            404,
            reasons=_USER_REASONS,
        ),
    )
    async def mapping_status(request: Request) -> Response:
        auth = request.headers.get("authorization")
        request_id = request.query_params.get("request_id")
        return JSONResponse(await run_in_threadpool(user_api.mapping_status, request_id, auth))

    @app.get(
        "/v1/user/nodes",
        summary="The user's nodes (node_details=true: with details), a page at a time",
        openapi_extra={
            "parameters": [
                {"name": "node_details", "in": "query", "schema": {"type": "boolean"}},
                {"name": "start_id", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "num_records",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                },
                {"name": "node_id", "in": "query", "schema": {"type": "string"}},
                _USER_AUTH,
            ]
        },
        responses=_responses(
            {
                "type": "object",
                "properties": {
                    "nodes": {"type": "array", "items": {"type": "string"}},
                    "node_details": {"type": "array", "items": {"type": "object"}},
                    "total": {"type": "integer"},
                    "next_id": {"type": "string"},
                },
                "required": ["nodes", "total"],
            },
            400,
            401,
            404,
            reasons=_USER_REASONS,
        ),
    )
    async def user_nodes(request: Request) -> Response:
        auth = request.headers.get("authorization")
        query = dict(request.query_params)
        return JSONResponse(await run_in_threadpool(user_api.user_nodes, query, auth))

    @app.post(INTERNAL_NODE_MAPPING, include_in_schema=False)
    async def node_mapping(request: Request) -> Response:
        if not _is_loopback(request):
            return failure(403, "the internal endpoints answer loopback clients only")
        node_id = request.query_params.get("node_id")
        if not node_id:
            return failure(400, "node_id (the node the broker authenticated) is required")
        body = await read_body(request)
        outcome = await run_in_threadpool(user_api.node_message, node_id, body)
        if outcome.result in ("mismatch", "refused"):
            return failure(409, f"{outcome.result}: {outcome.description}")
        return JSONResponse(outcome.to_json())

    if faults is None:
        return app

    @app.post(ADMIN_FAULTS, include_in_schema=False)
    async def add_fault(request: Request) -> Response:
        if not _is_loopback(request):
            return failure(403, "the fault endpoint answers loopback clients only")
        try:
            fault = parse_fault(json.loads(await read_body(request)))
        except (ValueError, FaultError) as e:
            return failure(400, str(e))
        faults.add(fault)
        return JSONResponse({"status": "success", "queued": fault.to_json()})

    @app.get(ADMIN_FAULTS, include_in_schema=False)
    async def list_faults(request: Request) -> Response:
        if not _is_loopback(request):
            return failure(403, "the fault endpoint answers loopback clients only")
        return JSONResponse({"faults": [f.to_json() for f in faults.pending()]})

    @app.delete(ADMIN_FAULTS, include_in_schema=False)
    async def clear_faults(request: Request) -> Response:
        if not _is_loopback(request):
            return failure(403, "the fault endpoint answers loopback clients only")
        return JSONResponse({"status": "success", "cleared": faults.clear()})

    return FaultLayer(app, faults, service.claim_ca)
