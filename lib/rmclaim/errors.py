"""The exception types of rmclaim: each subclass says who has to act (re-exported by rmclaim)."""


class ClaimError(Exception):
    # Every error of the claim path. retryable: whether trying the claim again later may help;
    # retry_after: seconds to wait first, when the service said so. Subclasses set the default
    # as a class attribute (cheaper on the device than an __init__ each).
    retryable = False
    retry_after = None


class ConfigError(ClaimError):
    # The configuration is wrong: the message names the key and what was wanted.
    pass


class UnsupportedChip(ClaimError):
    # The chip cannot be identified, or cannot claim this way (the message names the way out).
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
    # No TLS session. A refused server certificate (wrong CA, hostname, dates) is not
    # retryable: only a config change or a clock fix helps. Other handshake failures are
    # (https sets retryable on the instance).
    pass


class StoreError(ClaimError):
    # NVS refused a read or write, or holds something we cannot use.
    pass


class ServiceError(ClaimError):
    # A reply from the claiming service that is not a success, or no usable reply at all.
    # status: HTTP status (0 when there was no reply); description: what went wrong, with the
    # service's text; retryable: whether trying again later may help (None: the class
    # default); retry_after: seconds the server asked for.
    def __init__(self, description, status=0, retryable=None, retry_after=None):
        super().__init__(description)
        self.description = description
        self.status = status
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after


class NetworkError(ServiceError):
    # No complete reply: DNS, connect, reset, timeout, or a reply cut short.
    retryable = True


class MalformedReply(ServiceError):
    # A reply we cannot use: bad HTTP framing, over the size cap, bad JSON, missing fields.
    # Retryable: a faulty proxy or a service glitch may pass.
    retryable = True


class ServiceUnavailable(ServiceError):
    # 5xx or 429: the service is failing or busy; retry, no sooner than retry_after.
    retryable = True


class QuotaExceeded(ServiceError):
    # The user's claim quota is used up: retry slowly (an administrator may raise it).
    retryable = True


class ChallengeRejected(ServiceError):
    # The service refused the challenge response, or the auth_id was spent or expired: a
    # fresh initiate may pass (a chip whose eFuse id is registered wrongly keeps failing).
    retryable = True


class PlatformRejected(ServiceError):
    # The service does not accept this platform/MAC for this kind of claim.
    pass


class Unauthorized(ServiceError):
    # The access token is missing, wrong or expired: nothing helps until the config changes.
    pass


class BadCertificate(ServiceError):
    # The certificate in the reply fails our checks (not for our key, wrong CN, does not
    # chain to the claim CA, unparsable). Nothing is stored; a new attempt gets a new reply.
    retryable = True
