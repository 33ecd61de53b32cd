"""The claiming service's API, client side: requests, replies, errors mapped to exceptions."""

import json

from micropython import const

from rmclaim.errors import (
    ChallengeRejected,
    MalformedReply,
    PlatformRejected,
    QuotaExceeded,
    ServiceError,
    ServiceUnavailable,
    Unauthorized,
)

_USER_AGENT = "rmclaim/0.1.0 (MicroPython)"
# Field limits of the RainMaker firmware's parser (auth_id 63, challenge 129 chars), and of
# the CSR CN buffer for node ids; a host name fits DNS's 253.
_MAX_AUTH_ID = const(63)
_MAX_CHALLENGE = const(129)
_MAX_NODE_ID = const(46)
_MAX_HOST = const(253)
_MAX_CERTIFICATE = const(4096)  # https.MAX_BODY: a reply holds no more


def challenge_response(unique_id, challenge):
    # HMAC-SHA512(OPTIONAL_UNIQUE_ID, challenge bytes as received) as 128 uppercase hex
    # digits, as the firmware answers a self-claim challenge.
    import binascii

    from rmclaim import sha512

    return binascii.hexlify(sha512.hmac_sha512(unique_id, challenge.encode())).decode().upper()


class VerifyReply:
    # certificate: the PEM text exactly as received (device certificate, usually followed by
    # the claim CA); mqtt_host / mqtt_cred_host: None when the service sent none. Plain data,
    # no methods: holding one does not keep this module (and https) loaded.
    certificate = ""
    mqtt_host = None
    mqtt_cred_host = None


def error_for(step, status, body, retry_after=None):
    # The exception for a non-200 reply of `step` ("initiate" or "verify"). The claiming
    # service answers {"status":"failure","description":...} with a 4xx/5xx status; known
    # texts decide the class, then the status does. The text: "description" (claiming
    # errors), "message" (API gateway), else the raw body, shortened.
    text = None
    try:
        obj = json.loads(body)
        if isinstance(obj, dict):
            text = obj.get("description")
            if not isinstance(text, str):
                text = obj.get("message")
    except ValueError:
        pass
    if not isinstance(text, str):
        try:
            text = str(body[:120], "utf-8")
        except ValueError:
            text = repr(bytes(body[:40]))
        text = text or "(empty reply)"
    low = text.lower()
    msg = "service: %s refused (HTTP %d): %s" % (step, status, text)
    if "quota" in low:
        return QuotaExceeded(msg, status, retry_after=retry_after)
    if status >= 500 or status == 429:
        return ServiceUnavailable(msg, status, retry_after=retry_after)
    # Before the status test: the service answers 401 for a spent or wrong challenge too.
    if "challenge" in low or "auth_id" in low:
        return ChallengeRejected(msg, status)
    if "platform" in low or "not registered" in low:
        return PlatformRejected(msg, status)
    if status in (401, 403) or "unauthori" in low or "token" in low:
        return Unauthorized(msg, status)
    return ServiceError(msg, status)


def _fields(step, reply, *want):
    # The reply's JSON object checked, and for each (key, limit) of want (a negative limit:
    # optional) its value: a string of 1..limit characters, or None when optional and absent.
    if reply.status != 200:
        raise error_for(step, reply.status, reply.body, reply.retry_after)
    try:
        obj = json.loads(reply.body)
    except ValueError:
        raise MalformedReply(
            "service: %s reply is not JSON: %r" % (step, bytes(reply.body[:40])), 200
        ) from None
    if not isinstance(obj, dict):
        raise MalformedReply("service: %s reply is not a JSON object" % step, 200)
    out = []  # type: list
    for key, limit in want:
        v = obj.get(key)
        if v is None and limit < 0:
            out.append(None)
            continue
        limit = abs(limit)
        if not isinstance(v, str) or not v or len(v) > limit:
            raise MalformedReply(
                "service: %s reply: wanted %s as a string of 1..%d characters, got %r"
                % (
                    step,
                    key,
                    limit,
                    v if v is None or isinstance(v, (bool, int)) else type(v).__name__,
                ),
                200,
            )
        out.append(v)
    return out


# Requests are (path, headers, body bytes) and replies are read from an https.Reply, apart
# from the transfer: a claim makes a request, drops this module, sends it with https, drops
# https, then reads the reply, so no two of them are on the heap at once. Service ties them
# together over one https.Client.


def initiate_request(mac, platform, token=None):
    # Self-claim (no token) as the firmware's esp_http_client sends it: no Content-Type, no
    # Authorization; with a token as the phone apps and the CLI send it: the raw token, no
    # "Bearer".
    body = '{"mac_addr":%s,"platform":%s}' % (json.dumps(mac), json.dumps(platform))
    return "/claim/initiate", _headers(token), body.encode()


def verify_request(csr_pem, matter=False, token=None, auth_id=None, challenge_response=None):
    # Self-claim: auth_id and challenge_response, no token; token claim: the token. The CSR
    # goes as the firmware sends it: the final newline dropped, every other newline escaped
    # as \n by json.dumps (which leaves "/" alone).
    csr_pem = json.dumps(csr_pem.rstrip("\n"))
    if token is None:
        body = '{"auth_id":%s,"challenge_response":%s,"csr":%s}' % (
            json.dumps(auth_id),
            json.dumps(challenge_response),
            csr_pem,
        )
    else:
        body = '{"csr":%s,"send_mqtt_host":true}' % csr_pem
    del csr_pem
    path = "/claim/verify?matter=true" if matter else "/claim/verify"
    return path, _headers(token), body.encode()


def _headers(token):
    if token is None:
        return (("User-Agent", _USER_AGENT),)
    return (
        ("User-Agent", _USER_AGENT),
        ("Content-Type", "application/json"),
        ("Authorization", token),
    )


def initiate_reply(reply, token=None):
    # -> (auth_id, challenge) for a self-claim; node_id for a token claim (assigned by the
    # service: the same for the same MAC and user).
    if token is None:
        auth_id, challenge = _fields(
            "initiate", reply, ("auth_id", _MAX_AUTH_ID), ("challenge", _MAX_CHALLENGE)
        )
        return auth_id, challenge
    return _fields("initiate", reply, ("node_id", _MAX_NODE_ID))[0]


def verify_reply(reply):
    # The VerifyReply in a verify request's https.Reply; the typed error when it has none.
    cert, host, cred = _fields(
        "verify",
        reply,
        ("certificate", _MAX_CERTIFICATE),
        ("mqtt_host", -_MAX_HOST),
        ("mqtt_cred_host", -_MAX_HOST),
    )
    del reply
    if "-----BEGIN CERTIFICATE-----" not in cert:
        raise MalformedReply("service: verify reply: certificate is not PEM", 200)
    r = VerifyReply()
    r.certificate = cert
    r.mqtt_host = host
    r.mqtt_cred_host = cred
    return r
