"""socket stand-in: the Unix port's, with getaddrinfo as the ESP32 port answers it."""

# ports/esp32/modsocket.c (v1.23.0-v1.28.0, esp_socket_getaddrinfo) fills in the address only
# for AF_INET results: an IPv6 literal or a host with only IPv6 addresses gives an entry whose
# address is None. Here: IPv4 as the Unix port resolves it, else, when the host has an IPv6
# address, such an entry.

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
    try:
        return _builtin.getaddrinfo(host, port, _builtin.AF_INET, type, proto, flags)
    except OSError:
        _builtin.getaddrinfo(host, port, _builtin.AF_INET6, type, proto, flags)
    return [(10, type or _builtin.SOCK_STREAM, proto, "", None)]  # AF_INET6 (lwIP), no address
