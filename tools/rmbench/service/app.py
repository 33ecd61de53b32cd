"""HTTP routes of the local claiming service (FastAPI) and its OpenAPI document.

Bodies are read and checked by logic.py rather than by FastAPI's models, so every refusal has the
real service's shape, `{"status":"failure","description":...}`, and every reply a Content-Length.
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


def _responses(ok: dict[str, Any], *codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {
        200: {"description": "Success", "content": _json_content(ok)}
    }
    reasons = {
        400: "Invalid request",
        401: "Unauthorized, or a bad auth_id/challenge_response",
        403: "Quota exhausted or MAC not registered",
        413: "Body over 8 KB",
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


def create_app(service: ClaimService, faults: FaultQueue | None = None) -> Any:
    """The ASGI application; with a FaultQueue, the loopback-only fault endpoint is on too."""
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
