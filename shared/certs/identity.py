"""Identity rules: which certificates are the DIP's, after their chain is trusted.

Modelled on Azure API Management's ``validate-client-certificate`` identities. A rule is
a JSON object of one or more fields; a certificate matches a rule when it matches every
field of it, and passes :class:`IdentityRules` when it matches at least one rule::

    [{"subject": "CN=dip.elexon.example,O=Elexon Limited,C=GB",
      "issuer_subject": "CN=GlobalSign Atlas R3 ...,O=GlobalSign nv-sa,C=BE"},
     {"thumbprint": "AB:CD:..."}]

Fields: ``thumbprint`` (SHA-1 hex, as the Azure portal shows it; case, colons and spaces
ignored), ``thumbprint_sha256``, ``serial_number`` (hex), ``common_name``, ``subject`` and
``issuer_subject`` (RFC 4514, as ``dip-edge check-cert`` prints them), ``dns_name`` (one of
the subjectAltName DNS names), ``issuer_thumbprint`` (SHA-1 or SHA-256 hex of the issuing
CA certificate in the validated chain), ``spki_sha256`` (base64 or hex of the SHA-256 of
the SubjectPublicKeyInfo, survives renewal with the same key); ``name`` labels a rule.
Names and DNS names compare case-insensitively.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from shared.problems import CONFIG_INVALID, DipEdgeError

_HEX = re.compile(r"^[0-9A-F]+$")
_SEPARATORS = re.compile(r"[\s:\-]")
# RFC 4514 as people paste it: "CN=a, O=b" (space after the comma) and "cn=a".
_DN_SPACE = re.compile(r"(?<!\\),\s+(?=[A-Za-z][A-Za-z0-9-]*\s*=|[0-9.]+\s*=)")
_DN_KEY = re.compile(r"(^|(?<!\\)[,+])\s*([A-Za-z][A-Za-z0-9-]*)\s*=")


class IdentityConfigError(ValueError):
    """A rule that cannot be used; the message says which rule and field."""


def _hex(value: str, lengths: Sequence[int], field: str) -> str:
    cleaned = _SEPARATORS.sub("", value).upper()
    if not _HEX.match(cleaned) or len(cleaned) not in lengths:
        want = " or ".join(str(n) for n in lengths)
        raise IdentityConfigError(f"{field} must be {want} hexadecimal digits, got {value!r}")
    return cleaned


def _serial(value: str) -> str:
    cleaned = _SEPARATORS.sub("", value).upper()
    if cleaned.startswith("0X"):
        cleaned = cleaned[2:]
    if not cleaned or not _HEX.match(cleaned):
        raise IdentityConfigError(f"serial_number must be hexadecimal, got {value!r}")
    return cleaned.lstrip("0") or "0"


def _spki(value: str) -> bytes:
    text = value.strip()
    text = text.removeprefix("sha256/")
    cleaned = _SEPARATORS.sub("", text)
    if len(cleaned) == 64 and _HEX.match(cleaned.upper()):
        return bytes.fromhex(cleaned)
    try:
        digest = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise IdentityConfigError(
            f"spki_sha256 must be a SHA-256 digest in base64 or hex, got {value!r}")
    return digest


def normalise_name(value: str, field: str) -> str:
    """An RFC 4514 distinguished name in the form ``Name.rfc4514_string()`` prints, folded."""
    text = _DN_SPACE.sub(",", value.strip())
    text = _DN_KEY.sub(lambda m: f"{m.group(1)}{m.group(2).upper()}=", text)
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError:
        raise IdentityConfigError(
            f"{field} is not an RFC 4514 distinguished name such as "
            f"'CN=host.example,O=Org,C=GB': {value!r}") from None
    if not len(name):
        raise IdentityConfigError(f"{field} must not be empty")
    return name.rfc4514_string().casefold()


@dataclass(frozen=True)
class Presented:
    """The facts of a certificate (and its issuer) that rules compare, computed once."""

    thumbprint: str
    thumbprint_sha256: str
    serial_number: str
    common_names: frozenset[str]
    subject: str
    dns_names: frozenset[str]
    issuer_subject: str
    issuer_thumbprints: frozenset[str]
    spki_sha256: bytes

    @classmethod
    def of(cls, certificate: x509.Certificate,
           issuer: x509.Certificate | None = None) -> Presented:
        try:
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            dns = frozenset(d.casefold() for d in san.value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            dns = frozenset()
        cns = frozenset(
            str(a.value).casefold()
            for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        issuer_prints = frozenset(
            issuer.fingerprint(h()).hex().upper() for h in (hashes.SHA1, hashes.SHA256)
        ) if issuer is not None else frozenset()
        digest = hashes.Hash(hashes.SHA256())
        digest.update(spki)
        return cls(
            thumbprint=certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
            thumbprint_sha256=certificate.fingerprint(hashes.SHA256()).hex().upper(),
            serial_number=format(certificate.serial_number, "X"),
            common_names=cns,
            subject=certificate.subject.rfc4514_string().casefold(),
            dns_names=dns,
            issuer_subject=certificate.issuer.rfc4514_string().casefold(),
            issuer_thumbprints=issuer_prints,
            spki_sha256=digest.finalize(),
        )


@dataclass(frozen=True)
class IdentityRule:
    """One identity: every field that is set must match."""

    name: str | None = None
    thumbprint: str | None = None
    thumbprint_sha256: str | None = None
    serial_number: str | None = None
    common_name: str | None = None
    subject: str | None = None
    dns_name: str | None = None
    issuer_subject: str | None = None
    issuer_thumbprint: str | None = None
    spki_sha256: bytes | None = None

    @classmethod
    def from_json(cls, doc: Any, position: int) -> IdentityRule:
        where = f"rule {position}"
        if not isinstance(doc, dict):
            raise IdentityConfigError(f"{where} must be a JSON object, got {type(doc).__name__}")
        unknown = sorted(set(doc) - RULE_FIELDS)
        if unknown:
            raise IdentityConfigError(
                f"{where}: unknown field {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(sorted(RULE_FIELDS))})")
        for key, value in doc.items():
            if not isinstance(value, str) or not value.strip():
                raise IdentityConfigError(
                    f"{where}: {key} must be a non-empty string, got {json.dumps(value)}")
        if not set(doc) - {"name"}:
            raise IdentityConfigError(f"{where} has no field to match (it would accept anyone)")
        try:
            return cls(
                name=doc.get("name"),
                thumbprint=_opt(doc, "thumbprint", lambda v: _hex(v, (40,), "thumbprint")),
                thumbprint_sha256=_opt(doc, "thumbprint_sha256",
                                       lambda v: _hex(v, (64,), "thumbprint_sha256")),
                serial_number=_opt(doc, "serial_number", _serial),
                common_name=_opt(doc, "common_name", lambda v: v.strip().casefold()),
                subject=_opt(doc, "subject", lambda v: normalise_name(v, "subject")),
                dns_name=_opt(doc, "dns_name", lambda v: v.strip().rstrip(".").casefold()),
                issuer_subject=_opt(doc, "issuer_subject",
                                    lambda v: normalise_name(v, "issuer_subject")),
                issuer_thumbprint=_opt(doc, "issuer_thumbprint",
                                       lambda v: _hex(v, (40, 64), "issuer_thumbprint")),
                spki_sha256=_opt(doc, "spki_sha256", _spki),
            )
        except IdentityConfigError as exc:
            raise IdentityConfigError(f"{where}: {exc}") from None

    @property
    def label(self) -> str:
        return self.name or ", ".join(self.fields())

    def fields(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "name" and getattr(self, f.name)]

    def mismatches(self, cert: Presented) -> list[str]:
        """The fields of this rule that the certificate does not match (empty: a match)."""
        checks = {
            "thumbprint": lambda v: v == cert.thumbprint,
            "thumbprint_sha256": lambda v: v == cert.thumbprint_sha256,
            "serial_number": lambda v: v == cert.serial_number,
            "common_name": lambda v: v in cert.common_names,
            "subject": lambda v: v == cert.subject,
            "dns_name": lambda v: v in cert.dns_names,
            "issuer_subject": lambda v: v == cert.issuer_subject,
            "issuer_thumbprint": lambda v: v in cert.issuer_thumbprints,
            "spki_sha256": lambda v: v == cert.spki_sha256,
        }
        return [name for name in self.fields() if not checks[name](getattr(self, name))]


RULE_FIELDS = frozenset(f.name for f in fields(IdentityRule))


def _opt(doc: dict, key: str, convert):
    return convert(doc[key]) if key in doc else None


@dataclass(frozen=True)
class IdentityRules:
    """The accepted identities; an empty tuple is not allowed (use ``None`` for "anyone")."""

    rules: tuple[IdentityRule, ...]

    @classmethod
    def parse(cls, text: str, setting: str) -> IdentityRules:
        """Parse a JSON list of rules; raise ``config.invalid`` naming ``setting``."""
        try:
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise IdentityConfigError(
                    f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
                ) from None
            except RecursionError:
                raise IdentityConfigError("is not usable JSON: nested too deeply") from None
            return cls.from_json(doc)
        except IdentityConfigError as exc:
            raise DipEdgeError(CONFIG_INVALID(f"{setting}: {exc}")) from None

    @classmethod
    def from_json(cls, doc: Any) -> IdentityRules:
        if not isinstance(doc, list):
            raise IdentityConfigError(
                f"must be a JSON array of identity rules, got {type(doc).__name__}")
        if not doc:
            raise IdentityConfigError("holds no rule (to accept any certificate that chains, "
                                      "in a test environment only, set it to any)")
        return cls(tuple(IdentityRule.from_json(rule, i) for i, rule in enumerate(doc, 1)))

    def match(self, cert: Presented) -> IdentityRule | None:
        """The first rule the certificate matches, or ``None``."""
        for rule in self.rules:
            if not rule.mismatches(cert):
                return rule
        return None

    def explain(self, cert: Presented) -> str:
        """Why no rule matched, naming fields (never values), closest rule first."""
        closest = min(self.rules, key=lambda r: len(r.mismatches(cert)))
        differs = ", ".join(closest.mismatches(cert))
        return (f"the certificate matches none of the {len(self.rules)} identity rule(s); "
                f"closest is rule '{closest.label}', which differs in: {differs}")


PINS = ("subject", "spki", "thumbprint")


def rule_for(certificate: x509.Certificate, pin: str = "subject") -> dict[str, str]:
    """The identity rule that names ``certificate`` (``dip-edge identity-rule``).

    ``subject``: its subject together with its issuer's (survives renewal by the same CA);
    ``spki``: its public key (survives renewal with the same key); ``thumbprint``: exactly
    this certificate (SHA-256). The rule is checked to match the certificate it came from.
    """
    if pin not in PINS:
        raise ValueError(f"pin must be one of {', '.join(PINS)}, got {pin!r}")
    presented = Presented.of(certificate)
    cns = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    label = str(cns[0].value) if cns else certificate.subject.rfc4514_string()
    rule: dict[str, str] = {"name": f"{label} ({pin})"}
    if pin == "subject":
        rule["subject"] = certificate.subject.rfc4514_string()
        rule["issuer_subject"] = certificate.issuer.rfc4514_string()
    elif pin == "spki":
        rule["spki_sha256"] = base64.b64encode(presented.spki_sha256).decode()
    else:
        rule["thumbprint_sha256"] = presented.thumbprint_sha256
    try:
        parsed = IdentityRule.from_json(rule, 1)
    except IdentityConfigError as exc:
        raise ValueError(f"the {pin} rule cannot be written for this certificate: {exc}") \
            from None
    if parsed.mismatches(presented):  # a name that does not survive RFC 4514 round trips
        raise ValueError(f"the {pin} rule would not match this certificate; "
                         "use --pin spki or --pin thumbprint")
    return rule
