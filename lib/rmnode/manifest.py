# Package manifest (micropython-lib style): `mpy-cross` compiles these files for deployment.
metadata(description="A claimed ESP RainMaker node's MQTT connection", version="0.1.0")  # noqa: F821

package("rmnode")  # noqa: F821
