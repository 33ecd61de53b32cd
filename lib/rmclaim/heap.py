"""How a claim fits a board's heap: phases that drop their modules, results moved low."""

# The heap budget. A board starts with a GC heap of 56 KB (ESP32), 36 KB (C2) or 64 KB (the
# others) and grows it only by taking the internal RAM that Wi-Fi and TLS need (MicroPython
# ports/esp32/mpconfigport.h). The whole library does not fit at once: its code alone, loaded
# together, is more than a claim may use. So a claim runs in phases (rmclaim.claim: prepare,
# the network part, the check, the store), each in the modules it imports, which leave the
# heap when the phase is over; only plain data (str, bytes, tuples, ints) passes between them.
# Measured with the claim's benchmark (tools/benchmarks/bench_claim.py): without unload() the
# smallest heap that completes a claim goes from about 60 KB to about 104 KB on the 64-bit
# Unix port; settle() buys about 2 KB more. At 32 bits (a board's object sizes) a claim needs
# 43-44 KB today; README "32-bit heap figures" says what holds it.
#
# The rules that make a module leave the heap: nothing may refer to it, neither an object of
# a class it defines (results are plain data; classes with data but no methods, such as
# chip.ChipInfo, are fine only while their module stays loaded) nor a frame that imported it
# (so a phase imports in a function of its own and unloads after that function returned).


def unload(*names):
    # Drop rmclaim modules a finished phase needed, so the next phase has their heap. Never
    # errors: the package's classes must stay the same objects.
    import gc
    import sys

    import rmclaim

    for name in names:
        sys.modules.pop("rmclaim." + name, None)
        if name in rmclaim.__dict__:
            delattr(rmclaim, name)
    gc.collect()


def settle(v):
    # A copy of v (str, bytes or a tuple of them), made once the phase that produced v has
    # left the heap: MicroPython allocates first-fit and never moves objects, so the copy lands
    # in a low hole, and the original's block, amid the phase's freed code, joins that free
    # space again (fewer islands, larger holes for the next phase).
    if isinstance(v, tuple):
        return tuple(settle(x) for x in v)
    return v[:] if isinstance(v, (str, bytes)) else v
