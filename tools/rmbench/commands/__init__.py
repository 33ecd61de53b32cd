"""The rmbench CLI's handlers, one module per verb group (rmbench.cli holds the command table).

Each command has `args_<name>(parser)`, which adds its options, and `do_<name>(args) -> int`,
which resolves the board, service and files the options name, calls an operation of the
rmbench package (which takes typed values, never an argparse Namespace, and prints nothing)
and renders its result. Options that several commands share are defined once, in `options`.
"""
