"""The error messages of rmclaim.asn1, loaded only when one is raised."""

# One per line, in the order of asn1's _E_ numbers; asn1._fail formats them with its
# arguments. Apart from asn1 so that reading a certificate does not hold them on the heap.
MESSAGES = """wanted a tag and a length, got %d bytes
wanted a one-byte tag, got 0x%02x
wanted a definite DER length after tag 0x%02x, got 0x%02x
length of tag 0x%02x cut off
wanted a minimal length after tag 0x%02x, got %d in %d bytes
tag 0x%02x wants %d bytes, %d are left
wanted tag 0x%02x, got %s
%d bytes of trailing data
wanted a minimal INTEGER, got %r
wanted a non-negative INTEGER, got a negative one
wanted BOOLEAN 00 or FF, got %r
wanted an empty NULL, got %d bytes
wanted BIT STRING of whole bytes, got %r
wanted an OBJECT IDENTIFIER, got %r
BMPString of odd length %d
byte 0x%02x in an ASCII string (tag 0x%02x)
UTF8String is not valid UTF-8
wanted a string type, got %s
wanted a time, got %s
wanted a valid date and time, got %r"""
