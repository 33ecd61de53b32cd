# Device-side ESP RainMaker claiming in MicroPython: developer and bench targets.
# Everything runs from .venv/, which `make setup` creates from tools/pyproject.toml.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TYPINGS := $(VENV)/typings
STAMP := $(VENV)/.setup-done
PYTEST_ARGS ?=
# The bench suite runs on virtual boards of the default release (1.28); these releases (the
# oldest supported and the preview) also get the boot, claim, deploy and status-line tests.
OTHER_RELEASES ?= 1.23 preview
RELEASE_TESTS ?= host_tests/bench/test_claim_flow.py host_tests/bench/test_deploy.py host_tests/bench/test_status_lines.py
# MICROPYTHON32=PATH: a 32-bit MicroPython Unix port, whose objects are the size of an ESP32's
# (see README "32-bit heap figures"). When given, `make test` also runs TESTS32 on it,
# `make bench` adds its heap figures, and virtual boards run on it with the board's real heap.
MICROPYTHON32 ?=
TESTS32 ?= host_tests/device
ifneq ($(strip $(MICROPYTHON32)),)
override MICROPYTHON32 := $(abspath $(MICROPYTHON32))
export MICROPYTHON32
endif

.DEFAULT_GOAL := help
.PHONY: help setup lint format typecheck test bench mutants clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

setup: $(STAMP) ## create .venv/ with the pinned host tools (fast and unchanged when run again)

$(STAMP): tools/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "make setup: Python 3.11 or newer is needed ($(PYTHON) is older)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e 'tools[dev]'
	rm -rf $(TYPINGS)
	$(PY) -c 'import tomllib; print("\n".join(tomllib.load(open("tools/pyproject.toml", "rb"))["project"]["optional-dependencies"]["device-stubs"]))' \
		| xargs $(PY) -m pip install --quiet --disable-pip-version-check --no-deps --target $(TYPINGS)
	@touch $(STAMP)

lint: setup ## ruff lint and format check over all code
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup ## apply ruff formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: setup ## mypy: device code against micropython-esp32-stubs, host code strict
	$(VENV)/bin/mypy --config-file mypy-device.ini
	$(VENV)/bin/mypy --config-file mypy.ini

test: lint typecheck ## lint, type checks and every test (what CI runs); MICROPYTHON32=PATH adds a 32-bit run
	$(PY) -m pytest $(PYTEST_ARGS)
	$(foreach r,$(OTHER_RELEASES),$(PY) -m pytest -q $(RELEASE_TESTS) --firmware $(r) &&) true
ifneq ($(strip $(MICROPYTHON32)),)
	$(PY) -m pytest $(TESTS32) --unix-port=32 $(PYTEST_ARGS)
endif

bench: setup ## benchmarks: print figures and write build/bench.json
	@mkdir -p build
	PYTHONPATH=tools $(PY) -m benchmarks $(BENCH)

mutants: setup ## break the code on purpose in a scratch copy, report what the tests catch (MUTANTS="name ...", RUNS=N)
	PYTHONPATH=tools $(PY) -m mutants $(if $(RUNS),--runs $(RUNS)) $(MUTANTS)

# --- bench and factory: rmbench flash, provision, claim, status, fleet -----------------------------
RMBENCH := $(VENV)/bin/rmbench
# $(call need,VAR,example): stop with a clear message when VAR is not set for this target.
need = $(if $($(1)),,$(error make $@: set $(1), e.g. $(1)=$(2)))
yes = $(filter 1 yes true,$(1))

# The claiming service: SERVICE_DIR= (a local `rmbench serve --state-dir`) or SERVICE_URL= CA=.
SERVICE = $(if $(SERVICE_DIR),--service-dir $(SERVICE_DIR)) $(if $(SERVICE_URL),--service-url $(SERVICE_URL)) $(if $(CA),--ca $(CA))
# The claim config written to /rmclaim.json: the service plus Wi-Fi, mode and token.
CLAIM_CONFIG = $(SERVICE) $(if $(WIFI_SSID),--wifi-ssid '$(WIFI_SSID)') $(if $(WIFI_PASSWORD),--wifi-password '$(WIFI_PASSWORD)') $(if $(MODE),--mode $(MODE)) $(if $(TOKEN),--token '$(TOKEN)')

.PHONY: flash provision claim status fleet
flash: setup ## flash MicroPython, keeping a claimed identity: PORT= BOARD= FIRMWARE= [ERASE=1], then deploy (+ config as for provision)
	$(call need,PORT,/dev/ttyUSB0)$(call need,BOARD,esp32s3)$(call need,FIRMWARE,ESP32_GENERIC_S3-20260406-v1.28.0.bin)
	$(RMBENCH) flash --port $(PORT) --board $(BOARD) --firmware $(FIRMWARE) $(if $(call yes,$(ERASE)),--erase) $(CLAIM_CONFIG)

provision: setup ## write a validated /rmclaim.json: PORT= BOARD= SERVICE_DIR= (or SERVICE_URL= CA=) WIFI_SSID= WIFI_PASSWORD= [MODE= TOKEN=]
	$(call need,PORT,/dev/ttyUSB0)$(call need,BOARD,esp32s3)
	$(RMBENCH) provision --port $(PORT) --board $(BOARD) $(CLAIM_CONFIG)

claim: setup ## host-assisted claim, key made on the board: PORT= BOARD= TOKEN= SERVICE_DIR= (or SERVICE_URL= CA=)
	$(call need,PORT,/dev/ttyUSB0)$(call need,BOARD,esp32)$(call need,TOKEN,your-access-token)
	$(RMBENCH) claim --port $(PORT) --board $(BOARD) --token '$(TOKEN)' $(SERVICE)

status: setup ## identity of PORT= BOARD= (or of every running virtual board)
	$(RMBENCH) status $(PORTS) $(if $(BOARD),--board $(BOARD))

fleet: setup ## claim many boards at once: BOARD= PORT="a b ..." (or VBOARDS=N) TOKEN= SERVICE_DIR= [FIRMWARE= REPORT=]
	$(call need,BOARD,esp32)$(call need,TOKEN,your-access-token)
	$(RMBENCH) fleet claim --board $(BOARD) $(if $(VBOARDS),--vboards $(VBOARDS),$(PORTS)) --token '$(TOKEN)' $(SERVICE) $(if $(FIRMWARE),--firmware $(FIRMWARE)) $(if $(REPORT),--report $(REPORT)) $(if $(WIFI_SSID),--wifi-ssid '$(WIFI_SSID)') $(if $(WIFI_PASSWORD),--wifi-password '$(WIFI_PASSWORD)')

# --- virtual boards, the demo and the bench suite on real boards (issue 5) ---------------------------
PORTS = $(foreach p,$(PORT),--port $(p))

.PHONY: demo demo-field hil
demo: setup ## the story on a virtual board: self-claim on first boot (BOARD=esp32: token claim; FIELD=1: as demo-field)
	$(RMBENCH) demo --board $(or $(BOARD),esp32s3) $(if $(call yes,$(FIELD)),--field $(if $(call yes,$(CLAIMED)),--claimed-first))

demo-field: setup ## field onboarding: a board with no Wi-Fi provisioned by esp-rainmaker-cli over its soft-AP, then claimed (CLAIMED=1: claimed first, mapped by challenge-response)
	$(RMBENCH) demo --board $(or $(BOARD),esp32s3) --field $(if $(call yes,$(CLAIMED)),--claimed-first)

hil: setup ## the bench suite on real boards: PORT=/dev/ttyUSB0 (or "PORT=/dev/ttyUSB0 /dev/ttyUSB1") BOARD=esp32s3
	$(call need,PORT,/dev/ttyUSB0)$(call need,BOARD,esp32s3)
	$(PY) -m pytest host_tests/bench $(PORTS) --board $(BOARD) $(PYTEST_ARGS)

clean: ## remove build outputs (keeps .venv/)
	rm -rf build .pytest_cache .hypothesis .mypy_cache .ruff_cache
