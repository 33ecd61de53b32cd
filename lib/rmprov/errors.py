"""The exception types of rmprov: one per layer that can refuse its input."""


class ProvError(Exception):
    # Every error of the provisioning path.
    pass


class ProtoError(ProvError):
    # A protobuf message that does not decode strictly against its schema (truncated, wrong
    # wire type, over a size limit, overlong varint, repeated singular field), or a value that
    # does not encode (unknown field name, out of range, too long). No partial result exists.
    pass


class SecurityError(ProvError):
    # A session handshake or record refused: wrong state, malformed key, a shared secret of
    # all zeros (a low-order peer key), or a client proof that does not match (wrong pop).
    pass
