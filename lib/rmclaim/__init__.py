"""Device-side ESP RainMaker claiming for MicroPython: a board gets and keeps its identity."""

__version__ = "0.1.0"
