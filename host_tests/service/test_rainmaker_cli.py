"""A real client no one here wrote: esp-rainmaker-cli's host-driven `claim`, end to end, offline.

The CLI (pinned in tools/pyproject.toml, group `rainmaker-cli`) lives in its own venv,
build/rainmaker-cli-venv/, made on first use and reused while the pin is unchanged: it pulls
opencv, aiortc and boto3, which stay out of .venv. It claims against this service over plain HTTP
on loopback (`rmbench serve --insecure-http`): the CLI verifies HTTPS only against its bundled
Amazon root CA. Its login is replaced by a profile holding a locally made JWT (the CLI only reads
`exp` and `custom:user_id` from it). It flashes its NVS image to esp32-mock-bootloader over
socket://, and the test reads the flash back with esptool and parses the image.

Not driven: `esp-rainmaker-cli login` (Cognito OAuth against Espressif's hosts) and token refresh
(the `apiversions` check and the token endpoint), and HTTPS to this service (the CLI's `verify=`
is its bundled Amazon Root CA 1 file, with no option to change it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from esp_idf_nvs_partition_gen import nvs_partition_gen
from rmbench import BUILD_DIR, nvs
from rmbench.errors import BenchError
from rmbench.micropython import Interpreter
from rmbench.rainmaker_cli import ensure_cli, jwt, write_profile
from rmbench.service.harness import RunningService, running_service
from rmbench.service.store import Store

CLI_VENV = BUILD_DIR / "rainmaker-cli-venv"
NVS_ADDR, NVS_SIZE = 0x340000, 0x6000  # the CLI's default fctry address and its image size
MAC = "7CDFA100033B"


@pytest.fixture(scope="session")
def rainmaker_cli() -> Path:
    """The esp-rainmaker-cli executable, from the cached venv (made if missing or out of date)."""
    try:
        return ensure_cli()
    except BenchError as e:
        pytest.fail(str(e))


@pytest.fixture
def mock_board(tmp_path: Path) -> Iterator[str]:
    """esp32-mock-bootloader (an ESP32 ROM loader on TCP) as a socket:// port URL."""
    exe = Path(sys.executable).with_name("esp32-mock-bootloader")
    log = (tmp_path / "mock.log").open("w+")
    proc = subprocess.Popen(
        [str(exe), "run", "--port", "0", "--chip", "esp32"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        deadline = time.monotonic() + 20
        port = None
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            log.seek(0)
            for line in log:
                if "listening on 127.0.0.1:" in line:
                    port = int(line.rsplit(":", 1)[1])
            time.sleep(0.05)
        if port is None:
            log.seek(0)
            pytest.fail(f"esp32-mock-bootloader did not start: {log.read()}")
        yield f"socket://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def read_flash(port: str, out: Path) -> bytes:
    # --no-stub: the mock answers the ROM loader's READ_FLASH reliably, the stub's less so.
    argv = [sys.executable, "-m", "esptool", "--port", port, "--no-stub", "read-flash"]
    argv += [hex(NVS_ADDR), hex(NVS_SIZE), str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out.read_bytes()


def test_nvs_reader_agrees_with_nvs_partition_gen(tmp_path: Path) -> None:
    cert = ("-----BEGIN CERTIFICATE-----\n" + "QUJD" * 1500 + "\n").encode()  # spans 2 pages
    files = {"cert": cert, "node": b"VtXfecXiRKazHoBZkkLAHX", "empty": b"x"}
    for name, data in files.items():
        (tmp_path / f"{name}.bin").write_bytes(data)
    (tmp_path / "random.hex").write_text("a5" * 64)
    rows = [
        "key,type,encoding,value",
        "rmaker_creds,namespace,,",
        f"client_cert,file,binary,{tmp_path / 'cert.bin'}",
        f"node_id,file,binary,{tmp_path / 'node.bin'}",
        f"random,file,hex2bin,{tmp_path / 'random.hex'}",
        "count,data,u32,4000000000",
        "delta,data,i8,-5",
        "other,namespace,,",
        "name,data,string,hello",
        f"node_id,file,binary,{tmp_path / 'empty.bin'}",
    ]
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n")
    args = type("Args", (), {})()
    args.input, args.output, args.size = str(tmp_path / "in.csv"), "out.bin", hex(NVS_SIZE)
    args.outdir, args.version = str(tmp_path), 2
    nvs_partition_gen.generate(args)
    image = (tmp_path / "out.bin").read_bytes()
    assert read_nvs(image) == {
        "rmaker_creds": {
            "client_cert": cert,
            "node_id": b"VtXfecXiRKazHoBZkkLAHX",
            "random": b"\xa5" * 64,
            "count": 4000000000,
            "delta": -5,
        },
        "other": {"name": "hello", "node_id": b"x"},
    }


def read_nvs(image: bytes) -> dict[str, dict[str, nvs.Value]]:
    """{namespace: {key: value}} of an NVS image, read by rmbench's own NVS reader."""
    return {ns: dict(values) for ns, values in nvs.read_partition(image).namespaces.items()}


def board_mac(port: str) -> str:
    """The MAC esptool reads from the board, as 12 uppercase hex digits."""
    argv = [sys.executable, "-m", "esptool", "--port", port, "--no-stub", "read-mac"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("MAC:"))
    return line.split()[-1].replace(":", "").upper()


@pytest.mark.slow
def test_esp_rainmaker_cli_claims_and_flashes_our_certificate(
    tmp_path: Path, rainmaker_cli: Path, mock_board: str
) -> None:
    outdir = tmp_path / "claim-data"
    with running_service(tmp_path / "svc", insecure_http=True) as svc:
        env, user_id = logged_in_cli_env(svc, tmp_path)
        output = run_cli(
            rainmaker_cli, ["claim", mock_board, "--mac", MAC, "--outdir", str(outdir)], env
        )
        for step in ("Claim verify done", "Claim certificate received", "Hash of data verified"):
            assert step in output, output
        store = Store.open(svc.state_dir)
        try:
            node = store.node_for(MAC, user_id)
            issued = store.certificates(node.node_id)
        finally:
            store.close()
        assert node.claimed and len(issued) == 1
        chain = issued[0][2] + svc.claim_ca_pem
    node_dir = outdir / user_id / MAC
    assert (node_dir / "node.crt").read_text() == chain
    assert (node_dir / "node.info").read_text() == node.node_id
    image = read_flash(mock_board, tmp_path / "flash.bin")
    creds = read_nvs(image)["rmaker_creds"]
    # The image on the board holds exactly what this service issued, and a key that fits it.
    assert creds["client_cert"] == chain.encode()
    assert creds["node_id"] == node.node_id.encode()
    assert creds["mqtt_host"] == b"mqtt.rainmaker.espressif.com"
    assert creds["mqtt_cred_host"] == b"c10yordfvrjdjb.credentials.iot.us-east-1.amazonaws.com"
    random = creds["random"]
    assert isinstance(random, bytes) and len(random) == 64
    key_pem = creds["client_key"]
    assert isinstance(key_pem, bytes)
    key = serialization.load_pem_private_key(key_pem, password=None)
    device = x509.load_pem_x509_certificates(chain.encode())[0]
    assert device.public_key() == key.public_key()
    assert device.subject.rfc4514_string() == f"CN={node.node_id}"


@pytest.mark.slow
def test_esp_rainmaker_cli_without_mac_sends_it_padded(
    tmp_path: Path, rainmaker_cli: Path, mock_board: str
) -> None:
    # Without --mac the CLI reads the MAC with esptool chip_id and keeps everything after "MAC: ";
    # esptool 5 aligns that column with spaces, so the initiate body carries a padded MAC, which
    # this service (strict, as the seed API's format) refuses. Nothing is flashed.
    mac = board_mac(mock_board)
    with running_service(tmp_path / "svc", insecure_http=True) as svc:
        env, _ = logged_in_cli_env(svc, tmp_path)
        outdir = str(tmp_path / "claim-data")
        output = run_cli(rainmaker_cli, ["claim", mock_board, "--outdir", outdir], env)
    assert "Claim initiate failed." in output, output
    padded = re.search(r"got '( +)" + mac + "'", output)
    assert padded is not None, output
    assert read_flash(mock_board, tmp_path / "flash.bin") == b"\xff" * NVS_SIZE


def logged_in_cli_env(svc: RunningService, tmp_path: Path) -> tuple[dict[str, str], str]:
    """A user on the service and an esp-rainmaker-cli profile logged in as it; (env, user id)."""
    user_id = "rmbenchUser0000000000a"
    token = jwt(
        {
            "exp": int(time.time()) + 3600,
            "custom:user_id": user_id,
            "email": "bench@example.com",
            "iss": "rmbench-local",
        }
    )
    svc.add_user(token, quota=5, user_id=user_id)
    config = tmp_path / "rm-config"
    write_profile(config, svc.base_url, token)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "RM_USER_CONFIG_DIR": str(config),
        "PYTHONUNBUFFERED": "1",
    }
    return env, user_id


def run_cli(exe: Path, args: list[str], env: dict[str, str]) -> str:
    """Run esp-rainmaker-cli; returns stdout + stderr (it exits 0 even when a claim step fails)."""
    proc = subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return output


# esp-rainmaker-cli's own claim code (rmaker_tools/rmaker_claim/claim.py of the pinned 1.14.1:
# start_claim_process -> set_claim_initiate_data, claim_initiate, set_claim_verify_data,
# claim_verify) run in its venv with requests.post replaced: what it would send, and nothing
# sent. Its session supplies the headers from the logged-in profile.
CLI_CAPTURE = """
import json, sys
from cryptography.hazmat.primitives.asymmetric import ec
from rmaker_tools.rmaker_claim import claim

args = json.loads(sys.stdin.read())
sent = []

class Reply:
    status_code = 200
    def __init__(self, obj):
        self.text = json.dumps(obj)

def post(url, data=None, params=None, headers=None, verify=None):
    sent.append({"url": url, "data": data, "params": params, "headers": headers})
    if url.endswith("claim/initiate"):
        return Reply({"node_id": args["node_id"]})
    return Reply({"certificate": "-----BEGIN CERTIFICATE-----"})

claim.requests.post = post
key = ec.generate_private_key(ec.SECP256R1())
claim.start_claim_process(args["mac"], args["platform"], key, False)
print("SENT:" + json.dumps(sent))
"""

# Our device library's token-claim requests, as rmclaim.api builds them.
DEVICE_REQUESTS = """
import sys, json
from rmclaim import api
args = json.loads(sys.stdin.read())
reqs = [api.initiate_request(args["mac"], args["platform"], args["token"]),
        api.verify_request(args["csr"], False, args["token"])]
print(json.dumps([[path, dict(headers), body.decode()] for path, headers, body in reqs]))
"""


def _typed(obj: dict[str, object]) -> dict[str, tuple[str, object]]:
    return {k: (type(v).__name__, v) for k, v in obj.items()}


def _csr_cn(pem: str) -> str:
    csr = x509.load_pem_x509_csr(pem.encode())
    assert csr.is_signature_valid
    (cn,) = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn.value)


@pytest.mark.slow
def test_token_claim_requests_hold_what_esp_rainmaker_cli_sends(
    tmp_path: Path, rainmaker_cli: Path, mpy: Interpreter
) -> None:
    token = jwt({"exp": int(time.time()) + 3600, "custom:user_id": "u1", "iss": "rmbench"})
    config = tmp_path / "rm-config"
    write_profile(config, "http://127.0.0.1:9", token)  # never contacted
    (tmp_path / "home").mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "RM_USER_CONFIG_DIR": str(config),
    }
    node_id = "VtXfecXiRKazHoBZkkLAHX"
    args = {"mac": MAC, "platform": "esp32", "node_id": node_id}
    proc = subprocess.run(
        [str(rainmaker_cli.with_name("python")), "-c", CLI_CAPTURE],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("SENT:")), None)
    assert proc.returncode == 0 and line is not None, proc.stdout + proc.stderr
    cli_initiate, cli_verify = json.loads(line[len("SENT:") :])
    assert cli_initiate["url"].endswith("/claim/initiate")
    assert cli_verify["url"].endswith("/claim/verify")

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    device_args = {"mac": MAC, "platform": "esp32", "token": token, "csr": csr_pem}
    ours = json.loads(mpy.run(DEVICE_REQUESTS, stdin=json.dumps(device_args)))
    (init_path, init_headers, init_body), (verify_path, verify_headers, verify_body) = ours
    assert (init_path, verify_path) == ("/claim/initiate", "/claim/verify")

    # The same headers the CLI's session sends (names case-insensitive), e.g. the raw token.
    for sent, headers in ((cli_initiate, init_headers), (cli_verify, verify_headers)):
        lowered = {k.lower(): v for k, v in headers.items()}
        for name_, value in sent["headers"].items():
            assert lowered.get(name_.lower()) == value, (name_, headers)
    # initiate: the same JSON object for the same board (field order aside).
    assert _typed(json.loads(init_body)) == _typed(json.loads(cli_initiate["data"]))
    # verify: every field the CLI sends, of the same type, for the same node id; ours adds
    # only what the firmware's assisted claim adds (ESP RainMaker v1.16.0 esp_rmaker_claim.c,
    # handle_assisted_claim_init_response: "send_mqtt_host" true). The CLI keeps the PEM's
    # final newline, the firmware drops it (escape_new_line), and so do we.
    cli_obj, our_obj = json.loads(cli_verify["data"]), json.loads(verify_body)
    assert set(our_obj) - set(cli_obj) == {"send_mqtt_host"}
    assert _typed(our_obj)["send_mqtt_host"] == ("bool", True)
    for field in cli_obj:
        assert type(our_obj[field]) is type(cli_obj[field]), field
    assert _csr_cn(cli_obj["csr"]) == _csr_cn(our_obj["csr"] + "\n") == node_id
    assert cli_obj["csr"].endswith("-----END CERTIFICATE REQUEST-----\n")
    assert our_obj["csr"] == csr_pem.rstrip("\n")
    # matter=false: the CLI says so in the query, we leave it out (false either way).
    assert cli_verify["params"] == {"matter": False}
