"""sys as the board's firmware release reports it (the boot shim puts this in sys.modules)."""

# sys is built in and cannot be shadowed by a file on the path, so tools/boardsim/_vboot.py
# installs this module as sys.modules["sys"]: `import sys` then finds it. It holds what differs
# on a board (platform, version, implementation, from board.json "firmware") and hands every
# other name to the real module (sys.path, sys.modules, sys.stdout, sys.exit... are the same
# objects). py/modsys.c: implementation is (name, version, _machine, _mpy[, _build from
# v1.25.0][, _thread from v1.26.0]); version is "3.4.0; MicroPython <git tag> on <date>".

import sys as _real

import _boardsim

platform = "esp32"


class _Implementation:
    def __init__(self, fw, machine):
        self.name = "micropython"
        self.version = tuple(fw.get("version", (1, 28, 0, "")))
        self._machine = machine
        self._mpy = fw.get("mpy", _real.implementation._mpy)
        self._fields = ["name", "version", "_machine", "_mpy"]
        for key in ("build", "thread"):
            if fw.get(key):
                setattr(self, "_" + key, fw[key])
                self._fields.append("_" + key)

    def __getitem__(self, i):
        return getattr(self, self._fields[i])

    def __len__(self):
        return len(self._fields)

    def __repr__(self):
        return "(" + ", ".join("%s=%r" % (k, getattr(self, k)) for k in self._fields) + ")"


_board = _boardsim.board()
_fw = _boardsim.firmware()
implementation = _Implementation(_fw, _board["machine"])
version = "3.4.0; MicroPython %s on %s" % (_fw.get("git_tag", "v1.28.0"), _fw.get("date", ""))
del _board, _fw


def __getattr__(name):
    return getattr(_real, name)
