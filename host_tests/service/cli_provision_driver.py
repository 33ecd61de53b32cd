"""esp-rainmaker-cli's `provision` command run offline against the local service (run by the
Python of the CLI's venv; RMBENCH_PROVISION in the environment holds the JSON arguments).

rmaker_cmd/provision.py of esp-rainmaker-cli 1.14.1 runs unchanged: its session from the
logged-in profile, the secret key it makes, its PUT user/nodes/mapping and its status polling
(every 5 s, for 60 s). Only provision_device, the part that talks to the board over SoftAP/BLE,
is replaced by a stand-in node that takes the user id and secret key as cloud_user_assoc
would, and publishes its mapping message as the firmware does once on MQTT
(ESP RainMaker v1.16.0 esp_rmaker_user_mapping.c: {"node_id", "user_id", "secret_key",
"reset": true}), handed to the service's internal endpoint as the MQTT side will:
- when "before_put": during provisioning (a node that joins and connects fast);
- when "after_first_poll": once the CLI has seen the first status ("requested");
- node_secret, when given, replaces the secret key the node publishes (a node that got
  another one).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import requests
from rmaker_cmd import provision as prov  # type: ignore[import-not-found]

ARGS = json.loads(os.environ["RMBENCH_PROVISION"])
_published = False


def publish(user_id: str, secret_key: str) -> None:
    global _published
    _published = True
    payload = {"node_id": ARGS["node_id"], "user_id": user_id, "secret_key": secret_key}
    payload["reset"] = True
    r = requests.post(ARGS["internal_url"], data=json.dumps(payload), timeout=10)
    print(f"STAND-IN published: {r.status_code} {r.text}", flush=True)


def stand_in_provision_device(
    transport_mode: str, pop: str, userid: str, secretkey: str, **kw: Any
) -> tuple[str, bool]:
    seen = {"transport": transport_mode, "pop": pop, "userid": userid, "secretkey": secretkey}
    print("STAND-IN got: " + json.dumps(seen), flush=True)
    secret = ARGS.get("node_secret") or secretkey
    if ARGS["when"] == "before_put":
        publish(userid, secret)
    elif ARGS["when"] == "after_first_poll":
        real_get = requests.get

        def get(url: str, **kwargs: Any) -> Any:
            reply = real_get(url, **kwargs)
            if "user/nodes/mapping" in url and not _published:
                publish(userid, secret)
            return reply

        requests.get = get  # type: ignore[assignment]
    # As provision_device returns after Wi-Fi provisioning: (node id, no challenge-response).
    return ARGS["node_id"], False


prov.provision_device = stand_in_provision_device
prov.provision(
    {"pop": "abcd1234", "transport": "softap", "ssid": "BENCH", "passphrase": "bench-pass"}
)
sys.stdout.flush()
