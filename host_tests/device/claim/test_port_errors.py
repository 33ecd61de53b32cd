"""What the ESP32 port's socket layer does with an address it cannot use reaches the claim as a
NetworkError, never as a bare TypeError or AttributeError."""

from __future__ import annotations

from rmbench.micropython import Interpreter

from .conftest import BoardFactory
from .support import run_device

CONNECT = """
import time
from rmclaim import connect
res = {}
def wait(events):
    pass
for host in ARGS:
    try:
        connect.connect(host, 8443, None, time.ticks_add(time.ticks_ms(), 2000), wait)
        res[host] = "connected"
    except Exception as e:
        res[host] = err(e)
out(res)
"""


def test_an_ipv6_address_is_a_network_error(mpy: Interpreter, new_board: BoardFactory) -> None:
    # getaddrinfo on the board gives an IPv6 literal an entry without an address
    # (ports/esp32/modsocket.c); connecting to it would raise TypeError.
    board = new_board("v6")
    res = run_device(mpy, CONNECT, ["::1", "no-such-host.invalid"], board=board)
    v6 = res["::1"]
    assert (v6["kind"], v6["retryable"]) == ("NetworkError", True)
    assert v6["error"] == "https: cannot connect to ::1:8443: no IPv4 address"
    unknown = res["no-such-host.invalid"]
    assert unknown["kind"] == "NetworkError"
    assert unknown["error"].startswith("https: cannot connect to no-such-host.invalid:8443: ")
