"""Field onboarding for MicroPython: the device side of Espressif's provisioning protocol."""

# firmware/rmboot.py runs rmprov.field when the board's config names no Wi-Fi; the other
# modules are its layers (httpd over session over x25519/aesctr, pb/proto for the messages,
# endpoints for what each protocomm endpoint does, saved for what is kept in NVS).

from rmprov.errors import (  # noqa: F401 (re-exported: the public exception types)
    ProtoError,
    ProvError,
    SecurityError,
)

__version__ = "0.2.0"
