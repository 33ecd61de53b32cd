"""The checks a claimed certificate passes before it is stored: our key, the node id, the CA."""

# Loaded only while a certificate is checked (by the claim and by rmclaim.assist), and run in
# steps, each with only its own code on the heap: the PEM (pem), the DER (x509, asn1), then an
# EC signature (p256). A step imports in its own frame and returns plain values, so the
# modules it used can leave the heap before the next step (rmclaim.heap).

import time

from rmclaim.errors import BadCertificate


def check_certificate(point, node_id, certificate, claim_ca=None):
    # The checks a certificate must pass before store.Store.save_identity may store it: its
    # public key is ours (point: the 65-byte uncompressed public point of the stored key), its
    # CN is the node id, it is signed by the claim CA (the pinned claim_ca PEM, or else a CA
    # certificate sent with it over the pinned TLS session), and it has not expired (when the
    # clock is set). Raises BadCertificate naming what failed.
    from rmclaim.heap import unload

    try:
        dev, cas = _split(certificate, claim_ca)
        unload("pem")
        key, cn, issuer, end, jobs = _parse(dev, cas)
    except ValueError as e:
        raise BadCertificate("check: the certificate cannot be parsed: %s" % e) from e
    unload("x509", "asn1", "asn1_text")
    if key != point:
        raise BadCertificate("check: the certificate is for another key, not this board's")
    if cn != node_id:
        raise BadCertificate(
            "check: the certificate CN is %r, wanted the node id %r" % (cn, node_id)
        )
    while jobs:
        from rmclaim import p256

        if p256.verify(*jobs.pop()):
            jobs = None
    if jobs is not None:
        raise BadCertificate(
            "check: the certificate (issuer %r) does not verify against the %s claim CA"
            % (issuer, "pinned" if claim_ca is not None else "sent")
        )
    # Only with a set clock (an unset one starts in 2000): the firmware syncs it first.
    now = time.gmtime()
    if now[0] >= 2025 and tuple(now[:6]) > tuple(end):
        raise BadCertificate("check: the certificate expired at %r" % (end,))


def _split(certificate, claim_ca):
    # (device certificate DER, [claim CA certificate DER, ...]) from the PEM texts: the
    # pinned claim_ca, or else what follows the device certificate.
    from rmclaim import pem

    ders = pem.split(certificate, "CERTIFICATE")
    return ders[0], ders[1:] if claim_ca is None else pem.split(claim_ca, "CERTIFICATE")


def _parse(dev, cas):
    # (public point, CN, issuer CN, not_after, the EC signature checks left for p256: None
    # when an RSA claim CA verified it). Plain values: a Certificate would keep x509 loaded.
    # The CAs first, each cut down at once to what a signature check reads (its name and key),
    # so that next to the device certificate's parse only those few fields are on the heap.
    import gc

    from rmclaim import x509

    issuers = []
    while cas:
        ca = x509.parse_certificate(cas.pop(0))
        for name in _CA_UNUSED:
            delattr(ca, name)
        issuers.append(ca)
        del ca
        gc.collect()  # the parse's garbage goes first, so the next one packs low in the heap
    dev = x509.parse_certificate(dev)
    jobs = []  # type: list | None
    for ca in issuers:
        if ca.subject_cn == dev.issuer_cn:
            job = x509.ec_signature(dev, ca)
            if job is not None:
                jobs.append(job)  # type: ignore[union-attr]
            elif x509.verify_signature(dev, ca):
                jobs = None
                break
    return dev.public_key_point, dev.subject_cn, dev.issuer_cn, dev.not_after, jobs


# Certificate fields a signature check by the CA does not read (x509.ec_signature and
# verify_signature read its subject_cn, public_key_point, rsa_modulus and rsa_exponent).
_CA_UNUSED = (
    "der",
    "tbs",
    "signature",
    "issuer",
    "subject",
    "subject_attributes",
    "extensions",
    "not_before",
    "not_after",
)
