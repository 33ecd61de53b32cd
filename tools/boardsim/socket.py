"""socket stand-in: the Unix port's, with getaddrinfo as the ESP32 port answers it."""

# ports/esp32/modsocket.c (v1.23.0-v1.28.0, esp_socket_getaddrinfo) fills in the address only
# for AF_INET results: an IPv6 literal or a host with only IPv6 addresses gives an entry whose
# address is None. Here: IPv4 as the Unix port resolves it, else, when the host has an IPv6
# address, such an entry. Port 80 of the board itself ("0.0.0.0", "192.168.4.1") is a loopback
# port of the host's choosing, so a server bound through getaddrinfo (rmprov.httpd) is
# reachable from the host as the soft-AP's clients reach 192.168.4.1:80.

import sys

_saved_path = sys.path[:]
sys.path[:] = []
try:
    import socket as _builtin
finally:
    sys.path[:] = _saved_path
del _saved_path


def __getattr__(name):
    return getattr(_builtin, name)


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    if port == 80:  # perhaps the board's own (see _softap; lean: the claim loads this module)
        import _softap

        host, port = _softap.address(host)
        sys.modules.pop("_softap", None)
    try:
        return _builtin.getaddrinfo(host, port, _builtin.AF_INET, type, proto, flags)
    except OSError:
        _builtin.getaddrinfo(host, port, _builtin.AF_INET6, type, proto, flags)
    return [(10, type or _builtin.SOCK_STREAM, proto, "", None)]  # AF_INET6 (lwIP), no address
