"""esp-rainmaker-cli's own mapping code as a peer: run by the Python of the CLI's venv
(build/rainmaker-cli-venv), one JSON command per line on stdin, one JSON answer per line.

Library prints go to stderr. Each command names the CLI config directory it runs as
(RM_USER_CONFIG_DIR: the logged-in profile). The ops call the CLI's functions unchanged
(esp-rainmaker-cli 1.14.1):
- chal_flow: rmaker_tools/rmaker_prov/challenge_response.py perform_challenge_response_flow,
  with the CLI's Security0 and a transport whose far end is a stand-in device (below);
- initiate / verify: initiate_challenge_mapping / verify_challenge_response of the same module;
- add_mapping / mapping_status / remove: rmaker_lib/node.py Node.add_user_node_mapping,
  get_mapping_status, remove_user_node_mapping;
- get_nodes / node_details: rmaker_lib/session.py Session.get_nodes, get_node_details.

The stand-in device answers ch_resp as ESP RainMaker v1.16.0 does
(components/esp_rainmaker/src/core/esp_rmaker_chal_resp.c, esp_rmaker_chal_resp_handler, and
esp_rmaker_node_auth.c, esp_rmaker_node_auth_sign_msg): it signs the SHA-256 of the challenge
bytes it received with the node's key (an EC key: a DER ECDSA signature) and replies
RespCRPayload {payload: the signature's bytes, node_id}.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rmaker_lib import node, session  # type: ignore[import-not-found]
from rmaker_tools.rmaker_prov import challenge_response  # type: ignore[import-not-found]
from rmaker_tools.rmaker_prov.prov import prov_util  # type: ignore[import-not-found]

pb = challenge_response.esp_rmaker_chal_resp_pb2


class StandInDevice:
    """The transport the CLI talks to; its far end signs challenges with one node key."""

    def __init__(self, node_id: str, key_pem: str) -> None:
        self.node_id = node_id
        self.key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        self.received: list[bytes] = []
        self.signatures: list[bytes] = []

    def send_data(self, endpoint: str, data: str) -> str:
        # The CLI hands the transport the (Security0: plain) message as a latin-1 string.
        if endpoint != "ch_resp":
            raise RuntimeError(f"stand-in device has no endpoint {endpoint}")
        msg = pb.RMakerChRespPayload()
        msg.ParseFromString(data.encode("latin-1"))
        reply = pb.RMakerChRespPayload()
        if msg.msg == pb.RMakerChRespMsgType.TypeCmdDisableChalResp:
            reply.msg = pb.RMakerChRespMsgType.TypeRespDisableChalResp
            reply.status = pb.RMakerChRespStatus.Success
            reply.respDisableChalRespPayload.SetInParent()
            return str(reply.SerializeToString().decode("latin-1"))
        challenge = bytes(msg.cmdChallengeResponsePayload.payload)
        self.received.append(challenge)
        assert isinstance(self.key, ec.EllipticCurvePrivateKey)
        signature = self.key.sign(challenge, ec.ECDSA(hashes.SHA256()))
        self.signatures.append(signature)
        reply.msg = pb.RMakerChRespMsgType.TypeRespChallengeResponse
        reply.status = pb.RMakerChRespStatus.Success
        reply.respChallengeResponsePayload.payload = signature
        reply.respChallengeResponsePayload.node_id = self.node_id
        return str(reply.SerializeToString().decode("latin-1"))


def run(cmd: dict[str, Any]) -> Any:
    os.environ["RM_USER_CONFIG_DIR"] = cmd["config_dir"]
    op = cmd["op"]
    s = session.Session()
    if op == "chal_flow":
        device = StandInDevice(cmd["node_id"], cmd["key_pem"])
        security = prov_util.get_security(0)
        ok, node_id = challenge_response.perform_challenge_response_flow(
            device, security, s, disable_on_success=cmd.get("disable", False)
        )
        return {
            "ok": ok,
            "node_id": node_id,
            "received": [c.decode("utf-8") for c in device.received],
            "signatures": [sig.hex() for sig in device.signatures],
        }
    if op == "initiate":
        return list(challenge_response.initiate_challenge_mapping(s))
    if op == "verify":
        signature = bytes.fromhex(cmd["signature"])
        return challenge_response.verify_challenge_response(
            s, cmd["request_id"], cmd["node_id"], signature
        )
    if op == "add_mapping":
        return node.Node(cmd["node_id"], s).add_user_node_mapping(cmd["secret_key"])
    if op == "mapping_status":
        return node.Node(cmd["node_id"], s).get_mapping_status(cmd["request_id"])
    if op == "remove":
        return node.Node(cmd["node_id"], s).remove_user_node_mapping()
    if op == "get_nodes":
        return sorted(s.get_nodes())
    if op == "node_details":
        return s.get_node_details()
    raise ValueError(f"unknown op {op}")


def main() -> None:
    out = sys.stdout
    for line in sys.stdin:
        try:
            # Whatever the library prints goes to stderr: stdout carries only the answers.
            with contextlib.redirect_stdout(sys.stderr):
                answer = {"result": run(json.loads(line))}
        except Exception as e:  # every failure goes back to the test
            answer = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
