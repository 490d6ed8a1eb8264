"""Message stream encryption (MSE/PE), the obfuscated handshake libtorrent, Transmission,
qBittorrent and aria2 speak, as two sans-I/O state machines.

Bytes in, bytes out: :class:`Initiator` (the side that dialled) and :class:`Responder`
(the side that accepted) each take what the socket read and return what to send; when the
exchange is over, ``established`` holds an :class:`Established` stream that encrypts and
decrypts the rest of the connection (RC4, or nothing when both sides chose plaintext) and
the payload bytes that arrived behind the handshake. The responder learns which torrent is
asked for from ``HASH('req2', SKEY)``, through a lookup the session keeps (one dict probe,
never a scan over torrents).

Every length a stranger controls is bounded (:data:`MAX_PAD`, the two sync windows,
:data:`MAX_IA`), so a responder never buffers more than about 700 bytes before it either
finds its way or drops the peer. RC4 comes from the ``cryptography`` package (its
"decrepit" ciphers), never from code written here.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

from btd.core.errors import ProtocolError
from btd.core.limits import MSE_MAX_INITIAL_PAYLOAD, MSE_MAX_PAD

#: The 768-bit safe prime and generator of the MSE Diffie-Hellman exchange.
PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
    16,
)
GENERATOR = 2
KEY_LENGTH = 96  # bytes of a public key and of the shared secret
PRIVATE_BITS = 160  # the spec: at least 128, nothing gained beyond 180

MAX_PAD = MSE_MAX_PAD
MAX_IA = MSE_MAX_INITIAL_PAYLOAD
VC = bytes(8)
RC4_DISCARD = 1024  # both RC4 streams drop their first 1 KiB (the spec)

CRYPTO_PLAINTEXT = 0x01
CRYPTO_RC4 = 0x02


class MseError(ProtocolError):
    """The peer's MSE handshake is malformed or names no torrent we have."""


def _sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def _rc4(key: bytes) -> Callable[[bytes], bytes]:
    """An RC4 stream with its first :data:`RC4_DISCARD` bytes dropped."""
    update = Cipher(ARC4(key), mode=None).encryptor().update
    update(bytes(RC4_DISCARD))
    return update


def req2_key(info_hash: bytes) -> bytes:
    """``HASH('req2', SKEY)``: what the session indexes its torrents by for responders."""
    return _sha1(b"req2", info_hash)


def _identity(data: bytes) -> bytes:
    return data


@dataclass
class Established:
    """The stream after the handshake: ``encrypt`` what we send, ``decrypt`` what we read
    (both the identity when plaintext was chosen); ``payload`` is what already arrived
    behind the handshake, decrypted; ``info_hash`` the SKEY both sides used."""

    rc4: bool
    encrypt: Callable[[bytes], bytes]
    decrypt: Callable[[bytes], bytes]
    payload: bytes
    info_hash: bytes


def _public_key(rng: Callable[[int], bytes]) -> tuple[int, bytes]:
    private = int.from_bytes(rng(PRIVATE_BITS // 8), "big") | 1
    return private, pow(GENERATOR, private, PRIME).to_bytes(KEY_LENGTH, "big")


def _secret(private: int, peer_public: bytes) -> bytes:
    y = int.from_bytes(peer_public, "big")
    if not 1 < y < PRIME - 1:
        raise MseError("MSE: the peer's public key is out of range")
    return pow(y, private, PRIME).to_bytes(KEY_LENGTH, "big")


def _pad(rng: Callable[[int], bytes], limit: int = MAX_PAD) -> bytes:
    return rng(rng(2)[0] * 2 % (limit + 1))


def choose(provided: int, policy: str) -> int:
    """The method a responder selects from the peer's ``crypto_provide``; 0 if none.

    ``require`` takes RC4 only. Otherwise plaintext after the handshake when the peer
    offers it, as libtorrent does by default (``prefer_rc4`` off): the obfuscated
    handshake is what traffic shaping looks for, and RC4 on every byte costs CPU (aria2,
    which offers both, then gets the stream at full speed)."""
    if policy == "require":
        return CRYPTO_RC4 if provided & CRYPTO_RC4 else 0
    if provided & CRYPTO_PLAINTEXT:
        return CRYPTO_PLAINTEXT
    return CRYPTO_RC4 if provided & CRYPTO_RC4 else 0


class _Handshake:
    """What both sides keep while their handshake runs, and how it ends."""

    def __init__(self, rng: Callable[[int], bytes]) -> None:
        self.rng = rng
        self.private, self.public = _public_key(rng)
        self.established: Established | None = None
        self._buffer = b""
        self._state = "public"
        self._decrypt: Callable[[bytes], bytes] = _identity
        self._encrypt: Callable[[bytes], bytes] = _identity
        self._select = 0
        self._pad_len = 0

    def _establish(self, initial: bytes, rest: bytes, info_hash: bytes) -> None:
        """The stream from here: ``rest`` (what followed the handshake in the last read)
        was RC4 or plain as the selected method says; ``initial`` is already decrypted."""
        rc4 = self._select == CRYPTO_RC4
        self._state = "done"
        self._buffer = b""
        self.established = Established(
            rc4=rc4,
            encrypt=self._encrypt if rc4 else _identity,
            decrypt=self._decrypt if rc4 else _identity,
            payload=initial + (self._decrypt(rest) if rc4 else rest),
            info_hash=info_hash,
        )


class Initiator(_Handshake):
    """The dialling side. ``start()`` is the first flight; feed ``receive`` what arrives.

    ``provide`` is the ``crypto_provide`` bit set (RC4, plaintext or both); ``initial``
    the payload carried inside the handshake (the BitTorrent handshake)."""

    def __init__(
        self,
        info_hash: bytes,
        initial: bytes,
        provide: int = CRYPTO_RC4 | CRYPTO_PLAINTEXT,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not provide & (CRYPTO_RC4 | CRYPTO_PLAINTEXT):
            raise ValueError("provide RC4, plaintext or both")
        super().__init__(rng)
        self.info_hash = info_hash
        self.initial = initial
        self.provide = provide
        self._vc_mark = b""

    def start(self) -> bytes:
        """Ya and PadA."""
        return self.public + _pad(self.rng)

    def receive(self, data: bytes) -> bytes:
        """Consume ``data``; the bytes to send (maybe none)."""
        self._buffer += data
        out = b""
        if self._state == "public":
            if len(self._buffer) < KEY_LENGTH:
                return b""
            out = self._answer(self._buffer[:KEY_LENGTH])
            self._buffer = self._buffer[KEY_LENGTH:]
            self._state = "sync"
        if self._state == "sync":
            at = self._buffer.find(self._vc_mark)
            if at < 0:
                if len(self._buffer) >= MAX_PAD + len(VC):
                    raise MseError("MSE: the peer's verification constant never came")
                return out
            self._buffer = self._buffer[at:]
            self._state = "select"
        if self._state == "select":
            head = _take(self._buffer, 14, self._decrypt)
            if head is None:
                return out
            self._select, self._pad_len = struct.unpack_from(">IH", head, 8)
            self._buffer = self._buffer[14:]
            if self._pad_len > MAX_PAD:
                raise MseError(f"MSE: padD of {self._pad_len} bytes (at most {MAX_PAD})")
            if self._select not in (CRYPTO_RC4, CRYPTO_PLAINTEXT) or not (
                self._select & self.provide
            ):
                raise MseError(f"MSE: the peer selected method {self._select:#x}, not offered")
            self._state = "pad"
        if self._state == "pad":
            if _take(self._buffer, self._pad_len, self._decrypt) is None:
                return out
            self._establish(b"", self._buffer[self._pad_len :], self.info_hash)
        return out

    def _answer(self, peer_public: bytes) -> bytes:
        secret = _secret(self.private, peer_public)
        skey = self.info_hash
        self._encrypt = _rc4(_sha1(b"keyA", secret, skey))
        self._decrypt = _rc4(_sha1(b"keyB", secret, skey))
        self._vc_mark = _rc4(_sha1(b"keyB", secret, skey))(VC)
        pad_c = _pad(self.rng)
        obfuscated = bytes(a ^ b for a, b in zip(req2_key(skey), _sha1(b"req3", secret)))
        head = VC + struct.pack(">IH", self.provide, len(pad_c)) + pad_c
        head += struct.pack(">H", len(self.initial))
        return (
            _sha1(b"req1", secret) + obfuscated + self._encrypt(head) + self._encrypt(self.initial)
        )


def _take(buffer: bytes, n: int, decrypt: Callable[[bytes], bytes]) -> bytes | None:
    """The next ``n`` bytes of ``buffer`` decrypted, or ``None`` until they all arrived.

    Only whole fields are decrypted, so the keystream never runs past the handshake: in
    plaintext mode what follows it was never encrypted."""
    if len(buffer) < n:
        return None
    return decrypt(buffer[:n])


class Responder(_Handshake):
    """The accepting side. Feed ``receive`` what arrives after the peer's first bytes
    showed it is not a plain BitTorrent handshake.

    ``lookup`` maps ``HASH('req2', info_hash)`` to the info hash (``None``: not ours);
    ``policy`` is ``prefer``, ``require`` or ``plain`` (see :func:`choose`)."""

    def __init__(
        self,
        lookup: Callable[[bytes], bytes | None],
        policy: str = "prefer",
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        super().__init__(rng)
        self.lookup = lookup
        self.policy = policy
        self._secret = b""
        self._req1 = b""
        self._info_hash = b""
        self._ia_len = 0

    def receive(self, data: bytes) -> bytes:
        """Consume ``data``; the bytes to send (maybe none)."""
        self._buffer += data
        out = b""
        if self._state == "public":
            if len(self._buffer) < KEY_LENGTH:
                return b""
            self._secret = _secret(self.private, self._buffer[:KEY_LENGTH])
            self._req1 = _sha1(b"req1", self._secret)
            self._buffer = self._buffer[KEY_LENGTH:]
            self._state = "sync"
            out = self.public + _pad(self.rng)
        if self._state == "sync":
            at = self._buffer.find(self._req1)
            if at < 0:
                if len(self._buffer) >= MAX_PAD + len(self._req1):
                    raise MseError("MSE: the peer's req1 hash never came")
                return out
            if len(self._buffer) < at + 40:
                return out
            self._route(self._buffer[at + 20 : at + 40])
            self._buffer = self._buffer[at + 40 :]
            self._state = "provide"
        if self._state == "provide":
            head = _take(self._buffer, 14, self._decrypt)
            if head is None:
                return out
            if head[:8] != VC:
                raise MseError("MSE: bad verification constant (wrong torrent or keys)")
            provide, self._pad_len = struct.unpack_from(">IH", head, 8)
            self._buffer = self._buffer[14:]
            if self._pad_len > MAX_PAD:
                raise MseError(f"MSE: padC of {self._pad_len} bytes (at most {MAX_PAD})")
            self._select = choose(provide, self.policy)
            if not self._select:
                raise MseError(
                    f"MSE: the peer provides {provide:#x}; policy {self.policy} accepts none"
                )
            self._state = "pad"
        if self._state == "pad":
            tail = _take(self._buffer, self._pad_len + 2, self._decrypt)
            if tail is None:
                return out
            (self._ia_len,) = struct.unpack_from(">H", tail, self._pad_len)
            self._buffer = self._buffer[self._pad_len + 2 :]
            if self._ia_len > MAX_IA:
                raise MseError(f"MSE: initial payload of {self._ia_len} bytes (at most {MAX_IA})")
            self._state = "initial"
        if self._state == "initial":
            initial = _take(self._buffer, self._ia_len, self._decrypt)
            if initial is None:
                return out
            out += self._accept(initial, self._buffer[self._ia_len :])
        return out

    def _route(self, obfuscated: bytes) -> None:
        req3 = _sha1(b"req3", self._secret)
        wanted = bytes(a ^ b for a, b in zip(obfuscated, req3))
        info_hash = self.lookup(wanted)
        if info_hash is None:
            raise MseError("MSE: the peer asks for a torrent we do not have")
        self._info_hash = info_hash
        self._decrypt = _rc4(_sha1(b"keyA", self._secret, info_hash))
        self._encrypt = _rc4(_sha1(b"keyB", self._secret, info_hash))

    def _accept(self, initial: bytes, rest: bytes) -> bytes:
        pad_d = _pad(self.rng)
        reply = self._encrypt(VC + struct.pack(">IH", self._select, len(pad_d)) + pad_d)
        self._establish(initial, rest, self._info_hash)
        return reply
