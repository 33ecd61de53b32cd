"""Schema-driven fuzzing (schemathesis, from the service's own OpenAPI document): no 5xx, no crash.

Valid (positive) and invalid (negative) bodies, headers and query strings for every operation;
each reply must also keep the real service's framing (Content-Length, under 3000 bytes, the
failure shape). Bounded: a fixed number of examples per mode, no deadline. The user API (/v1/)
gets a real user's token in half of its cases, so its bodies reach the parsers behind the
token check.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rmbench.service.harness import RunningService
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

EXAMPLES = 400
FUZZ_TOKEN = "fuzz-user-token"


@pytest.fixture(scope="module")
def api_schema(svc: RunningService) -> Any:
    schema = schemathesis.openapi.from_url(
        svc.base_url + "/openapi.json", verify=str(svc.server_ca_file)
    )
    paths = {result.ok().path for result in schema.get_all_operations()}  # type: ignore[union-attr]
    assert paths == {
        "/claim/initiate",
        "/claim/verify",
        "/mqtt_host",
        "/v1/user/nodes/mapping/initiate",
        "/v1/user/nodes/mapping/verify",
        "/v1/user/nodes/mapping",
        "/v1/user/nodes",
    }
    return schema


def framing(ctx: Any, response: Any, case: Any) -> None:
    """What every reply of the claiming service keeps, whatever the request."""
    del ctx, case
    headers = {k.lower(): v for k, v in response.headers.items()}
    body = response.content
    if "transfer-encoding" in headers:
        raise AssertionError(f"chunked reply: {headers}")
    if headers.get("content-length") != [str(len(body))]:
        raise AssertionError(f"Content-Length {headers.get('content-length')} for {len(body)}")
    if len(body) >= 3000:
        raise AssertionError(f"reply of {len(body)} bytes")
    if response.status_code != 200:
        obj = json.loads(body)
        if set(obj) != {"status", "description"} or obj["status"] != "failure":
            raise AssertionError(f"refusal not in the failure shape: {obj}")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_error(api_schema: Any, svc: RunningService, mode: GenerationMode) -> None:
    strategy = api_schema.as_strategy(generation_mode=mode)
    svc.add_user(FUZZ_TOKEN, quota=5)
    seen: set[str] = set()
    session = requests.Session()  # one kept-alive TLS connection: bounded time
    session.verify = str(svc.server_ca_file)

    @given(data=st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def fuzz(data: st.DataObject) -> None:
        case = data.draw(strategy)
        seen.add(case.operation.path)
        headers = None
        if case.operation.path.startswith("/v1/") and data.draw(st.booleans()):
            headers = {"Authorization": FUZZ_TOKEN}
        response = case.call(
            session=session, headers=headers, verify=str(svc.server_ca_file), timeout=10
        )
        case.validate_response(response, checks=[not_a_server_error], additional_checks=[framing])

    with session:
        fuzz()
    # /mqtt_host takes no input, so only positive cases reach it.
    assert seen >= {
        "/claim/initiate",
        "/claim/verify",
        "/v1/user/nodes/mapping/initiate",
        "/v1/user/nodes/mapping/verify",
        "/v1/user/nodes/mapping",
    }
    assert "Traceback" not in svc.log_text()
