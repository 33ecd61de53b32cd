"""rmbench flash against the PyPI esp32-mock-bootloader: offsets, kept NVS, erase, chip checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rmbench import ProgressFn, flash, nvs, nvsimage
from rmbench.cli import main
from rmbench.errors import FlashError, UsageError
from rmbench.profiles import BoardProfile, get_profile

from .flashmock import MockBoard, app_image, combined_image, mock_board

ESP32 = get_profile("esp32")
S3 = get_profile("esp32s3")
NVS_START, NVS_END = 0x9000, 0xF000
# A region past every image: the filesystem lives here on a real board; erase must clear it.
FS_ADDR, FS_DATA = 0x200000, b"littlefs" * 512

# Stand-in credentials; the store keeps the key PEM as given, so any text serves here.
IDENTITY = nvsimage.Identity(
    key_pem="-----BEGIN EC PRIVATE KEY-----\nTUlJQ\n-----END EC PRIVATE KEY-----\n",
    cert="-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n",
    node_id="VtXfecXiRKazHoBZkkLAHX",
    mqtt_host="mqtt.example.test",
)


@pytest.fixture(scope="module")
def esp32_mock() -> Iterator[MockBoard]:
    with mock_board("esp32") as board:
        yield board


@pytest.fixture
def esp32_board(esp32_mock: MockBoard) -> MockBoard:
    """The module's mock ESP32, erased for each test."""
    esp32_mock.erase()
    return esp32_mock


@pytest.fixture(scope="module")
def claimed_nvs() -> bytes:
    return nvs.build_partition(nvsimage.credentials(IDENTITY), 0x6000)


def flash_mock(
    board: MockBoard,
    profile: BoardProfile,
    data: bytes,
    erase: bool = False,
    progress: ProgressFn | None = None,
) -> flash.FlashResult:
    # The mock has no reset lines (esptool would only warn), hence no-reset both ways.
    image = flash.inspect_image(data, profile)
    return flash.flash(
        board.port,
        profile,
        image,
        erase=erase,
        before="no-reset",
        after="no-reset",
        progress=progress,
    )


@pytest.mark.parametrize("name", ["esp32", "esp32s3"])
def test_image_lands_at_the_profile_offset_and_reads_back(name: str) -> None:
    prof = get_profile(name)
    data = combined_image(prof, app_image(prof))
    image = flash.inspect_image(data, prof)
    assert (image.address, image.combined) == (prof.flash_offset, True)
    events: list[tuple[str, int, int]] = []
    with mock_board(prof.esptool_chip) as board:
        result = flash_mock(board, prof, data, progress=lambda *e: events.append(e))
        assert result.address == {"esp32": 0x1000, "esp32s3": 0x0}[prof.name]
        assert (result.board, result.nvs_outcome, result.identity) == (prof.name, "blank", None)
        assert result.chip == {"esp32": "ESP32", "esp32s3": "ESP32-S3"}[prof.name]
        assert len(result.mac) == 12
        back = board.read(0, prof.flash_offset + len(data) + 0x1000)
    assert back[prof.flash_offset : prof.flash_offset + len(data)] == data
    assert back[: prof.flash_offset] == b"\xff" * prof.flash_offset
    assert back[prof.flash_offset + len(data) :] == b"\xff" * 0x1000
    steps = list(dict.fromkeys(step for step, _done, _total in events))
    assert steps == ["connect", "check chip", "start stub", "read nvs", "write", "reset"]
    writes = [(done, total) for step, done, total in events if step == "write" and total]
    assert writes and writes[-1][0] == writes[-1][1]


def test_update_keeps_the_nvs_partition_and_erase_clears_it(
    esp32_board: MockBoard, claimed_nvs: bytes
) -> None:
    old = combined_image(ESP32, app_image(ESP32, seed=b"old-app!"))
    new = combined_image(ESP32, app_image(ESP32, seed=b"new-app!"))
    flash_mock(esp32_board, ESP32, old)
    # The board claims: its firmware writes credentials to NVS; it also has a filesystem.
    esp32_board.write(NVS_START, claimed_nvs)
    esp32_board.write(FS_ADDR, FS_DATA)

    result = flash_mock(esp32_board, ESP32, new)
    assert result.nvs_outcome == "kept"
    assert result.identity is not None and result.identity.claimed
    assert result.identity.node_id == IDENTITY.node_id
    back = esp32_board.read(0x1000, len(new))
    nvs_at = NVS_START - 0x1000
    assert back[nvs_at : nvs_at + 0x6000] == claimed_nvs  # 0x9000-0xEFFF as it was
    assert back[:nvs_at] == new[:nvs_at]
    assert back[nvs_at + 0x6000 :] == new[nvs_at + 0x6000 :]
    assert esp32_board.read(FS_ADDR, len(FS_DATA)) == FS_DATA

    erased = flash_mock(esp32_board, ESP32, new, erase=True)
    assert (erased.nvs_outcome, erased.identity) == ("erased", None)
    assert esp32_board.read(NVS_START, NVS_END - NVS_START) == b"\xff" * 0x6000
    assert esp32_board.read(FS_ADDR, len(FS_DATA)) == b"\xff" * len(FS_DATA)
    assert esp32_board.read(0x1000, len(new)) == new


def test_a_chip_mismatch_is_refused_before_anything_is_written(esp32_board: MockBoard) -> None:
    before = esp32_board.read(0, 0x20000)
    with pytest.raises(FlashError) as info:
        flash_mock(esp32_board, S3, combined_image(S3, app_image(S3)))
    err = info.value
    assert (err.board, err.port, err.step) == ("esp32s3", esp32_board.port, "check chip")
    assert err.reason == (
        "found ESP32, but board esp32s3 is ESP32-S3; nothing was written (is this the right port?)"
    )
    assert esp32_board.read(0, 0x20000) == before


def test_an_app_only_image_goes_to_the_app_offset_and_leaves_nvs_alone(
    esp32_board: MockBoard, claimed_nvs: bytes
) -> None:
    esp32_board.write(NVS_START, claimed_nvs)
    app = app_image(ESP32, seed=b"app-only")
    image = flash.inspect_image(app, ESP32)
    assert (image.address, image.combined) == (0x10000, False)
    result = flash_mock(esp32_board, ESP32, app)
    assert result.nvs_outcome == "untouched"
    assert esp32_board.read(0x10000, len(app)) == app
    assert esp32_board.read(NVS_START, 0x6000) == claimed_nvs
    with pytest.raises(UsageError, match="an app-only image cannot be flashed with erase"):
        flash_mock(esp32_board, ESP32, app, erase=True)


def test_nvs_under_another_partition_table_is_not_overwritten(esp32_board: MockBoard) -> None:
    # The board runs an OTA build (nvs 0x9000+0x4000, otadata at 0xD000): carrying its NVS into
    # a 0x6000 partition would be wrong, so the flash is refused and nothing changes.
    ota = combined_image(ESP32, app_image(ESP32), nvs_size=0x4000)
    esp32_board.write(0x1000, ota)
    esp32_board.write(NVS_START, nvs.build_partition({"app": {"boots": 3}}, 0x4000))
    before = esp32_board.read(0x1000, 0x10000)
    with pytest.raises(FlashError, match="the board's partition table has nvs at 0x9000\\+0x4000"):
        flash_mock(esp32_board, ESP32, combined_image(ESP32, app_image(ESP32)))
    assert esp32_board.read(0x1000, 0x10000) == before


def test_images_are_checked_against_the_profile() -> None:
    with pytest.raises(UsageError) as info:
        flash.inspect_image(combined_image(ESP32, app_image(ESP32)), S3)
    assert (info.value.step, info.value.reason) == (
        "check image",
        "built for ESP32, but board esp32s3 is ESP32-S3; "
        "download the ESP32_GENERIC_S3 image (ESP32_GENERIC_S3-*.bin)",
    )
    with pytest.raises(
        UsageError, match="not an ESP firmware image \\(wanted 0xe9 first, got 0x7f"
    ):
        flash.inspect_image(b"\x7fELF" + bytes(64), ESP32)
    with pytest.raises(UsageError, match="got nothing"):
        flash.inspect_image(b"", ESP32)
    with pytest.raises(UsageError, match="its partition table has nvs at 0x9000\\+0x4000"):
        flash.inspect_image(combined_image(ESP32, app_image(ESP32), nvs_size=0x4000), ESP32)


def test_cli_flash_reports_port_and_step(
    esp32_board: MockBoard, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "ESP32_GENERIC-20260406-v1.28.0.bin"
    good.write_bytes(combined_image(ESP32, app_image(ESP32)))
    common = ["--port", esp32_board.port, "--before", "no-reset", "--after", "no-reset"]
    code = main(["flash", *common, "--board", "esp32", "--firmware", str(good), "--no-deploy"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"esp32@{esp32_board.port}: wrote {good.stat().st_size} bytes at 0x1000" in out

    s3_image = tmp_path / "s3.bin"
    s3_image.write_bytes(combined_image(S3, app_image(S3)))
    code = main(["flash", *common, "--board", "esp32s3", "--firmware", str(s3_image)])
    assert code == 1
    assert capsys.readouterr().err == (
        "rmbench: flash: --after no-reset leaves the board in its bootloader, so nothing can be "
        "deployed: use --no-deploy, or let it reset (--after hard-reset)\n"
    )
    code = main(
        ["flash", *common, "--board", "esp32s3", "--firmware", str(s3_image), "--no-deploy"]
    )
    out, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines()[0] == (
        f"rmbench: flash: esp32s3@{esp32_board.port}: check chip: found ESP32, but board esp32s3 "
        "is ESP32-S3; nothing was written (is this the right port?)"
    )


def test_cli_flash_names_an_unreachable_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(combined_image(ESP32, app_image(ESP32)))
    port = str(tmp_path / "ttyUSB9")
    code = main(["flash", "--port", port, "--board", "esp32", "--firmware", str(image)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0].startswith(f"rmbench: flash: esp32@{port}: connect: Could not open {port}")
    assert err[1].startswith("rmbench: hint: check that the port exists and no other program")


def test_cli_flash_refuses_a_bad_claim_config_before_writing(
    esp32_board: MockBoard, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(combined_image(ESP32, app_image(ESP32)))
    argv = ["flash", "--port", esp32_board.port, "--board", "esp32", "--firmware", str(image)]
    argv += ["--service-url", "http://127.0.0.1:8080", "--wifi-ssid", "bench"]
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"rmbench: flash: esp32@{esp32_board.port}: validate: config: service_url "
        "'http://127.0.0.1:8080' is plain http://, refused unless allow_insecure_http is true "
        "(bench use only)"
    )
    assert esp32_board.read(0, 0x20000) == b"\xff" * 0x20000
