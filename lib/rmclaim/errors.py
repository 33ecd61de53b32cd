"""The exception types of rmclaim: each subclass says who has to act (re-exported by rmclaim)."""


class ClaimError(Exception):
    pass


class ConfigError(ClaimError):
    # The configuration is wrong: the message names the key and what was wanted.
    pass


class UnsupportedChip(ClaimError):
    pass


try:

    class DERError(ClaimError, ValueError):
        # Malformed or non-strict DER (also a ValueError, the crypto modules' documented contract).
        pass

except TypeError:
    # MicroPython allows only one built-in base ("multiple bases have instance lay-out
    # conflict"), so there DERError is a ValueError only, the crypto modules' contract; callers
    # on the claim path catch ValueError around parsing and raise a ClaimError subclass.
    class DERError(ValueError):  # type: ignore[no-redef]
        pass


class BadSignature(ClaimError):
    pass


class TLSError(ClaimError):
    pass


class StoreError(ClaimError):
    pass


class ServiceError(ClaimError):
    # A reply from the claiming service that is not a success, or no usable reply at all.
    # status: HTTP status (0 when there was no reply); description: the service's text;
    # retryable: whether trying again later may help; retry_after: seconds the server asked for.
    def __init__(self, description, status=0, retryable=False, retry_after=None):
        super().__init__(description)
        self.description = description
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
