"""The checks a claimed certificate passes before it is stored: our key, the node id, the CA."""

# Loaded only while a certificate is checked (rmclaim.claim.check_certificate is the entry
# point), and run in steps, each with only its own code on the heap: the PEM (csr), the DER
# (x509, asn1), then an EC signature (p256). A step imports in its own frame and returns
# plain values, so the modules it used can leave the heap before the next step.

import time

from rmclaim.errors import BadCertificate


def check_certificate(point, node_id, certificate, claim_ca, unload):
    # See rmclaim.claim.check_certificate; unload(*names) drops rmclaim modules.
    try:
        dev, cas = _split(certificate, claim_ca)
        unload("csr")
        key, cn, issuer, end, jobs = _parse(dev, cas)
    except ValueError as e:
        raise BadCertificate("check: the certificate cannot be parsed: %s" % e) from e
    unload("x509", "asn1")
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
    from rmclaim import csr

    ders = csr.pem_split(certificate, "CERTIFICATE")
    return ders[0], ders[1:] if claim_ca is None else csr.pem_split(claim_ca, "CERTIFICATE")


def _parse(dev, cas):
    # (public point, CN, issuer CN, not_after, the EC signature checks left for p256: None
    # when an RSA claim CA verified it). Plain values: a Certificate would keep x509 loaded.
    from rmclaim import x509

    dev = x509.parse_certificate(dev)
    # What the signature checks do not read goes before a CA is parsed next to it (on a
    # small heap two whole Certificates are a kilobyte too many).
    for name in ("der", "issuer", "subject", "subject_attributes", "extensions"):
        delattr(dev, name)
    import gc

    gc.collect()  # the parse's garbage goes first, so the next one packs low in the heap
    jobs = []  # type: list | None
    while cas:
        ca = x509.parse_certificate(cas.pop(0))
        if ca.subject_cn == dev.issuer_cn:
            job = x509.ec_signature(dev, ca)
            if job is not None:
                jobs.append(job)  # type: ignore[union-attr]
            elif x509.verify_signature(dev, ca):
                jobs = None
                break
    return dev.public_key_point, dev.subject_cn, dev.issuer_cn, dev.not_after, jobs
