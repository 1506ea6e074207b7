#!/usr/bin/env python3
"""An independent decoder for sealed-session tokens, written from FORMAT.md alone.

    python3 tools/decode.py vectors test_vectors/v1.json test_vectors/v1-extra.json
    python3 tools/decode.py open --keys RING.json --name NAME --cookie 'HEADER' [--now SECS]

`vectors` opens every valid vector and checks it against `expected`, checks that every
must-fail vector fails with its `expected_error`, and loads every key ring file vector; `open`
opens a Cookie header under a key ring file (as written by `sealed-session keys init`) and
prints the session as JSON. Section numbers (§) refer to FORMAT.md.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import struct
import sys
import time

import zstandard
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION, HEADER_LEN, NONCE_LEN, TAG_LEN, MAC_LEN, ID_LEN = 1, 6, 24, 16, 32, 16
MAX_CHUNKS, MAX_OURS, MAX_VARIANTS, MAX_DEPTH, MAX_KEY_LEN = 32, 128, 4, 64, 255
ZSTD_MAGIC = bytes.fromhex("28b52ffd")
# §4.2: dictionary 1, the file the crate ships, checked against the SHA-256 FORMAT.md gives.
DICTIONARY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "format",
                               "dictionary-1.zdict")
DICTIONARY_SHA256 = "e2c80bd498c552f17dfdc1fba1bdae2e6347801e4110eb0fbb33cf0b2f4732d4"
JSON_SAFE_INT = 2**53 - 1
MODES = {"sealed": 0, "signed": 1}
DEFAULTS = dict(idle_timeout_secs=1800, absolute_timeout_secs=43200, clock_skew_secs=60,
                max_state_size=65536,
                cookie_budget=6144, max_cookie_header=32768)
# §6.3: whitespace trimmed around cookie names and values (Unicode White_Space).
WHITESPACE = " \t\n\x0b\x0c\r\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B)))
B64_ALPHABET = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class Rejected(Exception):
    """A rejection; `reason` is one of the names of §8."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def subkeys(secret):
    """§2: HKDF-SHA256, no salt, IKM = secret, L = 32, one info string per algorithm."""
    def derive(info):
        return HKDF(hashes.SHA256(), 32, None, info).derive(secret)
    return derive(b"sealed-session v1 xaes-256-gcm"), derive(b"sealed-session v1 hmac-sha256")


def xaes_256_gcm_open(key, nonce, ciphertext_and_tag, aad):
    """§3.3: XAES-256-GCM (https://c2sp.org/XAES-256-GCM) decryption.

    The 24-byte nonce N splits into N[:12], which derives a per-message AES-256 key Kx, and
    N[12:], the AES-GCM nonce under Kx. The derivation is NIST SP 800-108 counter-mode KDF with
    CMAC-AES-256 as its PRF, simplified to single-block CMACs: L = AES-256_K(0^128); K1 is
    CMAC's first subkey, L doubled in GF(2^128) (shift left one bit, xor 0x87 into the last
    byte if a bit fell off); each half of Kx is AES-256_K(M_i xor K1) with
    M_i = 0x00 i 0x58 0x00 || N[:12] (counter i, label "X", separator, context N[:12]).
    AES-256 here is the single-block permutation, computed with ECB on one block.
    """
    aes = Cipher(algorithms.AES256(key), modes.ECB()).encryptor()
    block = aes.update(bytes(16))
    k1 = int.from_bytes(block, "big") << 1
    if k1 >> 128:
        k1 ^= (1 << 128) | 0x87
    halves = []
    for counter in (1, 2):
        m = int.from_bytes(bytes([0, counter, 0x58, 0]) + nonce[:12], "big")
        halves.append(aes.update((m ^ k1).to_bytes(16, "big")))
    try:
        return AESGCM(b"".join(halves)).decrypt(nonce[12:], ciphertext_and_tag, aad)
    except Exception:
        raise Rejected("forged") from None


def b64decode_strict(text):
    """§6.3 step 5: base64url, no padding, canonical (unused trailing bits zero)."""
    raw = text.encode("ascii", "replace")
    if not set(raw) <= B64_ALPHABET or len(raw) % 4 == 1:
        raise Rejected("malformed", "not canonical base64url")
    data = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=") != raw:  # nonzero unused low bits
        raise Rejected("malformed", "not canonical base64url")
    return data


def varint(buf, pos):
    """§4: unsigned LEB128, at most 10 bytes, at most 64 bits."""
    value = 0
    for i in range(10):
        if pos >= len(buf):
            break
        byte = buf[pos]
        pos += 1
        if i == 9 and byte > 1:
            raise Rejected("malformed", "varint overflows 64 bits")
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            return value, pos
    raise Rejected("malformed", "unterminated varint")


def take(buf, pos, n):
    if n > len(buf) - pos:
        raise Rejected("malformed", "length beyond the bytes that remain")
    return buf[pos:pos + n], pos + n


def msgpack_skip(buf, pos, depth):
    """Returns the end of the MessagePack value at `pos`, checking lengths and nesting (§5).

    A section's values are at depth 1, the items of an array or map at depth d at d + 1."""
    if depth > MAX_DEPTH:
        raise Rejected("malformed", "nesting deeper than 64")
    b, pos = take(buf, pos, 1)
    b = b[0]
    size = lambda n: (int.from_bytes(take(buf, pos, n)[0], "big"), pos + n)  # noqa: E731
    if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):
        return pos
    if b in (0xCA, 0xCB, 0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD1, 0xD2, 0xD3):
        return take(buf, pos, {0xCA: 4, 0xCB: 8}.get(b, 1 << (b & 3)))[1]
    if 0xD4 <= b <= 0xD8:  # fixext: type byte + 1, 2, 4, 8 or 16 bytes
        return take(buf, pos, 1 + (1 << (b - 0xD4)))[1]
    if 0xA0 <= b <= 0xBF:
        return take(buf, pos, b & 0x1F)[1]
    if b in (0xC4, 0xC5, 0xC6, 0xD9, 0xDA, 0xDB):  # bin, str 8/16/32
        n, pos = size({0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}[b])
        return take(buf, pos, n)[1]
    if b in (0xC7, 0xC8, 0xC9):  # ext 8/16/32: length, type byte, data
        n, pos = size({0xC7: 1, 0xC8: 2, 0xC9: 4}[b])
        return take(buf, pos, n + 1)[1]
    if 0x80 <= b <= 0x9F:
        count, pairs = b & 0x0F, b < 0x90
    elif b in (0xDC, 0xDD, 0xDE, 0xDF):
        count, pos = size(2 if b in (0xDC, 0xDE) else 4)
        pairs = b >= 0xDE
    else:
        raise Rejected("malformed", "invalid MessagePack type 0xc1")
    items = count * 2 if pairs else count
    if items > len(buf) - pos:  # every item needs at least one byte
        raise Rejected("malformed", "count beyond the bytes that remain")
    for _ in range(items):
        pos = msgpack_skip(buf, pos, depth + 1)
    return pos


def section(buf):
    """§5: one MessagePack map with str keys, consumed exactly. Returns {key: value bytes}."""
    b = buf[:1]
    if not b or not (0x80 <= b[0] <= 0x8F or b[0] in (0xDE, 0xDF)):
        raise Rejected("malformed", "section is not a map")
    pos = 1
    count = b[0] & 0x0F
    if b[0] in (0xDE, 0xDF):
        n = 2 if b[0] == 0xDE else 4
        count, pos = int.from_bytes(take(buf, 1, n)[0], "big"), 1 + n
    if 2 * count > len(buf) - pos:
        raise Rejected("malformed", "count beyond the bytes that remain")
    entries = {}
    for _ in range(count):
        tag = take(buf, pos, 1)[0][0]
        pos += 1
        if 0xA0 <= tag <= 0xBF:
            n = tag & 0x1F
        elif tag == 0xD9:
            n, pos = take(buf, pos, 1)[0][0], pos + 1
        elif tag in (0xDA, 0xDB):
            w = 2 if tag == 0xDA else 4
            n, pos = int.from_bytes(take(buf, pos, w)[0], "big"), pos + w
        else:
            raise Rejected("malformed", "key is not a string")
        raw_key, pos = take(buf, pos, n)
        if n > MAX_KEY_LEN:  # §5: section keys (not keys of nested maps) are at most 255 bytes
            raise Rejected("malformed", "section key longer than 255 bytes")
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected("malformed", "key is not UTF-8") from None
        if key in entries:
            raise Rejected("malformed", "duplicate key")
        start, pos = pos, msgpack_skip(buf, pos, 1)
        entries[key] = buf[start:pos]
    if pos != len(buf):
        raise Rejected("malformed", "trailing bytes after the map")
    return entries


def zstd_frame_end(body):
    """§4.2 step 1: where the zstd frame at the start of `body` ends (RFC 8878 §3.1.1: magic,
    frame header, blocks up to the last one, the optional 4-byte checksum), reading only the
    headers. A frame that is not complete is malformed."""
    if body[:4] != ZSTD_MAGIC:  # a skippable frame (or anything else) is not a zstd frame
        raise Rejected("malformed", "not a zstd frame")
    try:
        params = zstandard.get_frame_parameters(body)
        pos = zstandard.frame_header_size(body)
    except zstandard.ZstdError:
        raise Rejected("malformed", "invalid zstd frame header") from None
    while True:
        if len(body) - pos < 3:
            raise Rejected("malformed", "truncated zstd frame")
        block = int.from_bytes(body[pos:pos + 3], "little")
        last, kind, size = block & 1, (block >> 1) & 3, block >> 3
        if kind == 3:
            raise Rejected("malformed", "reserved zstd block type")
        pos += 3 + (1 if kind == 1 else size)  # an RLE block stores its one byte
        if pos > len(body):
            raise Rejected("malformed", "truncated zstd frame")
        if last:
            break
    pos += 4 if params.has_checksum else 0
    if pos > len(body):
        raise Rejected("malformed", "truncated zstd frame")
    return pos, params


_dictionary = None


def dictionary():
    """§4.2: dictionary 1, read once and checked against its SHA-256."""
    global _dictionary
    if _dictionary is None:
        with open(DICTIONARY_PATH, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != DICTIONARY_SHA256:
            sys.exit(f"{DICTIONARY_PATH}: not dictionary 1 (SHA-256 mismatch)")
        _dictionary = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
    return _dictionary


def decompress(body, limit, with_dictionary=False):
    """§4.2: exactly one complete zstd frame that declares its size (malformed), then the
    declared size against `limit` (too_large), then decoding, checksum included (malformed);
    with dictionary 1 when flag bit 2 is set. The frame itself never names a dictionary."""
    end, params = zstd_frame_end(body)
    if end != len(body):
        raise Rejected("malformed", "bytes after the zstd frame")
    declared = params.content_size
    if declared in (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR):
        raise Rejected("malformed", "zstd frame does not declare its size")
    if declared > limit:
        raise Rejected("too_large", f"declares {declared} bytes, limit {limit}")
    if params.dict_id:
        raise Rejected("malformed", "zstd frame names a dictionary")
    if with_dictionary:
        d = zstandard.ZstdDecompressor(dict_data=dictionary()).decompressobj()
    else:
        d = zstandard.ZstdDecompressor().decompressobj()
    try:
        out = d.decompress(body)
    except zstandard.ZstdError:
        raise Rejected("malformed", "corrupt zstd frame") from None
    if not d.eof or d.unused_data or len(out) != declared:
        raise Rejected("malformed", "zstd frame size or end mismatch")
    return out


def parse_cookies(header, name, cfg):
    """§6.3 steps 1-2 and duplicate names: the variants, each {index: piece}, to try in order."""
    if len(header.encode()) > cfg["max_cookie_header"]:
        raise Rejected("too_large", "Cookie header longer than the maximum")
    seen = {}  # chunk index -> values in order of appearance
    for part in header.split(";"):
        key, eq, value = part.partition("=")
        key, value = key.strip(WHITESPACE), value.strip(WHITESPACE)
        if not eq or not key:
            continue
        if key == name:
            index = 0
        elif key.startswith(name + "."):
            digits = key[len(name) + 1:]  # 1 to 31: ASCII digits, no leading zero or sign
            if not (digits.isascii() and digits.isdigit() and len(digits) <= 2
                    and digits[0] != "0" and int(digits) <= 31):
                continue
            index = int(digits)
        else:
            continue
        seen.setdefault(index, []).append(value)
    if sum(map(len, seen.values())) > MAX_OURS:
        raise Rejected("too_large", "too many session cookies")
    count = min(MAX_VARIANTS, max(map(len, seen.values()), default=0))
    return [{i: vals[min(v, len(vals) - 1)] for i, vals in seen.items()} for v in range(count)]


def utf8_len(text):
    """§6.3 step 4, §7: the budget counts bytes, not characters (they differ only for a value
    that is not ASCII, which is then too_large rather than malformed). Bytes that came in
    undecodable (surrogate escapes) count as the one byte each they were."""
    return len(text.encode("utf-8", "surrogateescape"))


def open_pieces(pieces, name, ring, mode, cfg, now, token=False):
    """§6.3 steps 3-6 for one variant (or, with `token`, a header token, §7). `ring` maps key
    id -> 32-byte secret."""
    if 0 not in pieces or len(pieces[0]) < 8:
        raise Rejected("malformed", "no header in the first cookie")
    header = b64decode_strict(pieces[0][:8])
    version, mode_nibble, chunks = header[0] >> 4, header[0] & 0x0F, header[1]
    key_id = int.from_bytes(header[2:6], "big")
    if version != VERSION:
        raise Rejected("unsupported_version")
    if mode_nibble != MODES[mode]:
        raise Rejected("wrong_mode")
    if not 1 <= chunks <= MAX_CHUNKS:
        raise Rejected("malformed", "chunk count")
    if token and chunks != 1:
        raise Rejected("malformed", "a header token is never split")
    if any(i not in pieces for i in range(1, chunks)):
        raise Rejected("malformed", "a chunk is missing")
    if key_id not in ring:
        raise Rejected("unknown_key")
    joined = "".join(pieces[i] for i in range(chunks))
    if utf8_len(joined) > cfg["cookie_budget"]:
        raise Rejected("too_large", "token longer than the cookie budget")
    token = b64decode_strict(joined)
    if len(token) < HEADER_LEN + (NONCE_LEN + TAG_LEN if mode == "sealed" else MAC_LEN):
        raise Rejected("malformed", "token too short")

    # §3: authenticate (and decrypt) under the one key the header names.
    aad = header + bytes([len(name)]) + name.encode("ascii")
    purpose = cfg.get("purpose")
    if purpose is not None:  # §3.2: the deployment purpose, when one is configured
        aad += bytes([len(purpose)]) + purpose.encode("ascii")
    enc_key, sign_key = subkeys(ring[key_id])
    if mode == "sealed":
        frame = xaes_256_gcm_open(enc_key, token[6:30], token[30:], aad)
    else:
        frame, mac = token[6:-MAC_LEN], token[-MAC_LEN:]
        if not hmac.compare_digest(hmac.new(sign_key, aad + frame, hashlib.sha256).digest(), mac):
            raise Rejected("forged")

    # §4: the frame.
    flags = take(frame, 0, 1)[0][0]
    if flags & ~0x1F:
        raise Rejected("malformed", "reserved flag bits set")
    if flags & 0x05 == 0x04:
        raise Rejected("malformed", "dictionary flag without compression")
    issued_at, pos = varint(frame, 1)
    refresh_delta, pos = varint(frame, pos)
    expiry_delta, pos = varint(frame, pos)
    session_id, pos = take(frame, pos, ID_LEN)
    # Bit 3: this session's own idle timeout (0: none) replaces the configured one. Bit 4 (a
    # browser session) asks nothing of a decoder.
    idle_timeout = cfg["idle_timeout_secs"]
    if flags & 0x08:
        idle_timeout, pos = varint(frame, pos)
        idle_timeout = idle_timeout or None
    last_refresh, expires_at = issued_at + refresh_delta, issued_at + expiry_delta
    if max(last_refresh, expires_at) >= 1 << 64:
        raise Rejected("malformed", "time overflows 64 bits")
    if flags & 0x02:
        body_len, pos = varint(frame, pos)
        body, pos = take(frame, pos, body_len)
        sensitive = frame[pos:]
    else:
        body, sensitive = frame[pos:], b""
    skew = cfg["clock_skew_secs"]
    if issued_at > now + skew:  # §4.1, in this order
        raise Rejected("issued_in_future")
    # The sealed end, or today's absolute timeout from the issue time if that comes first.
    if now > min(expires_at, issued_at + cfg["absolute_timeout_secs"]) + skew:
        raise Rejected("absolute_expired")
    if idle_timeout is not None and now > last_refresh + idle_timeout + skew:
        raise Rejected("idle_expired")
    max_state = cfg["max_state_size"]
    if len(sensitive) > max_state:
        raise Rejected("too_large", "sensitive section larger than the maximum state")
    if flags & 0x01:
        body = decompress(body, max_state - len(sensitive), with_dictionary=bool(flags & 0x04))
    if len(body) + len(sensitive) > max_state:  # §4.3: compressed or not
        raise Rejected("too_large", "state larger than the maximum state")

    ordinary = section(body)
    secret = section(sensitive) if flags & 0x02 else {}
    if ordinary.keys() & secret.keys():
        raise Rejected("malformed", "a key in both sections")
    return dict(
        values=ordinary | secret, sensitive=sorted(secret), session_id=session_id.hex(),
        key_id=key_id, issued_at=issued_at, last_refresh=last_refresh, expires_at=expires_at,
        chunks=chunks, compressed=bool(flags & 1), token=joined, aad=aad.hex(), frame=frame.hex())


def open_header(header, name, ring, mode, cfg, now):
    """A Cookie header -> the session, or None without a session cookie. Raises Rejected."""
    first, opened = None, None
    for pieces in parse_cookies(header, name, cfg):
        try:
            session = open_pieces(pieces, name, ring, mode, cfg, now)
        except Rejected as error:  # try the next variant; report the first variant's error
            first = first or error
            continue
        if opened is None:
            opened = session
        elif session["session_id"] != opened["session_id"]:  # §6.3: a planted session
            raise Rejected("conflicting_sessions")
        elif session["last_refresh"] > opened["last_refresh"]:  # a newer copy of it
            opened = session
    if opened is not None:
        return opened
    if first:
        raise first
    return None


def msgpack_json(buf, pos=0):
    """§11.1: the MessagePack value at `pos` as `expected.state` spells it; returns it and its
    end. Written out rather than through a MessagePack library: those turn ext type -1 into a
    timestamp and refuse what JSON cannot key."""
    b = buf[pos]
    pos += 1

    def uint(width):
        return int.from_bytes(take(buf, pos, width)[0], "big")

    def sint(width):
        return int.from_bytes(take(buf, pos, width)[0], "big", signed=True)

    def integer(n, width):
        return (n if abs(n) <= JSON_SAFE_INT else {"$int": str(n)}), pos + width

    def floating(x, width):
        if x != x:
            return {"$float": "NaN"}, pos + width
        if x in (float("inf"), float("-inf")):
            return {"$float": "Infinity" if x > 0 else "-Infinity"}, pos + width
        return x, pos + width

    def items(count, at, pairs):
        out = []
        for _ in range(count * (2 if pairs else 1)):
            value, at = msgpack_json(buf, at)
            out.append(value)
        if not pairs:
            return out, at
        entries = list(zip(out[0::2], out[1::2]))
        keys = [k for k, _ in entries if isinstance(k, str)]
        plain = len(set(keys)) == len(entries) and not (
            len(entries) == 1 and keys[0].startswith("$"))
        return (dict(entries) if plain else {"$map": [list(e) for e in entries]}), at

    if b <= 0x7F:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if b == 0xC0:
        return None, pos
    if b in (0xC2, 0xC3):
        return b == 0xC3, pos
    if b in (0xCC, 0xCD, 0xCE, 0xCF):
        w = 1 << (b - 0xCC)
        return integer(uint(w), w)
    if b in (0xD0, 0xD1, 0xD2, 0xD3):
        w = 1 << (b - 0xD0)
        return integer(sint(w), w)
    if b == 0xCA:
        return floating(struct.unpack(">f", take(buf, pos, 4)[0])[0], 4)
    if b == 0xCB:
        return floating(struct.unpack(">d", take(buf, pos, 8)[0])[0], 8)
    if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA, 0xDB):
        n, w = (b & 0x1F, 0) if b <= 0xBF else (uint(1 << (b - 0xD9)), 1 << (b - 0xD9))
        raw, end = take(buf, pos + w, n)
        return raw.decode("utf-8"), end
    if b in (0xC4, 0xC5, 0xC6):
        w = 1 << (b - 0xC4)
        raw, end = take(buf, pos + w, uint(w))
        return {"$bin": raw.hex()}, end
    if 0xD4 <= b <= 0xD8 or b in (0xC7, 0xC8, 0xC9):
        n, w = (1 << (b - 0xD4), 0) if b >= 0xD4 else (uint(1 << (b - 0xC7)), 1 << (b - 0xC7))
        kind = int.from_bytes(take(buf, pos + w, 1)[0], "big", signed=True)
        raw, end = take(buf, pos + w + 1, n)
        return {"$ext": [kind, raw.hex()]}, end
    if 0x90 <= b <= 0x9F:
        return items(b & 0x0F, pos, False)
    if 0x80 <= b <= 0x8F:
        return items(b & 0x0F, pos, True)
    if b in (0xDC, 0xDD, 0xDE, 0xDF):
        w = 2 if b in (0xDC, 0xDE) else 4
        return items(uint(w), pos + w, b >= 0xDE)
    raise Rejected("malformed", "invalid MessagePack type 0xc1")


def open_token(value, header_name, ring, mode, cfg, now):
    """§7: a token from a request header, or None for an empty one. Raises Rejected."""
    value = value.strip(WHITESPACE)
    if not value:
        return None
    if utf8_len(value) > cfg["cookie_budget"]:
        raise Rejected("too_large", "token longer than the cookie budget")
    return open_pieces({0: value}, "header:" + header_name.lower(), ring, mode, cfg, now, True)


def value_of(raw):
    value, end = msgpack_json(raw)
    assert end == len(raw)
    return value


def same(a, b):
    """JSON equality that tells 1 from 1.0 and True from 1 (§11.1: floats keep a fraction)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    return a == b


def current_key(keys, now):
    """§2: the key with the greatest (activates_at, created_at, id) among those active at now."""
    active = [k for k in keys if k["activates_at"] <= now]
    best = max(active, key=lambda k: (k["activates_at"], k["created_at"], k["id"]), default=None)
    return best and best["id"]


def check_vector(v):
    """Returns a list of problems with one vector (empty when it passes)."""
    cfg = DEFAULTS | v["config"]
    ring = {}
    for k in v["keys"]:
        secret = bytes.fromhex(k["secret_hex"])
        ring[k["id"]] = secret
        if [x.hex() for x in subkeys(secret)] != [k["encryption_subkey_hex"],
                                                   k["signing_subkey_hex"]]:
            return [f"subkeys of key {k['id']} differ"]
    try:
        if "token_header" in v:
            got = open_token(v["token_header"]["value"], v["token_header"]["name"], ring,
                             v["mode"], cfg, v["now"])
        else:
            got = open_header(v["cookie_header"], v["cookie_name"], ring, v["mode"], cfg, v["now"])
    except Rejected as error:
        got = error
    if "expected_error" in v:
        reason = got.reason if isinstance(got, Rejected) else "opened"
        return [] if reason == v["expected_error"] else [f"{reason}, expected {v['expected_error']}"]
    if not isinstance(got, dict):
        return [f"rejected: {got}"]
    e = v["expected"]
    want = dict(state=e["state"], sensitive=sorted(e["sensitive"]), session_id=e["session_id_hex"],
                issued_at=e["issued_at"], last_refresh=e["last_refresh"],
                expires_at=e["expires_at"], key_id=e["key_id"], compressed=e["compressed"],
                chunks=e["chunks"], token=v["token"], aad=e["aad_hex"], frame=e["frame_hex"])
    have = dict(got, state={k: value_of(raw) for k, raw in got["values"].items()})
    problems = [f"{k}: got {have[k]!r}, expected {want[k]!r}" for k in want
                if not same(have[k], want[k])]
    if "current_key_id" in e and current_key(v["keys"], v["now"]) != e["current_key_id"]:
        problems.append(f"current key {current_key(v['keys'], v['now'])}, "
                        f"expected {e['current_key_id']}")
    return problems


class RingError(Exception):
    """A key ring file refused; `reason` is one of the names of FORMAT.md §2.1."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def parse_ring(text, form="file", now=None):
    """§2.1: a key ring file's text, or (form "env") an environment value, as a list of keys
    {id, secret, created_at, activates_at} in file order; with a schedule (§2.3), the keys in
    service at `now` (hand-made ones first, then derived ones by period). Raises RingError."""
    if form == "env":
        text = text.strip(WHITESPACE)
        if text.startswith("ssk1."):
            try:
                text = b64decode_strict(text[5:]).decode("utf-8")
            except (Rejected, UnicodeDecodeError):
                raise RingError("env_encoding") from None
        elif not text.startswith("{"):
            raise RingError("env_encoding")

    def unique(pairs):
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("duplicate field")
        return dict(pairs)

    def uint(x, bits):
        return type(x) is int and 0 <= x < 1 << bits

    def unsigned(digits):
        # §2.1: integers are written without sign, fraction or exponent; `-0` is not 0.
        if digits.startswith("-"):
            raise ValueError("signed integer")
        return int(digits)

    try:
        doc = json.loads(text, object_pairs_hook=unique, parse_int=unsigned)
    except ValueError:
        raise RingError("invalid_json") from None
    if isinstance(doc, dict) and "sha256" in doc and doc["sha256"] is None:
        del doc["sha256"]  # §2.1: null is the same as no field
    fields = {"id": 32, "secret": None, "created_at": 64, "activates_at": 64}
    sched_fields = {"id_base": 32, "root": None, "epoch": 64, "lifetime": 64, "lead": 64,
                    "retire_after": 64}
    sched = doc.get("schedule") if isinstance(doc, dict) else None
    shape = (isinstance(doc, dict)
             and doc.keys() - {"schedule"} in ({"version", "keys"}, {"version", "sha256", "keys"})
             and ("schedule" not in doc
                  or (isinstance(sched, dict) and sched.keys() == sched_fields.keys()
                      and isinstance(sched["root"], str)
                      and all(uint(sched[f], bits) for f, bits in sched_fields.items() if bits)))
             and isinstance(doc.get("sha256", ""), str)
             and uint(doc["version"], 32) and isinstance(doc["keys"], list)
             and all(isinstance(k, dict) and k.keys() == fields.keys()
                     and isinstance(k["secret"], str)
                     and all(uint(k[f], bits) for f, bits in fields.items() if bits)
                     for k in doc["keys"]))
    if not shape:
        raise RingError("invalid_json")
    if doc["version"] != 1:
        raise RingError("unsupported_version")
    if "sha256" in doc:
        # §2.2: the checksum of the canonical compact form, rebuilt from the parsed values.
        canonical = {"version": doc["version"],
                     "keys": [{f: k[f] for f in ("id", "secret", "created_at", "activates_at")}
                              for k in doc["keys"]]}
        if "schedule" in doc:
            canonical["schedule"] = {f: sched[f] for f in sched_fields}
        text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False)
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        if not hmac.compare_digest(digest, doc["sha256"].encode()):
            raise RingError("checksum")
    if not doc["keys"] and "schedule" not in doc:
        raise RingError("empty")
    keys, seen = [], set()
    for k in doc["keys"]:
        try:
            secret = b64decode_strict(k["secret"])
        except Rejected:
            raise RingError("secret_encoding") from None
        if len(secret) != 32:
            raise RingError("secret_length")
        if k["id"] in seen:
            raise RingError("duplicate_id")
        if k["activates_at"] < k["created_at"]:
            raise RingError("activates_before_created")
        seen.add(k["id"])
        keys.append(dict(k, secret=secret))
    if "schedule" not in doc:
        return keys
    return scheduled_keys(keys, sched, now)


PERIODS = 1 << 16


def scheduled_keys(keys, sched, now):
    """§2.3: the hand-made `keys` and the keys derived from the schedule, in service at `now`."""
    try:
        root = b64decode_strict(sched["root"])
    except Rejected:
        raise RingError("secret_encoding") from None
    if len(root) != 32:
        raise RingError("secret_length")
    base, epoch, life = sched["id_base"], sched["epoch"], sched["lifetime"]
    lead, retire = sched["lead"], sched["retire_after"]
    if life < 3600 or not 0 < lead < life or base + PERIODS - 1 >= 1 << 32:
        raise RingError("invalid_schedule")
    if any(base <= k["id"] < base + PERIODS for k in keys):
        raise RingError("duplicate_id")

    def activates(n):
        return epoch + n * life

    def retires(at):
        """retire_after past the first activation, hand-made or derived, later than `at`."""
        later = [k["activates_at"] for k in keys if k["activates_at"] > at]
        if at < epoch:
            later.append(epoch)
        else:
            n = min((at - epoch) // life, PERIODS - 1)
            if n + 1 < PERIODS:
                later.append(activates(n + 1))
        return min(later) + retire if later else None

    def live(at):
        end = retires(at)
        return end is None or now < end

    out = [k for k in keys if live(k["activates_at"])]
    if now + lead >= epoch:
        newest = min((now + lead - epoch) // life, PERIODS - 1)
        for n in range(newest + 1):
            if activates(n) - lead <= now and live(activates(n)):
                out.append({"id": base + n, "secret": period_key(root, base + n, n),
                            "created_at": max(activates(n) - lead, 0),
                            "activates_at": activates(n)})
    return out


def period_key(root, key_id, n):
    """§2.3: HKDF-SHA256(salt "sealed-session v1 schedule", IKM root,
    info "sealed-session v1 period key" || id u32 BE || n u32 BE), 32 bytes."""
    info = b"sealed-session v1 period key" + key_id.to_bytes(4, "big") + n.to_bytes(4, "big")
    return HKDF(hashes.SHA256(), 32, b"sealed-session v1 schedule", info).derive(root)


def check_ring_file(v):
    """Returns a list of problems with one key ring file vector."""
    try:
        keys = parse_ring(v["text"], v["form"], v["now"])
        if current_key(keys, v["now"]) is None:
            raise RingError("no_active_key")
    except RingError as error:
        got = error.reason
    else:
        got = "loaded"
    if "expected_error" in v:
        return [] if got == v["expected_error"] else [f"{got}, expected {v['expected_error']}"]
    if got != "loaded":
        return [f"refused: {got}"]
    have = [dict(k, secret_hex=k["secret"].hex()) for k in keys]
    for k in have:
        del k["secret"]
    e = v["expected"]
    problems = [] if same(have, e["keys"]) else [f"keys {have!r}, expected {e['keys']!r}"]
    if current_key(keys, v["now"]) != e["current_key_id"]:
        problems.append(f"current key {current_key(keys, v['now'])}, expected {e['current_key_id']}")
    return problems


def cmd_vectors(paths):
    passed = failed = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        assert doc["format_version"] == VERSION
        print(f"== {path}")
        checks = [(v, check_vector, v.get("expected_error", "valid")) for v in doc["vectors"]]
        checks += [(v, check_ring_file, "key ring " + v.get("expected_error", "valid"))
                   for v in doc.get("key_ring_files", [])]
        for v, check, kind in checks:
            problems = check(v)
            print(f"{'ok  ' if not problems else 'FAIL'} {v['name']} ({kind})")
            for problem in problems:
                print(f"     {problem}")
            passed, failed = passed + (not problems), failed + bool(problems)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


def load_ring(path, now):
    """The key ring file (§2.1) as {id: secret}; exits with the reason if it is refused."""
    if os.name == "posix" and os.stat(path).st_mode & 0o077:
        sys.exit(f"{path}: key ring refused: readable or writable by others (chmod 600)")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        keys = parse_ring(text, now=now)
        if current_key(keys, now) is None:
            raise RingError("no_active_key")
    except RingError as error:
        sys.exit(f"{path}: key ring refused: {error.reason}")
    return {k["id"]: k["secret"] for k in keys}


def cmd_open(args):
    name = args.name if args.no_host_prefix else "__Host-" + args.name
    cfg = dict(DEFAULTS, idle_timeout_secs=args.idle_timeout,
               absolute_timeout_secs=args.absolute_timeout, purpose=args.purpose)
    header = args.cookie.strip()
    if header[:7].lower() == "cookie:":
        header = header[7:]
    mode = "signed" if args.signed else "sealed"
    now = int(time.time()) if args.now is None else args.now
    try:
        s = open_header(header, name, load_ring(args.keys, now), mode, cfg, now)
    except Rejected as error:
        print(f"rejected: {error}", file=sys.stderr)
        return 1
    if s is None:
        print(f"rejected: no cookie named {name} in the header", file=sys.stderr)
        return 1
    out = {k: s[k] for k in ("sensitive", "session_id", "key_id", "issued_at", "last_refresh",
                             "expires_at", "chunks", "compressed")}
    out["values"] = {k: value_of(raw) for k, raw in s["values"].items()}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    vec = sub.add_parser("vectors", help="check test vector files (v1.json, v1-extra.json)")
    vec.add_argument("paths", nargs="+")
    op = sub.add_parser("open", help="open a Cookie header; print the session as JSON")
    op.add_argument("--keys", required=True, help="key ring file (JSON)")
    op.add_argument("--name", required=True, help="cookie base name, as given to `seal`")
    op.add_argument("--no-host-prefix", action="store_true", help="NAME has no __Host- prefix")
    op.add_argument("--signed", action="store_true", help="signed mode instead of sealed")
    op.add_argument("--cookie", required=True, help="the Cookie header's value")
    op.add_argument("--now", type=int, help="open at this Unix time (default: now)")
    op.add_argument("--idle-timeout", type=int, default=1800, help="seconds (default 1800)")
    op.add_argument("--absolute-timeout", type=int, default=43200,
                    help="seconds (default 43200): today's absolute timeout, section 4.1")
    op.add_argument("--purpose", default=None, help="the deployment purpose, section 3.2")
    args = parser.parse_args()
    return cmd_vectors(args.paths) if args.command == "vectors" else cmd_open(args)


if __name__ == "__main__":
    sys.exit(main())
