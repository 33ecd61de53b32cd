"""esp stand-in: the calls firmware makes at boot."""

LOG_NONE = 0
LOG_ERROR = 1


def osdebug(uart, level=LOG_ERROR):
    pass


def flash_size():
    return 4 * 1024 * 1024
