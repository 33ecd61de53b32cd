"""The claimed identity works: MicroPython's tls takes the stored key and certificate, and a
server that requires client certificates from claim-ca.pem accepts the board."""

from __future__ import annotations

import socket

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from rmbench.micropython import Interpreter
from rmbench.service.harness import RunningService

from .conftest import BoardFactory
from .support import (
    LocalServer,
    claim_config,
    issue_server,
    make_ca,
    read_request,
    reply,
    run_device,
    serving,
)

CLAIM = """
import rmclaim
c = rmclaim.ensure_claimed(ARGS)
out({"node_id": c.node_id})
"""

# After a reboot (a new process): only what NVS holds.
MUTUAL = """
import socket, tls, rmclaim
creds = rmclaim.load_credentials()
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
for der in ARGS["server_ca_der"]:
    ctx.load_verify_locations(bytes.fromhex(der))
ctx.load_cert_chain(creds.cert_der(), creds.key_der())
addr = socket.getaddrinfo("localhost", ARGS["port"], 0, socket.SOCK_STREAM)[0][-1]
s = socket.socket()
s.connect(addr)
s = ctx.wrap_socket(s, server_hostname="localhost")
s.write(b"GET /whoami HTTP/1.1\\r\\nHost: localhost\\r\\nContent-Length: 0\\r\\n\\r\\n")
data = b""
while b"ok" not in data:
    chunk = s.read(256)
    if not chunk:
        break
    data += chunk
s.close()
out({"reply": data.decode(), "node_id": creds.node_id})
"""


def _whoami(sock: socket.socket, srv: LocalServer) -> None:
    if (req := read_request(sock)) is not None:
        srv.requests.append(req)
        sock.sendall(reply(200, b"ok"))


@pytest.mark.parametrize(("profile", "token"), [("esp32s3", None), ("esp32", "tok-mtls")])
def test_mutual_tls_with_claimed_identity(
    svc: RunningService,
    mpy: Interpreter,
    new_board: BoardFactory,
    profile: str,
    token: str | None,
) -> None:
    board = new_board("mtls", profile)
    if token:
        svc.add_user(token, quota=5)
    else:
        svc.register(board.mac, board.unique_id)
    cfg = claim_config(svc, access_token=token) if token else claim_config(svc)
    node_id = run_device(mpy, CLAIM, cfg, board=board)["node_id"]

    # An MQTT-broker stand-in: its own server CA, client certificates from the claim CA only.
    server_ca = make_ca("broker CA")
    broker = LocalServer(_whoami, issue_server(server_ca), client_ca_pem=svc.claim_ca_pem)
    with serving(broker):
        der = server_ca.cert.public_bytes(Encoding.DER)
        res = run_device(
            mpy, MUTUAL, {"server_ca_der": [der.hex()], "port": broker.port}, board=board
        )
    assert res["node_id"] == node_id
    assert res["reply"].endswith("\r\n\r\nok")
    assert broker.peer_cns == [node_id]  # the server saw the board's certificate
    assert broker.requests[0].startswith(b"GET /whoami HTTP/1.1\r\n")


def test_certificate_from_another_ca_refused_by_broker(
    svc: RunningService, mpy: Interpreter, new_board: BoardFactory
) -> None:
    # The same broker, trusting another claim CA, must refuse the board: the handshake is real.
    board = new_board("mtls-refused")
    svc.register(board.mac, board.unique_id)
    run_device(mpy, CLAIM, claim_config(svc), board=board)
    server_ca = make_ca("broker CA")
    broker = LocalServer(_whoami, issue_server(server_ca), client_ca_pem=make_ca("other").cert_pem)
    code = (
        "try:\n"
        + "\n".join("    " + line for line in MUTUAL.strip().splitlines())
        + ("\nexcept Exception as e:\n    out(err(e))\n")
    )
    with serving(broker):
        der = server_ca.cert.public_bytes(Encoding.DER)
        res = run_device(
            mpy, code, {"server_ca_der": [der.hex()], "port": broker.port}, board=board
        )
    assert res["kind"] == "OSError", res  # the broker refused the handshake
    assert broker.peer_cns == [] and broker.requests == []
