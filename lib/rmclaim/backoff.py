"""How long a claim waits after a failed attempt: full jitter, quota waits, Retry-After."""

# Imported only when an attempt has failed (rmclaim.claim, which also offers backoff_s under
# its own name), and dropped again before the wait.

from micropython import const

from rmclaim.errors import QuotaExceeded

_MAX_RETRY_AFTER = const(3600)  # a Retry-After beyond an hour is read as an hour


def backoff_s(cfg, attempt, err, fraction=None):
    # Seconds to wait after failed attempt number `attempt` (1-based): full jitter, uniform
    # in [0, min(cap, base * 2^(attempt-1))]; quota errors wait longer, between half the cap
    # and the cap (an administrator has to act); never sooner than a Retry-After.
    if fraction is None:
        import random

        fraction = random.getrandbits(16) / 65536
    cap = cfg.backoff_cap_s
    if isinstance(err, QuotaExceeded):
        delay = cap * (0.5 + 0.5 * fraction)
    else:
        ceiling = cfg.backoff_base_s * (1 << min(attempt - 1, 24))
        delay = (ceiling if ceiling < cap else cap) * fraction
    ra = err.retry_after
    if ra is not None:
        ra = ra if ra < _MAX_RETRY_AFTER else _MAX_RETRY_AFTER
        if delay < ra:
            delay = ra
    return delay
