# What `rmbench deploy` puts on a board, in micropython-lib's manifest verbs (read by
# tools/rmbench/manifest.py): the library's packages and the firmware's modules, compiled to .mpy
# under /lib. boot.py and main.py are not listed: the board runs them by name from /, so a deploy
# copies them there as source.
include("../lib/manifest.py")  # noqa: F821

module("rmboot.py")  # noqa: F821  the boot sequence main.py runs: claim, then the node online
