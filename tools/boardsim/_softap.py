"""The board's own port 80 as the socket stand-in gives it (loaded per call, then dropped)."""

# A server on the board binds port 80 of "0.0.0.0" (or of 192.168.4.1, ESP-IDF's default
# soft-AP address, esp_netif_defaults.c v5.5.1) through getaddrinfo, as rmprov.httpd does; a
# phone on the soft-AP reaches it at 192.168.4.1:80. Here it is a loopback port the host chose
# (board.json "softap_port", which rmbench vboard start prints as softap=127.0.0.1:PORT).

import _boardsim


def address(host):
    # -> (host, port) to resolve instead of (host, 80).
    if host == "0.0.0.0" or host == "192.168.4.1":
        softap = _boardsim.board().get("softap_port")
        if softap:
            return "127.0.0.1", softap
    return host, 80
