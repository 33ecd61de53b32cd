"""The service's commands: serve options and refusals, user add, register."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from rmbench.cli import main
from rmbench.service import ca, client, server
from rmbench.service.harness import running_service
from rmbench.service.store import Store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_insecure_http_is_refused_off_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "svc"
    code, out, err = run(
        capsys, "serve", "--state-dir", str(state), "--host", "0.0.0.0", "--insecure-http"
    )
    assert (code, out) == (1, "")
    assert err == (
        "rmbench: serve: --insecure-http serves plain HTTP, which is allowed on a loopback "
        "address only (127.0.0.1, ::1, localhost), not 0.0.0.0\n"
    )
    assert not state.exists()


def test_insecure_http_on_loopback(tmp_path: Path) -> None:
    with running_service(tmp_path / "svc", insecure_http=True) as svc:
        assert svc.base_url.startswith("http://localhost:")
        r = client.request(svc.base_url, "GET", "/mqtt_host", ca_file=None)
        assert r.status == 200 and "mqtt_host" in r.json()


def test_one_server_per_state_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "svc"
    with running_service(state):
        code, _, err = run(capsys, "serve", "--state-dir", str(state))
    assert code == 1
    assert err == (
        f"rmbench: serve: {state}: another rmbench serve already uses this state directory\n"
    )


def test_names_are_covered_by_the_server_certificate(tmp_path: Path) -> None:
    names = ["bench.example", "10.11.12.13"]
    with running_service(tmp_path / "svc", names=names) as svc:
        port = int(svc.base_url.rsplit(":", 1)[1])
        assert svc.base_url == f"https://bench.example:{port}"
        context = client.pinned_context(svc.server_ca_file)
        for name in ["localhost", "127.0.0.1", *names]:
            # Connect to loopback but check the certificate against `name`.
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            context.wrap_socket(raw, server_hostname="other.example")


def test_first_run_creates_the_state_with_private_keys(tmp_path: Path) -> None:
    with running_service(tmp_path / "svc") as svc:
        state = svc.state_dir
    for key in (ca.SERVER_CA_KEY, ca.CLAIM_CA_KEY, ca.SERVER_KEY):
        assert (state / key).stat().st_mode & 0o777 == 0o600, key
    for cert in (ca.SERVER_CA_CERT, ca.CLAIM_CA_CERT, ca.SERVER_CERT):
        assert (state / cert).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----\n"), cert
    assert not list(state.glob("*.tmp"))


def test_broken_state_dir_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "svc"
    with running_service(state):
        pass
    (state / ca.CLAIM_CA_KEY).unlink()
    code, _, err = run(capsys, "serve", "--state-dir", str(state))
    assert code == 1
    assert err == (
        f"rmbench: serve: {state}: claim-ca.key is missing but its pair exists; restore it, "
        "or remove claim-ca.pem and claim-ca.key to create a new CA\n"
    )


def test_user_add(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "svc")
    code, out, _ = run(capsys, "user", "add", "--state-dir", state, "--token", "t1")
    assert code == 0
    user_id = out.strip()
    assert len(user_id) == 22 and user_id.isalnum()
    assert run(capsys, "user", "add", "--state-dir", state, "--token", "t2", "--user-id", "bob")[
        :2
    ] == (0, "bob\n")
    # Same token again: the same user, with the new quota.
    assert run(capsys, "user", "add", "--state-dir", state, "--token", "t1", "--quota", "9")[
        :2
    ] == (
        0,
        f"{user_id}\n",
    )
    code, _, err = run(
        capsys, "user", "add", "--state-dir", state, "--token", "t1", "--user-id", "bob"
    )
    assert (code, err) == (
        1,
        f"rmbench: user add: this token already belongs to user {user_id}\n",
    )
    store = Store.open(Path(state))
    try:
        alice, bob = store.user(user_id), store.user("bob")
        by_token = store.user_for_token("t2")
    finally:
        store.close()
    assert alice is not None and alice.quota == 9
    assert bob is not None and bob.quota == 5  # the default, as the real service
    assert by_token == bob
    # The database holds no usable token.
    assert b"t2" not in (Path(state) / "claims.sqlite3").read_bytes()


def test_register(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "svc")
    uid = "00112233445566778899aabbccddeeff"
    argv = ("register", "--state-dir", state)
    assert run(capsys, *argv, "--mac", "7c:df:a1:00:03:3b", "--unique-id", uid)[:2] == (
        0,
        "registered 7CDFA100033B\n",
    )
    store = Store.open(Path(state))
    assert store.unique_id("7CDFA100033B") == bytes.fromhex(uid)
    store.close()
    assert run(capsys, *argv, "--mac", "7CDFA100033B", "--unique-id", "ff" * 16)[:2] == (
        0,
        "registered 7CDFA100033B (replaced an earlier unique id)\n",
    )
    code, _, err = run(capsys, *argv, "--mac", "7CDFA10003", "--unique-id", uid)
    assert (code, err) == (
        1,
        "rmbench: register: MAC must be 6 bytes in hex, e.g. 7C:DF:A1:00:03:3B, "
        "got '7CDFA10003'\n",
    )
    code, _, err = run(capsys, *argv, "--mac", "7CDFA100033B", "--unique-id", "abcd")
    assert (code, err) == (
        1,
        "rmbench: register: unique id must be 32 hex digits (16 bytes), got 'abcd'\n",
    )
    code, _, err = run(capsys, *argv, "--mac", "7CDFA100033B")
    assert (code, err) == (1, "rmbench: register: give both --mac and --unique-id\n")


def test_fault_command_needs_a_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "fault", "chunked")
    assert (code, err) == (1, "rmbench: fault: give --state-dir of a running server, or --url\n")
    code, _, err = run(capsys, "fault", "--state-dir", str(tmp_path), "chunked")
    assert (code, err) == (
        1,
        f"rmbench: fault: no local service is running on {tmp_path} (no server.json)\n"
        "rmbench: hint: start one: rmbench serve --state-dir DIR\n",
    )


def test_listening_socket_is_tcp() -> None:
    # asyncio turns on TCP_NODELAY for accepted sockets only when proto is IPPROTO_TCP; without it
    # every reply body waits behind its headers for the client's delayed ACK (~40 ms).
    sock = server._bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, out, err = run(
            capsys, "serve", "--state-dir", str(tmp_path / "svc"), "--port", str(port)
        )
    assert (code, out) == (2, "")
    assert err == f"rmbench: serve: cannot listen on 127.0.0.1:{port}: Address already in use\n"
