"""bluetooth stand-in: BLE's radio switch only (active()), on builds that have Bluetooth."""

# MicroPython's esp32 port builds the bluetooth module (NimBLE) unless a board turns it off
# (ports/esp32/mpconfigport.h MICROPY_PY_BLUETOOTH, default 1): ESP32_GENERIC_S2 does (the chip
# has no Bluetooth); the H2 preview build has it (boards/ESP32_GENERIC_H2: sdkconfig.ble, no
# WLAN). BLE().active(True) starts the controller (nimble_port_init), which turns the RF
# subsystem on. Nothing else of the module is modelled.

import _boardsim

if not _boardsim.board().get("bluetooth"):
    raise ImportError("no module named 'bluetooth'")


class BLE:
    # One controller: every BLE() is the same radio, as on the chip; its state is kept in
    # _boardsim (the board's, not this module's).
    def active(self, is_active=None):
        # Sets the state when given; returns it either way (extmod/modbluetooth.c).
        if is_active is not None:
            _boardsim.radios["ble"] = bool(is_active)
        return bool(_boardsim.radios.get("ble"))
