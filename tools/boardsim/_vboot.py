"""Virtual board start-up: the Unix port's stand-in for the ESP32's frozen _boot.py."""

# Run by the virtual board's supervisor (rmbench.vboard) as
#   micropython -X heapsize=N -i _vboot.py MODE
# MODE "full" runs boot.py then main.py (power-on, machine.reset(), soft reset from the friendly
# REPL); "raw" runs only boot.py (soft reset from the raw REPL, as the ESP32 port does). `-i`
# then drops into the REPL, which the supervisor relays to the serial side.
# Markers for the supervisor go out as OSC escapes (ESC ] rmvb:<event> BEL) and never reach
# the serial side: "ready" (filesystem up: host input may flow), "repl" (the REPL starts
# next), "softreset" (main.py asked for a soft reset: sys.exit()).

import os
import sys


def _mark(event):
    sys.stdout.write("\x1b]rmvb:" + event + "\x07")


def _mount():
    # The board's own files become "/", as on a board with its flash filesystem; the board state
    # (NVS, pins) and these simulation modules stay reachable under /_board and /_sim.
    fs = os.getenv("RMBENCH_VBOARD_FS")
    state = os.getenv("RMBENCH_BOARD_DIR")
    sim = os.getenv("RMBENCH_VBOARD_SIM")
    os.umount("/")
    os.mount(os.VfsPosix(fs), "/")
    os.mount(os.VfsPosix(state), "/_board")
    os.mount(os.VfsPosix(sim), "/_sim")
    os.putenv("RMBENCH_BOARD_DIR", "/_board")
    os.chdir("/")
    # The ESP32 port's path, with the board doubles last: they extend built-in modules, so
    # they are found wherever they sit on the path.
    sys.path[:] = ["", ".frozen", "/lib", "/_sim"]
    sys.argv[:] = []


def _print_exception(e):
    # As the board's pyexec prints it, without this file's frame.
    import io

    buf = io.StringIO()
    sys.print_exception(e, buf)
    for line in buf.getvalue().split("\n"):
        if line and "_vboot.py" not in line:
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
        _print_exception(e)
    return True


def _boot(mode, g):
    _mount()
    _mark("ready")
    if not _run("boot.py", g):
        return False
    if mode == "full":
        return _run("main.py", g)
    return True


def _start():
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    _mark("repl" if _boot(mode, globals()) else "softreset")


# Leave __main__ as a board leaves it: only what boot.py and main.py defined (and os, sys).
_start()
for _name in ("_mark", "_mount", "_print_exception", "_run", "_boot", "_start", "_name"):
    globals().pop(_name, None)
