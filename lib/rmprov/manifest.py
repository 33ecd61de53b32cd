# Package manifest (micropython-lib style): `mpy-cross` compiles these files for deployment.
metadata(description="Field onboarding over Espressif's provisioning protocol", version="0.2.0")  # noqa: F821

package("rmprov")  # noqa: F821
