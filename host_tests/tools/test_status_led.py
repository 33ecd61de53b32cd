"""firmware/rmboot.py's status LED: the DevKit's LED on every release's machine string, its
kind (an addressable RGB LED through the frozen neopixel module, or a plain GPIO LED), the
config's override, and the colours the LED receives."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from rmbench import FIRMWARE_DIR
from rmbench.boardsim import SimBoard, create_board
from rmbench.commands.deploy import add_config_arguments, config_from_args
from rmbench.errors import UsageError
from rmbench.micropython import Interpreter
from rmbench.profiles import all_profiles

# Shows each state once (on, then off) and reports which LED it drove.
SHOW = """
import rmboot
led = rmboot.LED(SPEC)
for state in ("provisioning", "connecting", "claiming", "claimed", "error"):
    led.state(state)
    led.set(True)
    led.set(True)  # no second write for the same colour
    led.set(False)
print(led.np is not None, led.pin)
"""
# The colours rmboot shows, as the LED receives them (decoded from its G, R, B bytes).
COLORS = {
    "provisioning": (24, 0, 40),
    "connecting": (0, 0, 40),
    "claiming": (40, 24, 0),
    "claimed": (0, 40, 0),
    "error": (48, 0, 0),
}
DARK = (0, 0, 0)


def show(board: SimBoard, mpy: Interpreter, spec: str | None) -> str:
    return board.run(mpy, SHOW.replace("SPEC", repr(spec)), path=[FIRMWARE_DIR]).strip()


CASES = [(p.name, release.name) for p in all_profiles().values() for release in p.releases()]


@pytest.mark.parametrize(("name", "release"), CASES)
def test_the_devkit_led_on_every_release(
    name: str, release: str, tmp_path: Path, mpy: Interpreter
) -> None:
    # The machine string as `release` spells it (no hyphen before the preview) still finds the
    # chip's DevKit LED, of the kind and on the pin its profile says.
    board = create_board(tmp_path / name, name, name=f"led-{name}", firmware=release)
    led = board.profile.led
    assert led is not None
    out = show(board, mpy, None)
    if led.kind == "rgb":
        assert out == "True None"
        colors = [c for _, c in board.led_colors(led.pin)]
        # Dark at start-up, then each state's colour and dark again.
        assert colors == [DARK] + [c for state in COLORS.values() for c in (state, DARK)]
    else:
        assert out == f"False Pin({led.pin})"
        assert [(pin, level) for _, pin, level in board.pin_log()] == [(str(led.pin), 0)] + [
            (str(led.pin), level) for _ in COLORS for level in (1, 0)
        ]


@pytest.mark.parametrize(
    ("spec", "pin", "kind"),
    [("rgb:38", 38, "rgb"), ("gpio:5", 5, "gpio"), ("none", None, None)],
)
def test_the_config_chooses_another_led(
    spec: str, pin: int | None, kind: str | None, tmp_path: Path, mpy: Interpreter
) -> None:
    # ESP32-S3-DevKitC-1 v1.1 has its LED on GPIO38 (status_led "rgb:38"); "none" drives nothing.
    board = create_board(tmp_path / "s3", "esp32s3", name="led-s3")
    show(board, mpy, spec)
    rows = board.pin_log()
    if kind is None or pin is None:
        assert rows == []
        return
    assert {p for _, p, _ in rows} == {str(pin)}
    if kind == "rgb":
        assert board.led_colors(pin)[1][1] == COLORS["provisioning"]  # the first state shown
    else:
        assert [level for _, _, level in rows] == [0] + [1, 0] * len(COLORS)


def test_neopixel_sends_green_red_blue(tmp_path: Path, mpy: Interpreter) -> None:
    # The frozen neopixel module stores (r, g, b) as G, R, B bytes (micropython-lib neopixel
    # ORDER = (1, 0, 2, 3)) and sends them with machine.bitstream at 800 kHz timings.
    board = create_board(tmp_path / "s3", "esp32s3", name="np")
    board.run(
        mpy,
        "import machine, neopixel\n"
        "np = neopixel.NeoPixel(machine.Pin(48), 2)\n"
        "np[0] = (1, 2, 3)\nnp[1] = (250, 0, 7)\nnp.write()\n",
    )
    raw = (board.directory / "pins.log").read_text().split()
    assert raw[1:] == ["48", "bits", "020103" + "00fa07"]
    assert board.led_colors(48)[0][1] == (1, 2, 3)


def _config_args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--board")
    add_config_arguments(parser)
    return parser.parse_args(
        ["--board", "esp32s3", "--service-url", "http://127.0.0.1:1", "--insecure-http", *extra]
    )


@pytest.mark.parametrize(
    ("value", "spec"),
    [("devkitc-1-v1.1", "rgb:38"), ("rgb:48", "rgb:48"), ("gpio:2", "gpio:2"), ("none", "none")],
)
def test_status_led_option_names_a_board_revision(value: str, spec: str) -> None:
    # `rmbench deploy/provision/flash --status-led devkitc-1-v1.1`: the S3 DevKitC-1 v1.1 LED.
    assert config_from_args(_config_args("--status-led", value)).status_led == spec


def test_status_led_option_refuses_what_it_does_not_know() -> None:
    with pytest.raises(UsageError) as info:
        config_from_args(_config_args("--status-led", "v2"))
    assert str(info.value) == (
        "--status-led wants rgb:PIN, gpio:PIN, none or a board revision of esp32s3 "
        "(devkitc-1-v1.1); got 'v2'"
    )
