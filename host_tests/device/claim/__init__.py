"""Tests of the device claim flow (lib/rmclaim: chip, config, https, service, store, claim)."""
