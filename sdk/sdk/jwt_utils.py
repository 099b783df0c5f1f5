"""JWT helpers and the shared verification pipeline (sdk.md §6, §8).

PyJWT (with cryptography) only checks the RS256 signature; every claim rule
is ours, because PyJWT's audience (ANY instead of AND), expiry (`exp <= now`)
and `require` (presence instead of truthiness) semantics differ from the
contract. The algorithm never comes from the token: RS256 is the only one.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from typing import Any, Iterable, Mapping

from jwt.algorithms import RSAAlgorithm
from jwt.exceptions import PyJWTError

from .exceptions import JWTVerificationError

__all__ = [
    "JWT_ALGORITHM",
    "REQUIRED_REGISTERED_CLAIMS",
    "MAX_TOKEN_LENGTH",
    "decode_unverified_jwt_header",
    "decode_unverified_jwt_claims",
    "normalize_audiences",
    "token_audiences",
    "RS256Verifier",
    "RS256_JWT",
    "VerificationFailure",
]

JWT_ALGORITHM = "RS256"
REQUIRED_REGISTERED_CLAIMS: Mapping[str, Mapping[str, bool]] = {
    "jti": {"essential": True},
    "iat": {"essential": True},
    "exp": {"essential": True},
    "sub": {"essential": True},
}
# Tokens longer than this are rejected before any parsing (sdk.md §15).
MAX_TOKEN_LENGTH = 16 * 1024

_RSA = RSAAlgorithm(RSAAlgorithm.SHA256)


def _b64decode(segment: str) -> bytes:
    if not segment:
        raise ValueError("empty JWT segment")
    try:
        raw = segment.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("JWT segment is not base64url")
    try:
        return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("JWT segment is not base64url")


def _decode_segment(token: str, index: int) -> dict[str, Any]:
    if not isinstance(token, str):
        raise ValueError("token must be a string")
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("token must have 3 segments")
    raw = _b64decode(parts[index])
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("JWT segment is not UTF-8 JSON")
    if not isinstance(obj, dict):
        raise ValueError("JWT segment is not a JSON object")
    return obj


def decode_unverified_jwt_header(token: str) -> dict[str, Any]:
    """Parses the header segment without verifying anything."""
    return _decode_segment(token, 0)


def decode_unverified_jwt_claims(token: str) -> dict[str, Any]:
    """Parses the payload segment without verifying anything."""
    return _decode_segment(token, 1)


def normalize_audiences(expected: str | Iterable[str] | None) -> frozenset[str]:
    """Expected audiences: strings stripped, blanks dropped, duplicates removed."""
    if expected is None:
        return frozenset()
    if isinstance(expected, str):
        s = expected.strip()
        return frozenset([s]) if s else frozenset()
    out = set()
    for item in expected:
        if isinstance(item, str) and item.strip():
            out.add(item.strip())
    return frozenset(out)


def token_audiences(aud: Any) -> frozenset[str]:
    if isinstance(aud, str):
        s = aud.strip()
        return frozenset([s]) if s else frozenset()
    if isinstance(aud, list):
        return frozenset(a.strip() for a in aud if isinstance(a, str) and a.strip())
    return frozenset()


class VerificationFailure(Exception):
    """Internal: why a token failed. `kind` is one of `expired`, `unknown_kid`,
    `bad_signature` (the two the keys could be to blame for) or `invalid`."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind

    @property
    def key_related(self) -> bool:
        return self.kind in ("unknown_kid", "bad_signature")


def _fail(kind: str = "invalid") -> VerificationFailure:
    return VerificationFailure(kind)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _KeyRing:
    """Parsed public keys of one JWKS value; malformed/unusable entries skipped."""

    def __init__(self, jwks: Any) -> None:
        self.keys: dict[str, Any] = {}
        self.listed: set[str] = set()
        keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
        self.valid_list = isinstance(keys, list)
        for entry in keys if isinstance(keys, list) else ():
            if not isinstance(entry, Mapping):
                continue
            kid = entry.get("kid")
            if kid is None or str(kid) == "":
                continue
            kid = str(kid)
            self.listed.add(kid)
            if kid in self.keys:
                continue
            if str(entry.get("kty", "")) != "RSA":
                continue
            if entry.get("use") is not None and str(entry.get("use")) != "sig":
                continue
            if entry.get("alg") is not None and str(entry.get("alg")) != JWT_ALGORITHM:
                continue
            try:
                jwk = {"kty": "RSA", "n": str(entry.get("n", "")), "e": str(entry.get("e", ""))}
                self.keys[kid] = _RSA.from_jwk(jwk)
            except Exception:
                continue


class RS256Verifier:
    """Verifies RS256 JWTs against a JWKS value with the contract's rules.

    `strict_kid=True` (action tokens) requires a string `kid` and compares `alg`
    plainly; otherwise a numeric `kid` is matched through `str()`.
    """

    def __init__(self, *, leeway_seconds: float = 0, expected_issuer: str | None = None,
                 strict_kid: bool = False) -> None:
        self.leeway_seconds = leeway_seconds
        self.expected_issuer = expected_issuer
        self.strict_kid = strict_kid
        self._rings: dict[int, tuple[Any, _KeyRing]] = {}

    def _ring(self, jwks: Any) -> _KeyRing:
        cached = self._rings.get(id(jwks))
        if cached is not None and cached[0] is jwks:
            return cached[1]
        ring = _KeyRing(jwks)
        if len(self._rings) > 8:
            self._rings.clear()
        self._rings[id(jwks)] = (jwks, ring)
        return ring

    def verify(self, token: str, jwks: Any, *, audiences: frozenset[str],
               allowed_types: frozenset[str] | None, now: int | None = None) -> dict[str, Any]:
        """Returns the claims or raises VerificationFailure."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise _fail()
        try:
            header = decode_unverified_jwt_header(token)
            claims = decode_unverified_jwt_claims(token)
        except ValueError:
            raise _fail()
        alg = header.get("alg")
        if self.strict_kid:
            if str(alg) != JWT_ALGORITHM:
                raise _fail()
        elif not hmac.compare_digest(str(alg).encode("utf-8", "surrogatepass"),
                                     JWT_ALGORITHM.encode()):
            raise _fail()
        ring = self._ring(jwks)
        if not ring.valid_list or (not self.strict_kid and not ring.listed):
            raise _fail("unknown_kid")
        kid = header.get("kid")
        if self.strict_kid:
            if not isinstance(kid, str) or not kid:
                raise _fail()
        elif kid is None or kid == "" or isinstance(kid, (dict, list)):
            raise _fail()
        kid = str(kid)
        key = ring.keys.get(kid)
        if key is None:
            raise _fail("unknown_kid")
        signing_input, _, sig_b64 = token.rpartition(".")
        try:
            signature = _b64decode(sig_b64)
            ok = _RSA.verify(signing_input.encode("ascii"), key, signature)
        except (ValueError, PyJWTError, UnicodeEncodeError):
            ok = False
        if not ok:
            raise _fail("bad_signature")
        for name in REQUIRED_REGISTERED_CLAIMS:
            if not claims.get(name):
                raise _fail()
        now = int(time.time()) if now is None else now
        for name in ("exp", "nbf", "iat"):
            if name in claims and not _is_number(claims[name]):
                raise _fail()
        if claims["exp"] < now:
            raise _fail("expired")
        if "nbf" in claims and claims["nbf"] > now:
            raise _fail()
        if claims["iat"] > now + self.leeway_seconds:
            raise _fail()
        if not audiences <= token_audiences(claims.get("aud")):
            raise _fail()
        if self.expected_issuer is not None and claims.get("iss") != self.expected_issuer:
            raise _fail()
        if allowed_types is not None:
            typ = claims.get("type")
            if not isinstance(typ, str) or typ not in allowed_types:
                raise _fail()
        return claims


# Deprecated alias kept from 1.5.2, where it named the JOSE library object.
RS256_JWT = RS256Verifier


def raise_as(failure: VerificationFailure, *, action: bool = False) -> JWTVerificationError:
    """Maps an internal failure to the public error of the middleware (or of
    `require_action_token` when `action=True`)."""
    if action:
        return JWTVerificationError("Invalid action token", "action_token_invalid")
    if failure.kind == "expired":
        return JWTVerificationError("Token has expired.", "token_expired")
    return JWTVerificationError("Invalid token.", "invalid_token")
