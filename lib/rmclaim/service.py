"""The claiming service API (initiate, verify), its error replies mapped to typed exceptions."""

import json

from micropython import const

from rmclaim import https
from rmclaim.errors import (
    ChallengeRejected,
    MalformedReply,
    PlatformRejected,
    QuotaExceeded,
    ServiceError,
    ServiceUnavailable,
    Unauthorized,
)

_INITIATE = "/claim/initiate"
_VERIFY = "/claim/verify"
_USER_AGENT = "rmclaim/0.1.0 (MicroPython)"
# Field limits of the RainMaker firmware's parser (auth_id 63, challenge 129 chars), and of
# the CSR CN buffer for node ids; a host name fits DNS's 253.
_MAX_AUTH_ID = const(63)
_MAX_CHALLENGE = const(129)
_MAX_NODE_ID = const(46)
_MAX_HOST = const(253)
_PEM_CERT = "-----BEGIN CERTIFICATE-----"


def challenge_response(unique_id, challenge):
    # HMAC-SHA512(OPTIONAL_UNIQUE_ID, challenge bytes as received) as 128 uppercase hex
    # digits, as the firmware answers a self-claim challenge.
    import binascii

    from rmclaim import sha512

    return binascii.hexlify(sha512.hmac_sha512(unique_id, challenge.encode())).decode().upper()


class VerifyReply:
    # certificate: the PEM text exactly as received (device certificate, usually followed by
    # the claim CA); mqtt_host / mqtt_cred_host: None when the service sent none.
    def __init__(self, certificate, mqtt_host, mqtt_cred_host):
        self.certificate = certificate
        self.mqtt_host = mqtt_host
        self.mqtt_cred_host = mqtt_cred_host


def _text(body):
    # The service's error text: "description" (claiming errors), "message" (API gateway),
    # else the raw body, shortened.
    try:
        obj = json.loads(body)
        if isinstance(obj, dict):
            for key in ("description", "message"):
                if isinstance(obj.get(key), str):
                    return obj[key]
    except ValueError:
        pass
    try:
        text = str(body[:120], "utf-8")
    except ValueError:
        text = repr(body[:40])
    return text or "(empty reply)"


def error_for(step, status, body, retry_after=None):
    # The exception for a non-200 reply of `step` ("initiate" or "verify"). The claiming
    # service answers {"status":"failure","description":...} with a 4xx/5xx status; known
    # texts decide the class, then the status does.
    text = _text(body)
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


def _object(step, reply):
    if reply.status != 200:
        raise error_for(step, reply.status, reply.body, reply.retry_after)
    try:
        obj = json.loads(reply.body)
    except ValueError:
        raise MalformedReply(
            "service: %s reply is not JSON: %r" % (step, reply.body[:40]), reply.status
        ) from None
    if not isinstance(obj, dict):
        raise MalformedReply("service: %s reply is not a JSON object" % step, reply.status)
    return obj


def _field(step, obj, key, limit, required=True):
    v = obj.get(key)
    if v is None and not required:
        return None
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
    return v


def _pem_body(pem):
    # The CSR as the firmware sends it: the final newline dropped, every other newline
    # escaped as \n by json.dumps (which leaves "/" alone).
    return json.dumps(pem.rstrip("\n"))


class Service:
    # The claiming API of one service, over one https.Client (so initiate and verify share a
    # TLS session while the server keeps the connection open).
    def __init__(self, cfg, ca=None):
        # ca: the pinned CA as DER certificates, when already decoded; else cfg.ca (PEM).
        self.http = https.Client(
            cfg.service_url, cfg.ca if ca is None else ca, cfg.timeout_s, cfg.allow_insecure_http
        )
        self.matter = cfg.matter

    def close(self):
        self.http.close()

    def _post(self, path, body, token):
        if token is None:
            # Self-claim, as the firmware's esp_http_client sends it: no Content-Type, no
            # Authorization.
            headers = [("User-Agent", _USER_AGENT)]
        else:
            # As the phone apps and the CLI send it: the raw token, no "Bearer".
            headers = [
                ("User-Agent", _USER_AGENT),
                ("Content-Type", "application/json"),
                ("Authorization", token),
            ]
        return self.http.request("POST", path, body.encode(), headers)

    def _initiate(self, mac, platform, token):
        body = '{"mac_addr":%s,"platform":%s}' % (json.dumps(mac), json.dumps(platform))
        return _object("initiate", self._post(_INITIATE, body, token))

    def initiate_self(self, mac, platform):
        # -> (auth_id, challenge)
        obj = self._initiate(mac, platform, None)
        return (
            _field("initiate", obj, "auth_id", _MAX_AUTH_ID),
            _field("initiate", obj, "challenge", _MAX_CHALLENGE),
        )

    def initiate_token(self, mac, platform, token):
        # -> node_id, assigned by the service (the same for the same MAC and user)
        obj = self._initiate(mac, platform, token)
        return _field("initiate", obj, "node_id", _MAX_NODE_ID)

    def _verify_path(self):
        return _VERIFY + "?matter=true" if self.matter else _VERIFY

    def verify_self(self, auth_id, challenge_response, csr_pem):
        body = '{"auth_id":%s,"challenge_response":%s,"csr":%s}' % (
            json.dumps(auth_id),
            json.dumps(challenge_response),
            _pem_body(csr_pem),
        )
        return self._verify_reply(self._post(self._verify_path(), body, None))

    def verify_token(self, csr_pem, token):
        body = '{"csr":%s,"send_mqtt_host":true}' % _pem_body(csr_pem)
        return self._verify_reply(self._post(self._verify_path(), body, token))

    def _verify_reply(self, reply):
        obj = _object("verify", reply)
        cert = _field("verify", obj, "certificate", https.MAX_BODY)
        if _PEM_CERT not in cert:
            raise MalformedReply("service: verify reply: certificate is not PEM", 200)
        return VerifyReply(
            cert,
            _field("verify", obj, "mqtt_host", _MAX_HOST, False),
            _field("verify", obj, "mqtt_cred_host", _MAX_HOST, False),
        )
