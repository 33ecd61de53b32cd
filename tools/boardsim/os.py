"""os stand-in: the Unix port's builtin os plus uname() and urandom() as the board has them."""

import sys

import _boardsim

_saved_path = sys.path[:]
sys.path[:] = []
try:
    import os as _builtin
finally:
    sys.path[:] = _saved_path
del _saved_path


def __getattr__(name):
    # Everything but uname is the builtin's, reached here rather than copied (on a board this
    # module is built in and costs no GC heap; here the copies would).
    return getattr(_builtin, name)


class _Uname:
    # extmod/modos.c (v1.23.0-v1.28.0): sysname and nodename MICROPY_PY_SYS_PLATFORM, release
    # MICROPY_VERSION_STRING, version "<git tag> on <build date>", machine "<board> with <MCU>";
    # the release's values come from board.json "firmware".
    def __init__(self, machine, fw):
        self.sysname = "esp32"
        self.nodename = "esp32"
        self.release = fw.get("release", "1.28.0")
        self.version = "%s on %s" % (fw.get("git_tag", "v1.28.0"), fw.get("date", "2026-04-06"))
        self.machine = machine

    def __getitem__(self, i):
        return (self.sysname, self.nodename, self.release, self.version, self.machine)[i]

    def __len__(self):
        return 5

    def __repr__(self):
        return "(sysname=%r, nodename=%r, release=%r, version=%r, machine=%r)" % tuple(
            self[i] for i in range(5)
        )


def uname():
    return _Uname(_boardsim.board()["machine"], _boardsim.firmware())


def urandom(n):
    # The board's os.urandom, modelled in _urandom (see there), which is loaded for the call and
    # dropped again: on a board os is built in, and a claim's heap must not pay for the model.
    import sys

    import _urandom

    try:
        return _urandom.urandom(n)
    finally:
        sys.modules.pop("_urandom", None)
