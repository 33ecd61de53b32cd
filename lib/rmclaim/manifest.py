# Package manifest (micropython-lib style): `mpy-cross` compiles these files for deployment.
metadata(description="Device-side ESP RainMaker claiming", version="0.1.0")  # noqa: F821

package("rmclaim")  # noqa: F821
