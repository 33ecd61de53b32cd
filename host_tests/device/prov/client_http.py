"""esp-rainmaker-cli's own provisioning client over HTTP, pointed at a loopback address (runs in
the CLI's venv). argv[1] is JSON {"scenario", "address", ...}; prints one JSON result line.

Scenarios, all through the CLI's code (rmaker_tools/rmaker_prov/esp_rainmaker_prov.py and
prov/prov_util.py: its transport_http, Security0/1 and message helpers), nothing written here:
  provision: esp_rainmaker_prov.provision_device itself (the `provision` command's flow:
    capabilities, security from proto-ver, session, cloud_user_assoc, Wi-Fi config, apply,
    status polling), with get_transport pointed at `address` instead of 192.168.4.1:80;
  session: proto-ver, then a security session with `pop` (and `sec`); then, when it is up,
    get_wifi_config and custom_config (cloud_user_assoc) over it;
  half: proto-ver and the first handshake message, then the connection is dropped.
Library prints go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

from rmaker_tools.rmaker_prov import esp_rainmaker_prov  # type: ignore[import-not-found]

esp_prov = esp_rainmaker_prov.esp_prov


def run(args: dict[str, Any]) -> dict[str, Any]:
    scenario = args["scenario"]
    if scenario == "provision":
        original = esp_prov.get_transport

        def loopback(mode: str, name: str | None) -> Any:
            return original(mode, args["address"])

        esp_prov.get_transport = loopback
        result = esp_rainmaker_prov.provision_device(
            "softap",
            args["pop"],
            args["user_id"],
            args["secret_key"],
            ssid=args["ssid"],
            passphrase=args["passphrase"],
            no_retry=True,
        )
        return {"result": list(result) if isinstance(result, tuple) else result}
    tp = esp_prov.get_transport("softap", args["address"])
    out: dict[str, Any] = {"version": esp_prov.get_version(tp)}
    sec = esp_prov.get_security(args.get("sec", 1), pop=args["pop"])
    if scenario == "half":
        request = sec.security_session(None)
        out["reply"] = len(tp.send_data("prov-session", request))
        tp.conn.close()
        return out
    try:
        out["session"] = esp_prov.establish_session(tp, sec)
    except RuntimeError as e:
        out["session"] = f"RuntimeError: {e}"
        return out
    out["cookie"] = tp.get_cookie()
    out["status"] = esp_prov.get_wifi_config(tp, sec)
    out["assoc"] = list(esp_rainmaker_prov.custom_config(tp, sec, "user-1", "secret-1"))
    return out


def main() -> None:
    args = json.loads(sys.argv[1])
    with contextlib.redirect_stdout(sys.stderr):
        try:
            result = run(args)
        except Exception as e:  # the CLI's own failures are results here
            result = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
