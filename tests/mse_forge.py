"""An MSE initiator written out by hand for tests: it sends whatever plaintext head it is
given behind a correct key exchange, so tests and the fuzzer reach the responder's
length checks. Independent of btd's own code (its own DH and RC4), so it also checks that
btd follows the spec rather than itself."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

from btd.core.wire.mse import GENERATOR, KEY_LENGTH, PRIME

PRIVATE = 0x1234567890ABCDEF1234567890ABCDEF12345679


def sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def public_key() -> bytes:
    return pow(GENERATOR, PRIVATE, PRIME).to_bytes(KEY_LENGTH, "big")


def forged_request(responder_public: bytes, info_hash: bytes, head: bytes) -> bytes:
    """What follows Ya once the responder's Yb is known: req1, req2^req3 and ``head``
    (VC, crypto_provide, len(padC), padC, len(IA), IA, ...) encrypted with keyA."""
    y = int.from_bytes(responder_public[:KEY_LENGTH], "big")
    secret = pow(y, PRIVATE, PRIME).to_bytes(KEY_LENGTH, "big")
    update = Cipher(ARC4(sha1(b"keyA", secret, info_hash)), mode=None).encryptor().update
    update(bytes(1024))
    obfuscated = bytes(a ^ b for a, b in zip(sha1(b"req2", info_hash), sha1(b"req3", secret)))
    return sha1(b"req1", secret) + obfuscated + update(head)
