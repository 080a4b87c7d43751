"""Open PKCS#12 (PFX) bytes and find the leaf: the certificate that belongs to the key.

``open_pfx`` never raises for bad input; it returns what it could read and the ``pfx.*``
findings. The password is used only to call ``cryptography`` and is never put into a
finding.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, pkcs12

from shared.certs.pfx_diagnosis import diagnose, private_key_count
from shared.certs.pfx_protection import Protection, describe_protection
from shared.problems import (
    PFX_KEY_MISMATCH,
    PFX_LEGACY_ENCRYPTION,
    PFX_MISSING,
    PFX_NO_CERTIFICATE,
    PFX_NO_PRIVATE_KEY,
    PFX_PASSWORD_UNUSED,
    PFX_SEVERAL_KEYS,
    PFX_TOO_LARGE,
    Finding,
)


@dataclass(frozen=True)
class OpenedPfx:
    """What a PFX holds. ``leaf`` is set whenever a certificate could be singled out
    (for the report's facts) even if there are errors; ``chain`` is everything else.
    ``warnings`` are about the file as uploaded (its password, its encryption)."""

    errors: tuple[Finding, ...]
    leaf: x509.Certificate | None = None
    private_key: PrivateKeyTypes | None = None
    chain: tuple[x509.Certificate, ...] = ()
    warnings: tuple[Finding, ...] = ()
    protection: Protection | None = None


def open_pfx(data: bytes | None, password: bytes | None, *, max_bytes: int) -> OpenedPfx:
    if not data:
        return OpenedPfx((PFX_MISSING("No PFX was supplied (the file is empty)."),))
    if len(data) > max_bytes:
        return OpenedPfx((PFX_TOO_LARGE(
            f"The file is larger than {max_bytes:,} bytes, the most accepted; a PFX is a few "
            "kilobytes. Is this the right file?"),))
    loaded, opened_with = _load(data, password)
    if loaded is None:
        return OpenedPfx((diagnose(data, password_given=password is not None),))
    protection = describe_protection(data)
    notes = tuple(_file_warnings(protection, password, opened_with))
    opened = _single_out_leaf(loaded.key, _certificates(loaded))
    keys = private_key_count(data) if loaded.key is not None else 0
    if keys > 1:  # cryptography (like OpenSSL) returned the first and dropped the rest
        return OpenedPfx((*opened.errors, PFX_SEVERAL_KEYS(
            f"The PFX holds {keys} private keys; a PFX for the DIP holds one. Tools read "
            "only one of them (usually the first), so which certificate logs in would "
            "depend on the tool that opens the file.")), leaf=opened.leaf, chain=opened.chain,
            warnings=notes, protection=protection)
    return OpenedPfx(opened.errors, opened.leaf, opened.private_key, opened.chain, notes,
                     protection)


def _load(data: bytes, password: bytes | None
          ) -> tuple[pkcs12.PKCS12KeyAndCertificates | None, bytes | None]:
    """(what opened, the password that opened it): the given password first, then none
    and the empty one (a password handed in for a password-less file, or no password for
    one made with the empty password)."""
    attempts: list[bytes | None] = [password] if password is not None else []
    attempts += [p for p in (None, b"") if p != password]
    for attempt in attempts:
        try:
            with warnings.catch_warnings():
                # cryptography warns on BER input; the file is still read.
                warnings.simplefilter("ignore")
                return pkcs12.load_pkcs12(data, attempt), attempt
        except Exception:  # noqa: BLE001, S112 - refusals are diagnosed by structure later
            continue
        except BaseException as exc:  # a panic in the Rust parser is not an Exception
            if type(exc).__name__ != "PanicException":
                raise
    return None, None


def _file_warnings(protection: Protection | None, password: bytes | None,
                   opened_with: bytes | None) -> list[Finding]:
    found = []
    if password and opened_with != password:
        found.append(PFX_PASSWORD_UNUSED(
            "A password was given, but it does not open this PFX: the file has no password "
            "(it opens without one, or with the empty password). Uploaded with that "
            "password it will be refused (OpenSSL and most tools refuse it too): upload it "
            "with no password, or export it again protected by the password."))
    elif password and protection is not None and not protection.protected:
        found.append(PFX_PASSWORD_UNUSED(
            "A password was given, but this PFX has no password protection at all: no "
            "integrity check (MAC) and nothing encrypted, so any password, or none, opens "
            "it. Export it again protected by the password, or upload it with no password."))
    if protection is not None and protection.legacy:
        parts = "; ".join(f"its {part} with {scheme}" for part, scheme in protection.legacy)
        rc = any(word in scheme.algorithm for _, scheme in protection.legacy
                 for word in ("RC2", "RC4"))
        found.append(PFX_LEGACY_ENCRYPTION(
            f"The PFX encrypts {parts}: legacy algorithms"
            + (" that OpenSSL 3 reads only with -legacy and that" if rc else ", which")
            + " FIPS-mode platforms refuse. Export it again with AES-256 (OpenSSL 3's "
            "default for `openssl pkcs12 -export`, Windows' AES256-SHA256 option, Java 17's "
            "default keystore format)."))
    return found


def _certificates(loaded: pkcs12.PKCS12KeyAndCertificates) -> list[x509.Certificate]:
    found = [loaded.cert] if loaded.cert is not None else []
    found += list(loaded.additional_certs)
    return list(dict.fromkeys(item.certificate for item in found))  # drop duplicates


def _single_out_leaf(key: PrivateKeyTypes | None,
                     certificates: Sequence[x509.Certificate]) -> OpenedPfx:
    if key is None and not certificates:
        return OpenedPfx((
            PFX_NO_CERTIFICATE("The PFX opened but nothing in it could be read: it holds no "
                               "certificate and no private key."),
            PFX_NO_PRIVATE_KEY("The PFX holds no private key either."),
        ))
    if not certificates:
        return OpenedPfx(
            (PFX_NO_CERTIFICATE("The PFX holds a private key but no certificate: export it "
                                "again with the certificate included."),),
            private_key=key,
        )
    if key is None:
        leaf = _likely_leaf(certificates)
        return OpenedPfx(
            (PFX_NO_PRIVATE_KEY(
                f"The PFX holds {len(certificates)} certificate(s) but no private key: export "
                "it again from the machine or vault that holds the key, with the key "
                "marked exportable."),),
            leaf=leaf, chain=tuple(c for c in certificates if c is not leaf),
        )
    key_spki = _spki(key.public_key())
    matching = [c for c in certificates if _spki(c.public_key()) == key_spki]
    if not matching:
        leaf = _likely_leaf(certificates)
        return OpenedPfx(
            (PFX_KEY_MISMATCH(
                f"The private key belongs to none of the {len(certificates)} certificate(s) "
                "in the PFX: it was exported with the wrong key, or with a certificate "
                "from an earlier request."),),
            leaf=leaf, chain=tuple(c for c in certificates if c is not leaf),
        )
    leaf = matching[0]
    return OpenedPfx((), leaf, key, tuple(c for c in certificates if c is not leaf))


def _spki(public_key) -> bytes | None:
    try:
        return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except Exception:  # noqa: BLE001 - an unusable key matches nothing
        return None


def _likely_leaf(certificates: Sequence[x509.Certificate]) -> x509.Certificate:
    """Without a key to decide, the first certificate that is no CA's issuer."""
    try:
        subjects_that_issue = {c.issuer for c in certificates if c.issuer != c.subject}
        for certificate in certificates:
            if certificate.subject not in subjects_that_issue:
                return certificate
    except ValueError:  # a name that cannot be parsed: any choice is a guess
        pass
    return certificates[0]
