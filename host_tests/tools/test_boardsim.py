"""The board doubles in tools/boardsim behave like the real board modules, on the Unix port."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rmbench.boardsim import SIM_DIR, SimBoard, create_board, derive_identity, open_board
from rmbench.errors import UsageError
from rmbench.micropython import Interpreter, MicroPythonError
from rmbench.statusline import is_idf_log
from rmbench.vboard.manager import free_port


@pytest.fixture
def s3(tmp_path: Path) -> SimBoard:
    return create_board(tmp_path / "s3", "esp32s3", name="bench-s3")


def run_json(board: SimBoard, mpy: Interpreter, code: str, **kw: object) -> object:
    out = board.run(mpy, "import json\n" + code, **kw)  # type: ignore[arg-type]
    return json.loads(out.strip().splitlines()[-1])


def test_identity_is_derived_from_the_name_and_stable(s3: SimBoard) -> None:
    mac, uid = derive_identity("bench-s3")
    assert (s3.mac, s3.unique_id) == (mac, uid)
    assert mac.startswith("7CDFA1") and len(mac) == 12
    assert derive_identity("bench-s3-2")[0] != mac
    assert open_board(s3.directory) == s3


def test_unique_id_uname_and_efuse_words(s3: SimBoard, mpy: Interpreter) -> None:
    code = """
import machine, os
words = [machine.mem32[0x6000705C + 4 * i] for i in range(4)]
print(json.dumps({"mac": machine.unique_id().hex(), "machine": os.uname().machine,
                  "sysname": os.uname().sysname, "words": words,
                  "listdir": isinstance(os.listdir("."), list)}))
"""
    got = run_json(s3, mpy, code)
    expected_words = []
    for i in range(4):
        w = int.from_bytes(s3.unique_id[4 * i : 4 * i + 4], "little")
        expected_words.append(w - (1 << 32) if w >= 1 << 31 else w)
    assert got == {
        "mac": s3.mac.lower(),
        "machine": "Generic ESP32S3 module with ESP32S3",  # v1.28.0, the default release
        "sysname": "esp32",
        "words": expected_words,
        "listdir": True,
    }


def test_mem32_reads_of_high_words_are_negative(tmp_path: Path, mpy: Interpreter) -> None:
    board = create_board(tmp_path / "b", "esp32c3", name="x", unique_id=bytes(range(0xF0, 0x100)))
    got = run_json(board, mpy, "import machine\nprint(json.dumps(machine.mem32[0x6000885C]))")
    assert got == 0xF3F2F1F0 - (1 << 32)


def test_unmapped_mem32_read_raises(s3: SimBoard, mpy: Interpreter) -> None:
    with pytest.raises(MicroPythonError, match="unemulated address 0x60007000"):
        s3.run(mpy, "import machine\nmachine.mem32[0x60007000]")


def test_nvs_writes_through_without_commit(s3: SimBoard, mpy: Interpreter) -> None:
    # ESP-IDF 5: each write is on flash when it returns; commit() only checks the handle. A
    # power cut right after the last write (no commit anywhere) keeps every write.
    with pytest.raises(MicroPythonError) as info:
        s3.run(
            mpy,
            """
import esp32, _boardsim
n = esp32.NVS("rmaker_creds")
n.set_blob("client_key", b"k" * 121)
n.set_i32("len", -5)
n.set_blob("client_cert", b"no commit")
n.set_i32("len", 7)
_boardsim.power_cut()
""",
        )
    assert info.value.returncode == -9
    assert s3.nvs() == {
        "rmaker_creds": {"client_key": b"k" * 121, "len": 7, "client_cert": b"no commit"}
    }
    code = """
import esp32
n = esp32.NVS("rmaker_creds")
n.commit()  # accepted, does nothing
buf = bytearray(200)
k = n.get_blob("client_key", buf)
out = {"n": k, "data": bytes(buf[:k]).decode(), "len": n.get_i32("len")}
try:
    n.get_blob("missing", buf)
except OSError as e:
    out["missing"] = [e.errno, e.args[1]]
try:
    n.get_blob("client_key", bytearray(10))
except OSError as e:
    out["small"] = e.errno
try:
    n.get_blob("len", buf)
except OSError as e:
    out["typed"] = e.errno
print(json.dumps(out))
"""
    assert run_json(s3, mpy, code) == {
        "n": 121,
        "data": "k" * 121,
        "len": 7,
        "missing": [-4354, "ESP_ERR_NVS_NOT_FOUND"],
        "small": -4364,
        "typed": -4354,
    }


def test_nvs_erase_and_limits(s3: SimBoard, mpy: Interpreter) -> None:
    code = """
import esp32
n = esp32.NVS("ns")
n.set_blob("a", "text")
n.erase_key("a")
out = {}
try:
    n.erase_key("a")
except OSError as e:
    out["again"] = e.errno
try:
    n.set_blob("sixteen_chars_xx", b"1")
except OSError as e:
    out["long_key"] = e.errno
try:
    n.set_i32("i", 1 << 31)
except OverflowError:
    out["overflow"] = True
try:
    n.set_blob("big", bytes(20000))
except OSError as e:
    out["too_long"] = e.errno
print(json.dumps(out))
"""
    assert run_json(s3, mpy, code) == {
        "again": -4354,
        "long_key": -4361,
        "overflow": True,
        "too_long": -4366,
    }
    assert s3.nvs() == {}


def test_nvs_runs_out_of_space(s3: SimBoard, mpy: Interpreter) -> None:
    code = """
import esp32
n = esp32.NVS("ns")
written = 0
try:
    for i in range(20):
        n.set_blob("b%d" % i, bytes(4000))
        written += 1
except OSError as e:
    print(json.dumps([written, e.errno]))
"""
    # 5 usable pages x 126 entries x 32 bytes = 20160 bytes; a 4000-byte blob takes 4032.
    assert run_json(s3, mpy, code) == [5, -4357]


WRITES = """
import esp32
n = esp32.NVS("ns")
n.set_blob("a", b"1")
n.commit()  # not a write: the cut counts set_blob, set_i32 and erase_key only
n.set_i32("b", 2)
n.erase_key("a")
n.commit()
print("survived")
"""


@pytest.mark.parametrize(
    ("spec", "left"),
    [
        ("nvs:1", {}),
        ("nvs:1:before", {}),
        ("nvs:1:after", {"ns": {"a": b"1"}}),
        ("nvs:2", {"ns": {"a": b"1"}}),
        ("nvs:2:after", {"ns": {"a": b"1", "b": 2}}),
        ("nvs:3", {"ns": {"a": b"1", "b": 2}}),
        ("nvs:3:after", {"ns": {"b": 2}}),
    ],
)
def test_power_cut_just_before_or_after_an_nvs_write(
    s3: SimBoard, mpy: Interpreter, spec: str, left: dict[str, dict[str, object]]
) -> None:
    with pytest.raises(MicroPythonError) as info:
        s3.run(mpy, WRITES, env={"RMBENCH_POWER_CUT": spec})
    assert info.value.returncode == -9
    assert "survived" not in info.value.stdout
    assert s3.nvs() == left


def test_no_cut_past_the_last_write(s3: SimBoard, mpy: Interpreter) -> None:
    assert "survived" in s3.run(mpy, WRITES, env={"RMBENCH_POWER_CUT": "nvs:4"})
    assert s3.nvs() == {"ns": {"b": 2}}


def test_nvs_opens_are_counted_per_session(s3: SimBoard, mpy: Interpreter) -> None:
    # Every construction is an nvs_open that is never closed (MicroPython's esp32_nvs.c).
    s3.run(mpy, "import esp32\nfor ns in ('a', 'b', 'a'):\n    esp32.NVS(ns)")
    # A refused name opens nothing (nvs_open fails before a handle exists).
    s3.run(mpy, "import esp32\nesp32.NVS('a')\ntry:\n    esp32.NVS('')\nexcept OSError:\n    pass")
    assert s3.nvs_opens() == [{"a": 2, "b": 1}, {"a": 1}]


def test_urandom_with_no_radio_on_is_predictable_and_logged(
    tmp_path: Path, mpy: Interpreter
) -> None:
    # esp_random() without an RF subsystem is a PRNG (ESP-IDF "Random Number Generation"):
    # modelled as the same bytes on every board and boot.
    a = create_board(tmp_path / "a", "esp32s3", name="rng-a")
    b = create_board(tmp_path / "b", "esp32c3", name="rng-b")
    code = "import os\nprint(json.dumps([os.urandom(8).hex(), os.urandom(40).hex()]))"
    first = run_json(a, mpy, code)
    assert run_json(a, mpy, code) == first == run_json(b, mpy, code)
    assert a.urandom_calls() == [(8, False), (40, False)] * 2
    assert a.radio_off_urandom() == [8, 40, 8, 40]
    # With the station interface active (no association needed) the bytes are random.
    on = """
import os, network
w = network.WLAN(network.WLAN.IF_STA)
w.active(True)
x = [os.urandom(32).hex(), os.urandom(32).hex()]
w.active(False)
x.append(os.urandom(32).hex())
print(json.dumps(x))
"""
    got = run_json(b, mpy, on)
    assert isinstance(got, list) and isinstance(first, list)
    assert got[0] != got[1]
    assert got[2][:16] == first[0]  # off again: predictable (this boot drew none before)
    assert b.urandom_calls()[-3:] == [(32, True), (32, True), (32, False)]


def test_bluetooth_is_a_radio_where_the_build_has_it(tmp_path: Path, mpy: Interpreter) -> None:
    h2 = create_board(tmp_path / "h2", "esp32h2", name="h2")
    s2 = create_board(tmp_path / "s2", "esp32s2", name="s2")
    code = """
import os, bluetooth
ble = bluetooth.BLE()
x = [ble.active(), ble.active(True), bluetooth.BLE().active(), len(os.urandom(4))]
print(json.dumps(x))
"""
    assert run_json(h2, mpy, code) == [False, True, True, 4]
    assert h2.urandom_calls() == [(4, True)]
    assert (h2.bluetooth, s2.bluetooth) == (True, False)
    with pytest.raises(MicroPythonError, match="no module named 'bluetooth'"):
        s2.run(mpy, "import bluetooth")


def wifi_board(tmp_path: Path, **kw: Any) -> SimBoard:
    aps: list[dict[str, Any]] = [
        {"ssid": "wpa-202", "password": "right-pass", "auth_fail_reason": 202},
        {"ssid": "wpa-205", "password": "right-pass", "auth_fail_reason": 205},
        {"ssid": "open-net", "password": None},
    ]
    return create_board(tmp_path / "w", "esp32s3", name="wifi", aps=aps, **kw)


# Polls a station: `steps` of (ms to wait, what to do) with the status after each.
WIFI = """
import network, time
w = network.WLAN(network.WLAN.IF_STA)
out = {}
def run(name, f):
    try:
        out[name] = f()
    except OSError as e:
        out[name] = "OSError: " + str(e)
def watch(name, ms):
    seen = []
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < ms:
        st = w.status()
        if not seen or seen[-1] != st:
            seen.append(st)
        time.sleep_ms(20)
    out[name] = [seen, w.isconnected()]
"""


def test_wifi_station_as_network_wlan_c(tmp_path: Path, mpy: Interpreter) -> None:
    # MicroPython v1.28.0 ports/esp32/network_wlan.c: connect() needs the station active; the
    # driver retries forever; status() shows 201 for no AP, 202 for reasons 202 and 205, and
    # CONNECTING for a WPA2 handshake that times out (reason 15) however long it goes on; with
    # reconnects=0 the driver stops after one attempt and status() gives the raw reason.
    code = (
        WIFI
        + """
run("inactive", lambda: w.connect("rmbench", "bench-pass"))
w.active(True)
out["reconnects"] = w.config("reconnects")
w.connect("rmbench", "wrong-pass"); watch("wpa2_wrong", 1500); w.disconnect()
out["after_disconnect"] = w.status()
w.connect("nowhere", "x"); watch("no_ap", 800); w.disconnect()
w.connect("wpa-202", "x"); watch("auth_202", 900); w.disconnect()
w.connect("wpa-205", "x"); watch("auth_205", 900); w.disconnect()
w.connect("open-net"); watch("open", 300); w.disconnect()
w.config(reconnects=0)
w.connect("rmbench", "wrong-pass"); watch("no_reconnect", 900); w.disconnect()
w.config(reconnects=-1)
w.connect("rmbench", "bench-pass"); watch("ok", 300)
out["ip"] = w.ifconfig()[0]
out["mac"] = w.config("mac").hex()
out["ap_mac"] = network.WLAN(network.WLAN.IF_AP).config("mac").hex()
import ntptime
ntptime.settime()
print(json.dumps(out))
"""
    )
    board = wifi_board(tmp_path)
    got = run_json(board, mpy, code)
    ap_mac = board.mac[:10] + f"{(int(board.mac[10:], 16) + 1) & 0xFF:02X}"
    assert got == {
        "inactive": "OSError: Wifi Not Started",
        "reconnects": -1,  # the default: retry forever
        "wpa2_wrong": [[1001], False],  # never 202: reason 15 has no status of its own
        "after_disconnect": 1000,
        "no_ap": [[1000, 201], False],  # disconnect()'s reason 8 (IDLE) until the scan fails
        "auth_202": [[1000, 202], False],
        "auth_205": [[1000, 202], False],
        "open": [[1000, 1010], True],
        "no_reconnect": [[1000, 15], False],  # reconnects=0: one attempt, then the raw reason
        # the driver had stopped: disconnect() left the reason (15), so CONNECTING, then joined
        "ok": [[1001, 1010], True],
        "ip": "127.0.0.1",
        "mac": board.mac.lower(),
        "ap_mac": ap_mac.lower(),
    }


def test_wifi_reason_is_sticky_and_overlaps_are_refused(tmp_path: Path, mpy: Interpreter) -> None:
    # One missed scan (201) before the join: the reason shows until GOT_IP clears it. While an
    # attempt is under way connect() is refused and scan() finds nothing; after disconnect()
    # it finds the networks in range.
    code = (
        WIFI
        + """
w.active(True)
w.connect("rmbench", "bench-pass"); watch("transient", 700)
w.disconnect()
w.connect("rmbench", "wrong-pass")
run("connect_again", lambda: w.connect("rmbench", "bench-pass"))
run("connect_no_args", lambda: w.connect())
out["scan_connecting"] = w.scan()
w.disconnect()
out["scan_idle"] = sorted(ap[0].decode() for ap in w.scan())
w.active(False)
run("scan_inactive", lambda: w.scan())
print(json.dumps(out))
"""
    )
    board = wifi_board(tmp_path)
    data = json.loads((board.directory / "board.json").read_text())
    data["wifi_faults"] = {"no_ap_attempts": 1}
    (board.directory / "board.json").write_text(json.dumps(data))
    got = run_json(board, mpy, code)
    assert got == {
        "transient": [[1001, 201, 1010], True],
        "connect_again": "OSError: Wifi Internal State Error",
        "connect_no_args": "OSError: Wifi Internal Error",
        "scan_connecting": [],
        "scan_idle": ["open-net", "rmbench", "wpa-202", "wpa-205"],
        "scan_inactive": "OSError: STA must be active",
    }


def test_soft_ap_as_network_wlan_c(tmp_path: Path, mpy: Interpreter) -> None:
    # MicroPython v1.28.0 ports/esp32/network_wlan.c over ESP-IDF: an AP's config() needs the
    # AP active (esp_wifi_set_config), AP keys on the station say "AP required", a WPA2 AP
    # needs a password of 8 or more, status('stations') lists (mac,) tuples, and the active AP
    # is 192.168.4.1. Its port 80, bound through getaddrinfo, is the board's loopback port.
    code = (
        WIFI
        + """
import socket
ap = network.WLAN(network.WLAN.IF_AP)
run("config_inactive", lambda: ap.config(essid="PROV_x"))
run("stations_inactive", lambda: ap.status("stations"))
ap.active(True)
run("config", lambda: ap.config(essid="PROV_abc123", authmode=0, max_clients=2))
run("wpa2_short", lambda: ap.config(authmode=3, password="short"))
run("on_station", lambda: w.config(essid="x"))
run("stations_on_station", lambda: w.status("stations"))
out["essid"] = ap.config("essid")
out["authmode"] = ap.config("authmode")
out["max_clients"] = ap.config("max_clients")
out["stations"] = ap.status("stations")
out["connected"] = ap.isconnected()
out["ip"] = ap.ifconfig()[0]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(socket.getaddrinfo("0.0.0.0", 80)[0][-1])
s.listen(1)
print(json.dumps(out))
c, _ = s.accept()
c.send(b"hello from port 80")
c.close()
"""
    )
    board = create_board(tmp_path / "ap", "esp32s3", name="ap", softap_port=free_port())
    assert board.softap is not None
    host, port = board.softap.split(":")
    env = dict(os.environ, RMBENCH_BOARD_DIR=str(board.directory))
    argv = [*mpy.argv, "-c", "import json\n" + code]
    env["MICROPYPATH"] = str(SIM_DIR)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, text=True) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("{"), line + proc.stdout.read()
        got = json.loads(line)
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            assert conn.recv(100) == b"hello from port 80"
        proc.wait(10)
    assert got == {
        "config_inactive": "OSError: Wifi Invalid Mode",
        "stations_inactive": "OSError: Wifi Invalid Mode",
        "config": None,
        "wpa2_short": "OSError: Wifi Invalid Password",
        "on_station": "OSError: AP required",
        "stations_on_station": "OSError: AP required",
        "essid": "PROV_abc123",
        "authmode": 0,
        "max_clients": 2,
        "stations": [],
        "connected": False,
        "ip": "192.168.4.1",
    }
    board.update(ap_stations=["aabbccddeeff"])
    code = (
        "import network, json\nap = network.WLAN(network.WLAN.IF_AP)\nap.active(True)\n"
        "print(json.dumps([[m.hex() for (m,) in ap.status('stations')], ap.isconnected()]))"
    )
    assert run_json(board, mpy, code) == [["aabbccddeeff"], True]


def test_wlan_if_sta_arrived_in_1_23(tmp_path: Path, mpy: Interpreter) -> None:
    code = "import network\nprint(json.dumps([hasattr(network.WLAN, 'IF_STA'), network.STA_IF]))"
    for release, has in (("1.22", False), ("1.23", True), ("preview", True)):
        board = create_board(tmp_path / release, "esp32s3", name="r", firmware=release)
        assert run_json(board, mpy, code) == [has, 0], release


def test_uname_per_release(tmp_path: Path, mpy: Interpreter) -> None:
    code = "import os\nu = os.uname()\nprint(json.dumps([u.release, u.version, u.machine]))"
    expected = {
        "1.23": ["1.23.0", "v1.23.0 on 2024-05-31", "ESP32C3 module with ESP32C3"],
        "1.28": ["1.28.0", "v1.28.0 on 2026-04-06", "ESP32C3 module with ESP32C3"],
        "preview": [
            "1.29.0-preview",
            "v1.29.0-preview.731.g1c3c201149 on 2026-08-19",
            "ESP32C3 module with ESP32-C3",
        ],
    }
    for release, want in expected.items():
        board = create_board(tmp_path / release, "esp32c3", name="r", firmware=release)
        assert run_json(board, mpy, code) == want, release


def test_a_release_without_the_board_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        create_board(tmp_path / "c6", "esp32c6", name="c6", firmware="1.23")
    assert str(info.value) == (
        "MicroPython v1.23.0 has no firmware for esp32c6 (ESP32_GENERIC_C6): "
        "the first release with one is v1.24.1"
    )
    with pytest.raises(UsageError) as info:
        create_board(tmp_path / "h2", "esp32h2", name="h2", firmware="1.28")
    assert "no MicroPython release has one yet; the preview is the first" in str(info.value)
    assert create_board(tmp_path / "c2", "esp32c2", name="c2", firmware="1.26").firmware == "1.26"


def test_ntptime_failures_as_the_frozen_module_raises(tmp_path: Path, mpy: Interpreter) -> None:
    code = (
        WIFI
        + """
w.active(True); w.connect("rmbench", "bench-pass"); time.sleep_ms(200)
import ntptime
try:
    ntptime.settime()
    out["got"] = "synced"
except Exception as e:
    out["got"] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
"""
    )
    board = wifi_board(tmp_path)
    expected = {
        "timeout": "OSError: [Errno 110] ETIMEDOUT",
        "no-address": "IndexError: list index out of range",
        "short-reply": "ValueError: buffer too small",
        "epoch": "Exception: Unsupported epoch",
    }
    data = json.loads((board.directory / "board.json").read_text())
    for fault, want in expected.items():
        data["ntp_fault"] = fault
        (board.directory / "board.json").write_text(json.dumps(data))
        assert run_json(board, mpy, code) == {"got": want}, fault


def test_esp32_getaddrinfo_gives_no_ipv6_address(s3: SimBoard, mpy: Interpreter) -> None:
    code = """
import socket
v4 = socket.getaddrinfo("127.0.0.1", 80)[0]
v6 = socket.getaddrinfo("::1", 80)[0]
print(json.dumps([v4[0], v4[-1] is not None, v6[0], v6[-1]]))
"""
    assert run_json(s3, mpy, code) == [socket.AF_INET, True, 10, None]


def test_idf_log_lines_on_demand(tmp_path: Path, mpy: Interpreter) -> None:
    board = wifi_board(tmp_path)
    data = json.loads((board.directory / "board.json").read_text())
    data["idf_log"] = True
    (board.directory / "board.json").write_text(json.dumps(data))
    out = board.run(mpy, WIFI + 'w.active(True); w.connect("nowhere"); watch("x", 400)')
    lines = out.splitlines()
    assert lines and all(is_idf_log(line) for line in lines)
    assert re.fullmatch(r"E \(\d+\) wifi: sta disconnected, reason 201", lines[0])


def test_board_without_wifi_has_no_wlan(tmp_path: Path, mpy: Interpreter) -> None:
    h2 = create_board(tmp_path / "h2", "esp32h2", name="h2")
    assert h2.wifi is None
    got = run_json(h2, mpy, "import network\nprint(json.dumps(hasattr(network, 'WLAN')))")
    assert got is False


def test_pin_writes_are_logged_on_change(s3: SimBoard, mpy: Interpreter) -> None:
    s3.run(
        mpy,
        """
import machine, time
led = machine.Pin(48, machine.Pin.OUT, value=0)
led.on(); led.on(); time.sleep_ms(20); led.off(); led(1); led.value(0)
""",
    )
    log = s3.pin_log()
    assert [(pin, level) for _, pin, level in log] == [
        ("48", 0),
        ("48", 1),
        ("48", 0),
        ("48", 1),
        ("48", 0),
    ]
    times = [ms for ms, _, _ in log]
    assert times == sorted(times)


def test_machine_reset_kills_and_leaves_a_marker(s3: SimBoard, mpy: Interpreter) -> None:
    with pytest.raises(MicroPythonError) as info:
        s3.run(mpy, "import machine\nmachine.reset()\nprint('after')")
    assert info.value.returncode == -9
    assert (s3.directory / "reset-requested").exists()


def test_no_interpreter_is_left_running(s3: SimBoard, mpy: Interpreter) -> None:
    with pytest.raises(MicroPythonError):
        s3.run(mpy, "import _boardsim\n_boardsim.power_cut()")
    ps = subprocess.run(["pgrep", "-f", str(s3.directory)], capture_output=True, text=True)
    assert ps.stdout == ""
