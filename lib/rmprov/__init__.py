"""Field onboarding for MicroPython: the device side of Espressif's provisioning protocol."""

from rmprov.errors import (  # noqa: F401 (re-exported: the public exception types)
    ProtoError,
    ProvError,
    SecurityError,
)

__version__ = "0.1.0"
