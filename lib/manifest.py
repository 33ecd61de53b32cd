# The device library's packages, in micropython-lib's manifest verbs (tools/rmbench/manifest.py
# reads them for `rmbench deploy`; firmware/manifest.py includes this file). Each package goes to
# the board's /lib/<package>/ as .mpy files, with its data files (rmclaim's p256g.bin) beside them.
metadata(  # noqa: F821
    description="Device-side ESP RainMaker: claiming, field onboarding, the node online",
    version="0.3.0",
)

package("rmclaim")  # noqa: F821  the claim: key, CSR, claiming service, certificate check, NVS
package("rmprov")  # noqa: F821  field onboarding over Espressif's provisioning protocol
package("rmnode")  # noqa: F821  the claimed node's MQTT connection, config and user mapping
