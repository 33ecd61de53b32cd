"""esp-rainmaker-cli's own provisioning client against a board's soft-AP address (run by the
Python of the CLI's venv). argv[1] is JSON {"scenario", "address", ...}; prints one JSON line:
{"result": ..., "log": what the CLI printed}.

The CLI's softap transport is hard-wired to 192.168.4.1:80 (prov_util.get_transport); here its
get_transport is wrapped to return the same Transport_HTTP for the board's loopback address,
and everything else is the CLI's code, unchanged (esp-rainmaker-cli 1.14.1):
  device: rmaker_tools/rmaker_prov/esp_rainmaker_prov.py provision_device (proto-ver, security
    from it, session, cloud_user_assoc, Wi-Fi config, apply, status polling; a failure sends
    prov-ctrl reset, and with no_retry returns);
  command: rmaker_cmd/provision.py provision, the `esp-rainmaker-cli provision` command, as the
    logged-in profile of RM_USER_CONFIG_DIR (challenge-response through the cloud when the
    board offers ch_resp, else the secret key); its "press Enter" prompt reads stdin;
  session: proto-ver and a security session with `pop` (and `sec`), then a Wi-Fi status
    request (and, given `user_id` and `secret_key`, cloud_user_assoc: custom_config) over it;
  half: proto-ver and the first handshake message, then the connection is dropped.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback
from typing import Any

from rmaker_tools.rmaker_prov import esp_rainmaker_prov  # type: ignore[import-not-found]

esp_prov = esp_rainmaker_prov.esp_prov


def run(args: dict[str, Any]) -> Any:
    scenario = args["scenario"]
    original = esp_prov.get_transport

    def loopback(mode: str, name: str | None) -> Any:
        return original(mode, args["address"])

    esp_prov.get_transport = loopback
    if scenario == "device":
        result = esp_rainmaker_prov.provision_device(
            "softap",
            args["pop"],
            args["user_id"],
            args["secret_key"],
            ssid=args["ssid"],
            passphrase=args["passphrase"],
            no_retry=True,
        )
        return list(result) if isinstance(result, tuple) else result
    if scenario == "command":
        from rmaker_cmd import provision  # type: ignore[import-not-found]

        vars = {"pop": args["pop"], "transport": "softap", "no_retry": True}
        vars.update(ssid=args["ssid"], passphrase=args["passphrase"])
        try:
            provision.provision(vars)
        except SystemExit as e:
            return f"exit {e.code}"
        return "done"
    tp = loopback("softap", None)
    out: dict[str, Any] = {"version": esp_prov.get_version(tp)}
    sec = esp_prov.get_security(args.get("sec", 1), pop=args["pop"])
    if scenario == "half":
        out["reply"] = len(tp.send_data("prov-session", sec.security_session(None)))
        tp.conn.close()
        return out
    try:
        out["session"] = esp_prov.establish_session(tp, sec)
    except RuntimeError as e:
        out["session"] = f"RuntimeError: {e}"
        return out
    out["cookie"] = tp.get_cookie()
    out["status"] = esp_prov.get_wifi_config(tp, sec)
    if "user_id" in args:
        assoc = esp_rainmaker_prov.custom_config(tp, sec, args["user_id"], args["secret_key"])
        out["assoc"] = list(assoc)
    return out


def main() -> None:
    args = json.loads(sys.argv[1])
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        try:
            result = run(args)
        except Exception as e:  # the CLI's own failures are results here
            result = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
    print(json.dumps({"result": result, "log": log.getvalue()}))


if __name__ == "__main__":
    main()
