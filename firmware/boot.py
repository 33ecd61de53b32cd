# boot.py: runs first on every boot and soft reset; kept minimal, main.py does the work.
# Keep ESP-IDF log output off the REPL UART so the status lines stay parseable.
try:
    import esp

    esp.osdebug(None)
except ImportError:
    pass
