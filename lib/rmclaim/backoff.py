"""How long to wait after a failed attempt: the one retry policy of the claim and the firmware."""

# Used by rmclaim.claim between its attempts and by firmware/rmboot.py between its boot
# rounds; imported only when an attempt has failed, and dropped again before the wait.

from micropython import const

_MAX_RETRY_AFTER = const(3600)  # a Retry-After beyond an hour is read as an hour


def delay_s(base, cap, attempt, retry_after=None, patient=False, fraction=None):
    # Seconds to wait after failed attempt number `attempt` (1-based): full jitter, uniform in
    # [0, min(cap, base * 2^(attempt-1))]; `patient` (someone has to act: a quota, or an error
    # that retrying cannot fix) waits between half the cap and the cap; never sooner than a
    # Retry-After. fraction: the jitter in [0, 1) (random when None).
    if fraction is None:
        import random

        fraction = random.getrandbits(16) / 65536
    if patient:
        delay = cap * (0.5 + 0.5 * fraction)
    else:
        ceiling = base * (1 << min(attempt - 1, 24))
        delay = (ceiling if ceiling < cap else cap) * fraction
    if retry_after is not None:
        ra = retry_after if retry_after < _MAX_RETRY_AFTER else _MAX_RETRY_AFTER
        if delay < ra:
            delay = ra
    return delay


def backoff_s(cfg, attempt, err, fraction=None):
    # delay_s for the claim's config and a ClaimError: a quota error is patient.
    from rmclaim.errors import QuotaExceeded

    patient = isinstance(err, QuotaExceeded)
    return delay_s(
        cfg.backoff_base_s, cfg.backoff_cap_s, attempt, err.retry_after, patient, fraction
    )
