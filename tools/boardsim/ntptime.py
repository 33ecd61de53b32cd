"""ntptime stand-in: the host clock is already right, so settime() only checks the network."""

# The frozen ntptime (micropython-lib 0.1.1, in every release v1.23.0-v1.28.0) raises OSError
# (no route, ETIMEDOUT after `timeout` seconds), IndexError (getaddrinfo found nothing),
# ValueError("buffer too small") (struct.unpack of a short reply) and Exception("Unsupported
# epoch"). board.json "ntp_fault" makes every sync fail one of those ways: "timeout",
# "no-address", "short-reply", "epoch".

import time as _time

import _boardsim
import network

host = "pool.ntp.org"
timeout = 1


def time():
    if not network._sta_connected():
        raise OSError(110)  # ETIMEDOUT: no route to an NTP server without Wi-Fi
    fault = _boardsim.board().get("ntp_fault")
    if fault == "timeout":
        raise OSError(110)
    if fault == "no-address":
        raise IndexError("list index out of range")
    if fault == "short-reply":
        raise ValueError("buffer too small")
    if fault == "epoch":
        raise Exception("Unsupported epoch")
    return int(_time.time())


def settime():
    time()
