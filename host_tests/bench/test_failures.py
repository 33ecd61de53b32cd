"""What a board does when it cannot claim: clear error lines, LED patterns, retries, REPL."""

from __future__ import annotations

import datetime
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rmbench.board import Board, VirtualBoard
from rmbench.statusline import StatusLine

from .helpers import BenchSetup, flash_groups, led_segments, steps


def _boot_until_retry(bench: BenchSetup, rounds: int = 1) -> list[StatusLine]:
    # Boot and follow the status lines to the `rounds`-th backoff of a board that cannot claim.
    since = bench.board.reset()
    lines: list[StatusLine] = []
    for n in range(1, rounds + 1):
        lines = bench.board.watch_status(since, until=("backoff", "wait"), timeout=bench.timeout)
        assert lines[-1].fields["round"] == str(len([s for s in lines if s.step == "backoff"]))
        if n < rounds:
            bench.board.expect(
                rf"step=backoff wait .*round={n + 1}\b", timeout=bench.timeout, since=since
            )
    return bench.board.status_lines(since)


def _error_flashes(board: VirtualBoard, since_ms: int) -> set[int]:
    # The flash counts of the LED since `since_ms`, apart from single blinks (the connecting
    # and claiming patterns seen between retries).
    groups = flash_groups(led_segments(board, since_ms))
    assert groups, "the LED did not flash"
    return set(groups) - {1}


def _last_pin_ms(board: VirtualBoard) -> int:
    return max((ms for ms, _, _ in board.pin_log()), default=0) + 1


@pytest.mark.needs("wifi")
def test_wrong_wifi_password_is_a_clear_error_and_the_board_stays_reachable(
    bench: BenchSetup, board: Board
) -> None:
    bench.prepare(bench.config(wifi_password="not-the-password"))
    t0 = _last_pin_ms(board) if isinstance(board, VirtualBoard) else 0
    since = board.reset()
    board.expect(r"step=backoff wait .*round=2\b", timeout=bench.timeout, since=since)
    lines = board.status_lines(since)
    errors = [s for s in lines if s.outcome == "error"]
    # A wrong WPA2 password shows only STAT_CONNECTING (network_wlan.c): the board waits to its
    # deadline, then finds the network in a scan, so it is the password.
    assert errors[0].fields["msg"].startswith("wifi: wrong password joining 'rmbench' (status ")
    if isinstance(board, VirtualBoard):
        assert errors[0].line == (
            'rmclaim: step=wifi error class=no-wifi msg="wifi: wrong password joining '
            "'rmbench' (status 1001 after 2 s; the network is in range)\""
        )
    assert [s.step for s in lines[:3]] == ["config", "wifi", "backoff"]
    if isinstance(board, VirtualBoard):
        assert _error_flashes(board, t0) == {2}  # no-wifi: two flashes between dark
    # Still retrying, and still reachable: the raw REPL stops main.py and answers.
    assert board.exec("print('still here')") == "still here\n"
    assert bench.credentials() == {}


@pytest.mark.needs("virtual")
@pytest.mark.parametrize(
    ("ssid", "ap", "message"),
    [
        # Not in range: the firmware retries by itself, status() says 201 (no AP found).
        ("elsewhere", None, "no AP found joining 'elsewhere' (status 201 after 2 s)"),
        # An access point that ends a wrong password's attempts with reason 202 or 205.
        (
            "strict-ap",
            {"ssid": "strict-ap", "password": "another-pass", "auth_fail_reason": 205},
            "wrong password joining 'strict-ap' (status 202 after 2 s)",
        ),
    ],
)
def test_wifi_failures_are_told_apart(
    bench: BenchSetup, board: VirtualBoard, ssid: str, ap: dict[str, object] | None, message: str
) -> None:
    board.sim.update(aps=[{"ssid": "rmbench", "password": "bench-pass"}, *([ap] if ap else [])])
    try:
        bench.prepare(bench.config(wifi_ssid=ssid, wifi_password="not-the-password"))
        lines = _boot_until_retry(bench)
        assert lines[1].step == "wifi" and lines[1].fields["class"] == "no-wifi"
        assert lines[1].fields["msg"] == "wifi: " + message
    finally:
        board.sim.update(aps=[{"ssid": "rmbench", "password": "bench-pass"}])


@pytest.mark.needs("virtual")
@pytest.mark.needs("efuse_unique_id")
def test_a_first_scan_that_misses_the_ap_does_not_fail_the_join(
    bench: BenchSetup, board: VirtualBoard
) -> None:
    # The first attempt finds no AP (status 201) and the driver's own retry joins: the board
    # waits for it instead of failing on the first status that is not "connecting".
    board.sim.update(wifi_faults={"no_ap_attempts": 1})
    try:
        bench.prepare()
        lines = bench.boot()
        assert steps(lines)[:2] == ["config:ok", "wifi:ok"]
        assert lines[1].fields["tries"] == "1"
    finally:
        board.sim.update(wifi_faults={})


@pytest.mark.needs("virtual")
@pytest.mark.needs("efuse_unique_id")
@pytest.mark.parametrize("fault", ["short-reply", "epoch"])
def test_any_ntptime_exception_is_a_failed_sync(
    bench: BenchSetup, board: VirtualBoard, fault: str
) -> None:
    # The frozen ntptime raises ValueError on a short reply and a bare Exception for an
    # unsupported epoch: the board takes either as a failed sync, and its RTC (set) is used.
    board.sim.update(ntp_fault=fault)
    try:
        bench.prepare()
        lines = bench.boot()
        assert "time:skip" in steps(lines)
        assert next(s for s in lines if s.step == "time").fields["reason"] == "ntp-failed-rtc-set"
    finally:
        board.sim.update(ntp_fault=None)


def test_broken_config_file_is_a_clear_error(bench: BenchSetup, board: Board) -> None:
    bench.prepare()
    board.fs_write("/rmclaim.json", b'{"service_url": "https://x", ')
    t0 = _last_pin_ms(board) if isinstance(board, VirtualBoard) else 0
    lines = _boot_until_retry(bench)
    assert steps(lines)[:2] == ["config:error", "backoff:wait"]
    error = lines[0]
    assert error.fields["class"] == "config"
    assert error.fields["msg"].startswith("config: /rmclaim.json is not valid JSON")
    # Retrying cannot fix a broken file: it is said so, and the next try waits the backoff cap
    # (the default 300 s, there being no config to read another from).
    wait = lines[1]
    assert wait.fields["retryable"] == "no"
    assert 150 <= float(wait.fields["s"]) <= 300
    if isinstance(board, VirtualBoard):
        # The LED repeats the config pattern while it waits: six flashes, 800 ms dark apart.
        time.sleep(6)
        assert _error_flashes(board, t0) == {6}  # config: six flashes
    assert bench.credentials() == {}


@pytest.mark.needs("efuse_unique_id")
def test_503_with_retry_after_is_honoured_then_the_claim_completes(bench: BenchSetup) -> None:
    bench.prepare()
    bench.service.inject_fault("status", path="verify", status=503, retry_after=2)
    lines = bench.boot()
    got = steps(lines)
    assert "verify:error" in got
    error = next(s for s in lines if s.line.startswith("rmclaim: step=verify error"))
    assert error.fields["class"] == "unreachable"
    assert error.fields["kind"] == "ServiceUnavailable"
    wait = next(s for s in lines if s.step == "backoff")
    assert float(wait.fields["s"]) >= 2.0  # never sooner than Retry-After
    assert lines[-1].fields["rounds"] == "2"
    assert got.count("verify:ok") == 1


@pytest.mark.needs("efuse_unique_id")
@pytest.mark.parametrize("kind", ["close_after_headers", "close_mid_body"])
def test_dropped_connection_is_retried(bench: BenchSetup, kind: str) -> None:
    # The board notices the cut reply only at its request timeout: keep that short.
    bench.prepare(bench.config(timeout_s=1))
    bench.service.inject_fault(kind, path="initiate")
    lines = bench.boot()
    error = next(s for s in lines if s.outcome == "error")
    assert (error.step, error.fields["class"], error.fields["kind"]) == (
        "initiate",
        "unreachable",
        "NetworkError",
    )
    assert lines[-1].step == "claimed"
    assert lines[-1].fields["rounds"] == "2"


@pytest.mark.needs("efuse_unique_id")
def test_a_slow_service_times_out_and_is_retried(bench: BenchSetup) -> None:
    bench.prepare(bench.config(timeout_s=1))
    bench.service.inject_fault("delay", path="verify", seconds=2.5)
    lines = bench.boot()
    error = next(s for s in lines if s.outcome == "error")
    assert (error.step, error.fields["kind"]) == ("verify", "NetworkError")
    assert lines[-1].step == "claimed"


# --- a man in the middle ------------------------------------------------------------------


def _mitm_certificate(directory: Path) -> tuple[Path, Path]:
    # A CA of its own, and a certificate for localhost from it: everything right but the CA.
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Intercepting CA")])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "mitm.pem", directory / "mitm.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def _mitm_server() -> Iterator[tuple[int, list[bytes]]]:
    # A TLS server on loopback that would answer anything; records what requests reach it.
    with tempfile.TemporaryDirectory() as d:
        cert_file, key_file = _mitm_certificate(Path(d))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        received: list[bytes] = []
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    try:
                        with ctx.wrap_socket(conn, server_side=True) as tls:
                            tls.settimeout(2)
                            data = tls.recv(4096)
                            received.append(data)
                            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                    except (ssl.SSLError, OSError):
                        continue  # the board refused our certificate: what we want

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield listener.getsockname()[1], received
        finally:
            stop.set()
            thread.join(5)
            listener.close()


@pytest.mark.needs("virtual")  # the board must reach this host's loopback
def test_a_man_in_the_middle_is_refused_and_nothing_is_stored(
    bench: BenchSetup, board: VirtualBoard
) -> None:
    with _mitm_server() as (port, received):
        bench.prepare(bench.config(service_url=f"https://localhost:{port}"))
        t0 = _last_pin_ms(board)
        lines = _boot_until_retry(bench)
        board.expect(r"step=backoff wait .*round=2\b", timeout=bench.timeout)
        assert received == []  # no request ever crossed the intercepted connection
    assert _error_flashes(board, t0) == {3}  # unreachable: three flashes
    error = next(s for s in lines if s.outcome == "error")
    assert (error.step, error.fields["class"], error.fields["kind"]) == (
        "initiate",
        "unreachable",
        "TLSError",
    )
    assert bench.credentials() == {}
    stored = board.nvs().get("rmaker_creds", {})
    assert "client_cert" not in stored and "node_id" not in stored
