"""esp-rainmaker-cli, the real client, in its own venv: made on demand, logged in locally.

The CLI (pinned in tools/pyproject.toml, group `rainmaker-cli`) pulls opencv, aiortc and boto3,
so it lives in build/rainmaker-cli-venv/, made on first use and reused while the pin is
unchanged, not in .venv. `write_profile` logs it in to the local service: a custom profile
whose tokens are a locally made JWT (the CLI reads only `exp` and `custom:user_id` from it and
checks no signature). `FIELD_DRIVER` runs its provisioning client against a board's soft-AP
address (see that script).
"""

from __future__ import annotations

import base64
import fcntl
import json
import subprocess
import tomllib
import venv
from pathlib import Path

from rmbench import BUILD_DIR, REPO_ROOT
from rmbench.errors import BenchError

CLI_VENV = BUILD_DIR / "rainmaker-cli-venv"
FIELD_DRIVER = Path(__file__).with_name("cli_field.py")


def pinned_requirements() -> list[str]:
    """The `rainmaker-cli` dependency group of tools/pyproject.toml."""
    with (REPO_ROOT / "tools" / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    reqs: list[str] = project["optional-dependencies"]["rainmaker-cli"]
    return reqs


def ensure_cli() -> Path:
    """The esp-rainmaker-cli executable, from the cached venv (made if missing or out of date;
    the first time takes minutes).

    Raises:
        BenchError: pip could not install the pinned requirements (its error is quoted).
    """
    reqs = pinned_requirements()
    stamp = CLI_VENV / "rmbench-requirements.json"
    exe = CLI_VENV / "bin" / "esp-rainmaker-cli"
    BUILD_DIR.mkdir(exist_ok=True)
    with (BUILD_DIR / "rainmaker-cli-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time
        if exe.exists() and stamp.exists() and json.loads(stamp.read_text()) == reqs:
            return exe
        venv.EnvBuilder(clear=True, with_pip=True).create(CLI_VENV)
        pip = [str(CLI_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        proc = subprocess.run(
            [*pip, "--disable-pip-version-check", *reqs],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError(
                f"cannot install {reqs} into {CLI_VENV}:\n{proc.stderr[-3000:]}", step="setup"
            )
        stamp.write_text(json.dumps(reqs))
    return exe


def jwt(claims: dict[str, object]) -> str:
    """An unsigned JWT carrying `claims` (what the CLI reads of its login tokens)."""

    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.unsigned"


def write_profile(config_dir: Path, base_url: str, token: str) -> None:
    """A custom esp-rainmaker-cli profile 'rmbench' pointing at the local service, logged in
    with `token` (use the folder as the CLI's RM_USER_CONFIG_DIR)."""
    profiles = config_dir / "profiles"
    profiles.mkdir(parents=True)
    profile = {
        "name": "rmbench",
        "description": "local claiming service",
        "host": f"{base_url}/v1/",  # GET /mqtt_host is <host without v1/>mqtt_host
        "claim_base_url": f"{base_url}/",  # the CLI appends claim/initiate, claim/verify
        "builtin": False,
        "ui_login_supported": False,
        "node_cache_enabled": False,
    }
    config = {"profiles": {}, "custom_profiles": {"rmbench": profile}}
    (profiles / "profiles.json").write_text(json.dumps(config))
    (profiles / "current_profile").write_text("rmbench")
    tokens = {"idtoken": token, "accesstoken": token, "refreshtoken": "unused"}
    (profiles / "rmbench_config.json").write_text(json.dumps(tokens))
