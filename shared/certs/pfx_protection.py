"""How a PFX is protected: its integrity check (MAC) and the encryption of its parts.

Read from the PKCS#12 structure (RFC 7292, RFC 8018, RFC 9579) with the DER reader, never
by decrypting: the MAC algorithm and iteration count, and the algorithm and iteration
count that encrypt the certificates (``encryptedData``) and the private key (a shrouded
key bag). The legacy schemes (PKCS#12 PBE with RC2, RC4 or 3DES, PKCS#5 v1.5 PBE, or
PBES2 with DES/3DES/RC2) are what old Windows and Java versions and ``openssl -legacy``
write; OpenSSL 3 opens RC2 only with ``-legacy``, and FIPS-mode platforms refuse them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.certs.der import INTEGER, SEQUENCE, DerError, Element, read_single

_DATA = "1.2.840.113549.1.7.1"
_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
_SAFE_CONTENTS_BAG = "1.2.840.113549.1.12.10.1.6"
_PBES2 = "1.2.840.113549.1.5.13"
_PBKDF2 = "1.2.840.113549.1.5.12"
_PBMAC1 = "1.2.840.113549.1.5.14"

# PKCS#12 PBE (RFC 7292 appendix C) and PKCS#5 v1.5 PBES1 (RFC 8018 A.3): all legacy.
_PBES1 = {
    "1.2.840.113549.1.12.1.1": "RC4-128 (pbeWithSHAAnd128BitRC4)",
    "1.2.840.113549.1.12.1.2": "RC4-40 (pbeWithSHAAnd40BitRC4)",
    "1.2.840.113549.1.12.1.3": "3DES (pbeWithSHAAnd3-KeyTripleDES-CBC)",
    "1.2.840.113549.1.12.1.4": "2-key 3DES (pbeWithSHAAnd2-KeyTripleDES-CBC)",
    "1.2.840.113549.1.12.1.5": "RC2-128 (pbeWithSHAAnd128BitRC2-CBC)",
    "1.2.840.113549.1.12.1.6": "RC2-40 (pbeWithSHAAnd40BitRC2-CBC)",
    "1.2.840.113549.1.5.1": "DES (pbeWithMD2AndDES-CBC)",
    "1.2.840.113549.1.5.3": "DES (pbeWithMD5AndDES-CBC)",
    "1.2.840.113549.1.5.4": "RC2 (pbeWithMD2AndRC2-CBC)",
    "1.2.840.113549.1.5.6": "RC2 (pbeWithMD5AndRC2-CBC)",
    "1.2.840.113549.1.5.10": "DES (pbeWithSHA1AndDES-CBC)",
    "1.2.840.113549.1.5.11": "RC2 (pbeWithSHA1AndRC2-CBC)",
}
_CIPHERS = {  # PBES2 encryption schemes: (name, legacy)
    "2.16.840.1.101.3.4.1.2": ("AES-128-CBC", False),
    "2.16.840.1.101.3.4.1.22": ("AES-192-CBC", False),
    "2.16.840.1.101.3.4.1.42": ("AES-256-CBC", False),
    "2.16.840.1.101.3.4.1.6": ("AES-128-GCM", False),
    "2.16.840.1.101.3.4.1.46": ("AES-256-GCM", False),
    "1.2.840.113549.3.7": ("3DES-CBC", True),
    "1.2.840.113549.3.2": ("RC2-CBC", True),
    "1.3.14.3.2.7": ("DES-CBC", True),
}
_HMACS = {  # PBKDF2 pseudo-random functions and PBMAC1 MAC schemes
    "1.2.840.113549.2.7": "HMAC-SHA-1", "1.2.840.113549.2.8": "HMAC-SHA-224",
    "1.2.840.113549.2.9": "HMAC-SHA-256", "1.2.840.113549.2.10": "HMAC-SHA-384",
    "1.2.840.113549.2.11": "HMAC-SHA-512",
}
_DIGESTS = {  # the classic PKCS#12 MAC: HMAC with this digest, key from the PKCS#12 KDF
    "1.3.14.3.2.26": "HMAC-SHA-1", "2.16.840.1.101.3.4.2.4": "HMAC-SHA-224",
    "2.16.840.1.101.3.4.2.1": "HMAC-SHA-256", "2.16.840.1.101.3.4.2.2": "HMAC-SHA-384",
    "2.16.840.1.101.3.4.2.3": "HMAC-SHA-512", "1.2.840.113549.2.5": "HMAC-MD5",
}


@dataclass(frozen=True)
class Scheme:
    """One algorithm with its iteration count (None when it has none)."""

    algorithm: str
    iterations: int | None = None
    legacy: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "iterations": self.iterations,
                "legacy": self.legacy}

    def __str__(self) -> str:
        count = f", {self.iterations:,} iteration(s)" if self.iterations is not None else ""
        return f"{self.algorithm}{count}"


@dataclass(frozen=True)
class Protection:
    """``mac`` None: no integrity check. ``certificates`` / ``keys``: one scheme per
    encrypted part (empty: stored unencrypted, or not readable without the password)."""

    mac: Scheme | None
    certificates: tuple[Scheme, ...]
    keys: tuple[Scheme, ...]
    unencrypted_parts: bool  # some certificate or key sits outside any encryption

    @property
    def protected(self) -> bool:
        """Whether a password is used at all (a MAC, or something encrypted)."""
        return self.mac is not None or bool(self.certificates or self.keys)

    @property
    def legacy(self) -> tuple[tuple[str, Scheme], ...]:
        """(part, scheme) of every legacy encryption: part is "certificates" or "key"."""
        return tuple([("certificates", s) for s in self.certificates if s.legacy]
                     + [("key", s) for s in self.keys if s.legacy])

    def to_dict(self) -> dict[str, Any]:
        return {"mac": self.mac.to_dict() if self.mac else None,
                "certificateEncryption": [s.to_dict() for s in _unique(self.certificates)],
                "keyEncryption": [s.to_dict() for s in _unique(self.keys)]}


def describe_protection(data: bytes) -> Protection | None:
    """The protection of a PFX, or None when its structure cannot be read."""
    try:
        return _protection(data)
    except (DerError, IndexError):
        return None


def _protection(data: bytes) -> Protection:
    items = read_single(data).children()
    mac = _mac(items[2]) if len(items) > 2 else None
    auth_safe = items[1].children()
    safes = read_single(read_single(auth_safe[1].content).octets())
    certificates: list[Scheme] = []
    keys: list[Scheme] = []
    unencrypted = False
    for info in safes.children():
        fields = info.children()
        kind = fields[0].as_oid()
        if kind == _ENCRYPTED_DATA:
            encrypted_content_info = read_single(fields[1].content).children()[1].children()
            certificates.append(_scheme(encrypted_content_info[1]))
        elif kind == _DATA:
            contents = read_single(read_single(fields[1].content).octets())
            found = _bags(contents, 0)
            keys += [_scheme(value.children()[0]) for bag, value in found
                     if bag == _SHROUDED_KEY_BAG]
            unencrypted = unencrypted or any(bag != _SHROUDED_KEY_BAG for bag, _ in found)
    return Protection(mac, tuple(certificates), tuple(keys), unencrypted)


def _bags(contents: Element, depth: int) -> list[tuple[str, Element]]:
    if depth > 4:
        raise DerError("safe contents nested too deeply")
    out: list[tuple[str, Element]] = []
    for bag in contents.children():
        fields = bag.children()
        kind, value = fields[0].as_oid(), read_single(fields[1].content)
        if kind == _SAFE_CONTENTS_BAG:
            out += _bags(value, depth + 1)
        else:
            out.append((kind, value))
    return out


def _scheme(algorithm: Element) -> Scheme:
    """An encryption AlgorithmIdentifier in words."""
    parts = algorithm.children()
    oid = parts[0].as_oid()
    if oid in _PBES1:  # params: SEQUENCE {salt, iterations}
        return Scheme(_PBES1[oid], _iterations(parts[1].children(), 1), legacy=True)
    if oid != _PBES2:
        return Scheme(f"an unrecognised scheme (object identifier {oid})")
    kdf, cipher = parts[1].children()[:2]
    cipher_oid = cipher.children()[0].as_oid()
    name, legacy = _CIPHERS.get(cipher_oid, (f"an unrecognised cipher (object identifier "
                                             f"{cipher_oid})", False))
    derivation, iterations = _kdf(kdf)
    return Scheme(f"PBES2 {name} ({derivation})", iterations, legacy)


def _kdf(kdf: Element) -> tuple[str, int | None]:
    parts = kdf.children()
    if parts[0].as_oid() != _PBKDF2:
        return "an unrecognised key derivation", None
    params = parts[1].children()  # salt, iterationCount, keyLength?, prf?
    prf = next((p for p in params[2:] if p.tag == SEQUENCE), None)
    prf_name = _HMACS.get(prf.children()[0].as_oid(), "an unrecognised PRF") if prf \
        else "HMAC-SHA-1"
    return f"PBKDF2 with {prf_name}", _iterations(params, 1)


def _mac(mac_data: Element) -> Scheme:
    fields = mac_data.children()
    algorithm = fields[0].children()[0].children()
    oid = algorithm[0].as_oid()
    iterations = fields[2].as_int() if len(fields) > 2 and fields[2].tag == INTEGER else 1
    if oid == _PBMAC1:
        kdf, scheme = algorithm[1].children()[:2]
        hmac = _HMACS.get(scheme.children()[0].as_oid(), "an unrecognised HMAC")
        derivation, kdf_iterations = _kdf(kdf)
        return Scheme(f"PBMAC1 {hmac} ({derivation})", kdf_iterations)
    return Scheme(_DIGESTS.get(oid, f"an unrecognised MAC (object identifier {oid})"),
                  iterations)


def _iterations(fields: list[Element], position: int) -> int | None:
    if len(fields) > position and fields[position].tag == INTEGER:
        return fields[position].as_int()
    return None


def _unique(schemes: tuple[Scheme, ...]) -> list[Scheme]:
    return list(dict.fromkeys(schemes))

