"""nvs.json, the simulated NVS partition: reads and write-through writes for esp32.NVS."""

# Loaded by esp32.NVS for each call and dropped again (esp32._io): on a board NVS is built in
# and costs no GC heap, so the claim must not pay for this code while it is not running.
# nvs.json holds {namespace: {key: [kind, value]}}, a blob's value as hex text; it is read and
# written a piece at a time: a read scans the file for the one entry it wants and decodes that
# entry's hex straight into the caller's buffer; a write copies the other entries' hex across
# in chunks, to a new file that then replaces the old one.

import json
import os

import _boardsim
import esp32
from micropython import const

_NOT_FOUND = const(-0x1102)
_NOT_ENOUGH_SPACE = const(-0x1105)
_INVALID_LENGTH = const(-0x110C)
# MicroPython's default `nvs` partition is 0x6000 bytes: 6 pages of 4 KiB, one kept free for
# garbage collection, 126 entries of 32 bytes per page.
_CAPACITY = const(20160)  # 5 * 126 * 32
_CHUNK = const(64)  # bytes of nvs.json read or written at a time


def _stored():
    # The stored entries, from nvs.json ({namespace: {key: [kind, value]}}, as json.dump
    # writes it): [(namespace, key, kind, value)], value an int, or for a blob (file offset
    # of its hex digits, number of bytes). The file is read 64 bytes at a time and only short
    # strings (names, kinds) are kept, never a blob's hex.
    out = []
    try:
        f = open(_boardsim.path("nvs.json"), "rb")
    except OSError:
        return out
    words = []  # the entry being read: numbers, and strings as (offset, length, text or None)
    depth = pos = start = 0
    ns = text = num = None
    in_str = escaped = False
    with f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                return out
            for c in chunk:
                if in_str:
                    if c == 0x22 and not escaped:  # the closing quote
                        in_str = False
                        words.append(
                            (
                                start,
                                pos - start,
                                None if text is None else json.loads(b'"' + text + b'"'),
                            )
                        )
                    elif text is not None:
                        text.append(c)
                        if len(text) > 40:  # longer than any name or kind: only its extent
                            text = None
                    escaped = c == 0x5C and not escaped
                elif c == 0x22:
                    in_str = True
                    text = bytearray()
                    start = pos + 1
                elif c == 0x2D or 0x30 <= c <= 0x39:  # an i32's sign and digits
                    if num is None:
                        num = bytearray()
                    num.append(c)
                else:
                    if num is not None:
                        words.append(int(bytes(num)))
                        num = None
                    if c == 0x7B or c == 0x5B:  # { [
                        depth += 1
                        if depth == 2:
                            ns = words.pop()[2]
                    elif c == 0x7D or c == 0x5D:  # } ]
                        if depth == 3 and len(words) == 3:
                            key, kind, value = words
                            if kind[2] == "b":
                                value = (value[0], value[1] // 2)
                            out.append((ns, key[2], kind[2], value))
                        words = []
                        depth -= 1
                pos += 1


def get(namespace, key, kind):
    # The stored value of key ((offset, length) of a blob's hex in nvs.json) if it holds that
    # kind, else NOT_FOUND (IDF keeps a type per entry).
    entry = None
    for n, k, kd, value in _stored():
        if n == namespace and k == key:
            entry = (kd, value)
    if entry is None or kind and entry[0] != kind:
        raise esp32._error(_NOT_FOUND)
    return entry[1]


def get_blob(namespace, key, buffer):
    offset, n = get(namespace, key, "b")
    if n > len(buffer):
        raise esp32._error(_INVALID_LENGTH)
    mv = memoryview(buffer)
    with open(_boardsim.path("nvs.json"), "rb") as f:
        f.seek(offset)
        for i in range(0, n, _CHUNK // 2):
            part = bytes.fromhex(f.read(min(_CHUNK, 2 * (n - i))).decode())
            mv[i : i + len(part)] = part
    return n


def put(namespace, key, entry):
    # One write (entry (kind, value), or None: an erase), on flash when this returns. Power
    # cuts land just before or just after it: RMBENCH_POWER_CUT="nvs:N" (or "nvs:N:before")
    # cuts just before the N-th write of this boot, so it never happens; "nvs:N:after" just
    # after it, so it is stored and nothing after it runs.
    _boardsim.nvs_writes += 1
    spec = os.getenv("RMBENCH_POWER_CUT") or ""
    at = -1
    if spec.startswith("nvs:"):
        n, _, when = spec[4:].partition(":")
        if int(n) == _boardsim.nvs_writes:
            at = when == "after"
    if at is False:
        _boardsim.power_cut()
    state = _merged(namespace, key, entry)
    used = 0
    for entries in state.values():
        for _, kind, value in entries:
            # One 32-byte entry for the header, plus blob data rounded up to whole entries.
            used += 32
            if kind == "b":
                size = len(value) if isinstance(value, bytes) else value[1]
                used += (size + 31) // 32 * 32
    if used > _CAPACITY:
        raise esp32._error(_NOT_ENOUGH_SPACE)
    _write(state)
    if at is True:
        _boardsim.power_cut()


def _merged(namespace, key, entry):
    # {namespace: [(key, kind, value)]}: the stored entries with one change applied (entry
    # (kind, value), or None for an erase); a value is an int, bytes (the change) or (offset,
    # length) in nvs.json (unchanged).
    out = {}
    for n, k, kind, value in _stored():
        if n != namespace or k != key:
            out.setdefault(n, []).append((k, kind, value))
    if entry is not None:
        out.setdefault(namespace, []).append((key, entry[0], entry[1]))
    return out


def _write(state):
    # nvs.json replaced by `state`, as json.dump would write it: the unchanged blobs' hex copied
    # from the old file, a new one's written 32 bytes at a time. rename is atomic: a power cut
    # leaves the old state or the new one, as IDF's single writes do.
    path = _boardsim.path("nvs.json")
    old = None
    with open(path + ".tmp", "w") as f:
        f.write("{")
        sep = ""
        for ns, entries in state.items():
            f.write("%s%s: {" % (sep, json.dumps(ns)))
            sep = ""
            for key, kind, value in entries:
                f.write('%s%s: ["%s", ' % (sep, json.dumps(key), kind))
                sep = ", "
                if kind == "i":
                    f.write("%d]" % value)
                    continue
                f.write('"')
                if isinstance(value, bytes):
                    for i in range(0, len(value), _CHUNK // 2):
                        f.write(value[i : i + _CHUNK // 2].hex())
                else:
                    if old is None:
                        old = open(path, "rb")
                    old.seek(value[0])
                    left = 2 * value[1]
                    while left:
                        part = old.read(min(_CHUNK, left))
                        f.write(part.decode())
                        left -= len(part)
                f.write('"]')
            f.write("}")
            sep = ", "
        f.write("}")
    if old is not None:
        old.close()
    os.rename(path + ".tmp", path)
