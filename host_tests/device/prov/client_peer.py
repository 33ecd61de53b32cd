"""esp-rainmaker-cli's own provisioning code as a JSON-lines peer (runs in the CLI's venv).

Nothing here implements the protocol: security sessions are the CLI's Security0/Security1
(rmaker_tools/common/security), messages are the CLI's generated protobuf classes
(rmaker_tools/rmaker_prov/*_pb2 through its `proto` loader). Ops:
  describe: {type: {fields}} for the top-level messages, from the protobuf descriptors;
  serialize {type, msg}: the message's bytes (SerializeToString);
  parse {type, data}: the message as a dict (every field; oneof members only when set;
    bytes as {"$hex"}), or {"error"} when protobuf refuses the bytes;
  security {sec, pop}: a new Security0/Security1 client; session {response}: its next
    handshake request (None when done); encrypt/decrypt {data}.
Library prints go to stderr: stdout carries only the answers.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from typing import Any

from rmaker_tools.common.security.security0 import Security0  # type: ignore[import-not-found]
from rmaker_tools.common.security.security1 import Security1  # type: ignore[import-not-found]

# The CLI's message loader (rmaker_prov/proto), importable once security1 has put its folder on
# sys.path.
proto = importlib.import_module("proto")

TYPES = {
    "SessionData": proto.session_pb2.SessionData,
    "WiFiConfigPayload": proto.wifi_config_pb2.WiFiConfigPayload,
    "WiFiScanPayload": proto.wifi_scan_pb2.WiFiScanPayload,
    "WiFiCtrlPayload": proto.wifi_ctrl_pb2.WiFiCtrlPayload,
    "RMakerConfigPayload": proto.esp_rmaker_user_mapping_pb2.RMakerConfigPayload,
    "RMakerChRespPayload": proto.esp_rmaker_chal_resp_pb2.RMakerChRespPayload,
}

OUT = sys.stdout
sys.stdout = sys.stderr


def kind_name(field: Any) -> str:
    names = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 8: "bool"}
    names.update({9: "string", 11: "message", 12: "bytes", 13: "uint32", 14: "enum"})
    return names.get(field.type, f"type{field.type}")


def describe_message(desc: Any) -> dict[str, Any]:
    fields = []
    for f in desc.fields:
        item: dict[str, Any] = {
            "number": f.number,
            "name": f.name,
            "kind": kind_name(f),
            "repeated": f.is_repeated,
            "oneof": f.containing_oneof.name if f.containing_oneof else None,
        }
        if f.message_type is not None:
            item["message"] = describe_message(f.message_type)
        if f.enum_type is not None:
            item["enum"] = [v.number for v in f.enum_type.values]
        fields.append(item)
    return {"name": desc.full_name, "fields": fields}


def fill(msg: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if value is None:
            continue
        field = msg.DESCRIPTOR.fields_by_name[name]
        if field.message_type is not None:
            if field.is_repeated:
                for item in value:
                    fill(getattr(msg, name).add(), item)
            else:
                sub = getattr(msg, name)
                sub.SetInParent()
                fill(sub, value)
        elif field.type == 12:
            setattr(msg, name, bytes.fromhex(value["$hex"]))
        else:
            setattr(msg, name, value)


def as_dict(msg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in msg.DESCRIPTOR.fields:
        value = getattr(msg, f.name)
        if f.containing_oneof is not None and not msg.HasField(f.name):
            continue
        if f.message_type is not None:
            if f.is_repeated:
                out[f.name] = [as_dict(v) for v in value]
            else:
                out[f.name] = as_dict(value) if msg.HasField(f.name) else None
        elif f.type == 12:
            out[f.name] = {"$hex": bytes(value).hex()}
        else:
            out[f.name] = value
    return out


def main() -> None:
    sec: Any = None
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            if op == "describe":
                res: Any = {name: describe_message(t.DESCRIPTOR) for name, t in TYPES.items()}
            elif op == "serialize":
                msg = TYPES[req["type"]]()
                fill(msg, req["msg"])
                res = {"$hex": msg.SerializeToString().hex()}
            elif op == "parse":
                msg = TYPES[req["type"]]()
                try:
                    msg.ParseFromString(bytes.fromhex(req["data"]["$hex"]))
                except Exception as e:  # protobuf's DecodeError (its class varies by backend)
                    res = {"error": type(e).__name__}
                else:
                    res = {"msg": as_dict(msg)}
            elif op == "security":
                sec = Security1(req["pop"], False) if req["sec"] == 1 else Security0(False)
                res = None
            elif op == "session":
                resp = req["response"]
                text = None if resp is None else bytes.fromhex(resp["$hex"]).decode("latin-1")
                with contextlib.redirect_stdout(sys.stderr):
                    out = sec.security_session(text)
                res = None if out is None else {"$hex": out.encode("latin-1").hex()}
            elif op in ("encrypt", "decrypt"):
                data = bytes.fromhex(req["data"]["$hex"])
                res = {"$hex": bytes(getattr(sec, op + "_data")(data)).hex()}
            else:
                res = {"error": "UnknownOp", "message": op}
        except Exception as e:
            res = {"error": type(e).__name__, "message": str(e)}
        OUT.write(json.dumps(res) + "\n")
        OUT.flush()


if __name__ == "__main__":
    main()
