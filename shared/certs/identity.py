"""Identity rules: which certificates are the DIP's, after their chain is trusted.

Modelled on Azure API Management's ``validate-client-certificate`` identities. A rule is
a JSON object of one or more fields; a certificate matches a rule when it matches every
field of it, and passes :class:`IdentityRules` when it matches at least one rule::

    [{"subject": "CN=dip.elexon.example,O=Elexon Limited,C=GB",
      "issuer_subject": "CN=GlobalSign Atlas R3 ...,O=GlobalSign nv-sa,C=BE"},
     {"thumbprint": "AB:CD:..."}]

Fields: ``thumbprint`` (SHA-1 hex, as the Azure portal shows it; case, colons and spaces
ignored), ``thumbprint_sha256``, ``serial_number`` (hex), ``common_name``, ``subject`` and
``issuer_subject`` (distinguished names, compared as names: the attributes must be the
same, in whatever order they are written — RFC 4514 as ``dip-edge check-cert`` prints
them, openssl's ``C = GB, O = Org, CN = host`` or ``/C=GB/O=Org/CN=host`` — with case and
spacing in values ignored), ``dns_name`` (one of
the subjectAltName DNS names), ``issuer_thumbprint`` (SHA-1 or SHA-256 hex of the issuing
CA certificate in the validated chain), ``spki_sha256`` (base64 or hex of the SHA-256 of
the SubjectPublicKeyInfo, survives renewal with the same key); ``name`` labels a rule.
Names and DNS names compare case-insensitively. When no rule matches, the explanation
shows the certificate's own values for the fields the closest rule differs in.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from shared.certs.facts import name_text
from shared.problems import CONFIG_INVALID, DipEdgeError

_HEX = re.compile(r"^[0-9A-F]+$")
_SEPARATORS = re.compile(r"[\s:\-]")
# Names as people paste them: "CN=a, O=b" (space after the comma), "cn=a", openssl's
# "C = GB, O = b" (spaces around "=") and "/C=GB/O=b" (its compat form), "subject=...".
_DN_SPACE = re.compile(r"(?<!\\)([,+])\s+(?=[A-Za-z][A-Za-z0-9-]*\s*=|[0-9.]+\s*=)")
_DN_KEY = re.compile(r"(^|(?<!\\)[,+])\s*([A-Za-z][A-Za-z0-9-]*)\s*=\s*")
_DN_LABEL = re.compile(r"^(subject|issuer)\s*=\s*", re.IGNORECASE)
_SLASH = re.compile(r"(?<!\\)/")
# openssl's names for attributes RFC 4514 has no keyword for.
_ATTRIBUTE_NAMES = {
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS, "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "GN": NameOID.GIVEN_NAME, "SN": NameOID.SURNAME, "TITLE": NameOID.TITLE,
    "ORGANIZATIONIDENTIFIER": NameOID.ORGANIZATION_IDENTIFIER,
    "BUSINESSCATEGORY": NameOID.BUSINESS_CATEGORY, "POSTALCODE": NameOID.POSTAL_CODE,
    "JURISDICTIONC": NameOID.JURISDICTION_COUNTRY_NAME,
}
NameKey = tuple[tuple[tuple[str, str], ...], ...]


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


def normalise_name(value: str, field: str) -> NameKey:
    """A distinguished name as written in a rule, as the key :func:`name_key` gives."""
    text = _DN_LABEL.sub("", value.strip())
    if text.startswith("/"):  # openssl's compat form: /C=GB/O=Org/CN=host
        text = ",".join(part.replace(",", "\\,") for part in _SLASH.split(text[1:]) if part)
    text = _DN_SPACE.sub(lambda m: m.group(1), text)
    text = _DN_KEY.sub(lambda m: f"{m.group(1)}{m.group(2).upper()}=", text)
    try:
        name = x509.Name.from_rfc4514_string(text, _ATTRIBUTE_NAMES)
    except ValueError:
        raise IdentityConfigError(
            f"{field} is not a distinguished name such as 'CN=host.example,O=Org,C=GB' "
            f"(or openssl's 'C = GB, O = Org, CN = host.example'): {value!r}") from None
    if not len(name):
        raise IdentityConfigError(f"{field} must not be empty")
    return name_key(name)


def name_key(name: x509.Name) -> NameKey:
    """A name compared as a set of attributes: the order of its RDNs (which RFC 4514 and
    openssl print in opposite directions) and the case and spacing of values ignored."""
    return tuple(sorted(
        tuple(sorted((a.oid.dotted_string, " ".join(_text(a.value).split()).casefold())
                     for a in rdn))
        for rdn in name.rdns))


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("latin-1")




@dataclass(frozen=True)
class Presented:
    """The facts of a certificate (and its issuer) that rules compare, computed once."""

    thumbprint: str
    thumbprint_sha256: str
    serial_number: str
    common_names: frozenset[str]
    subject: NameKey
    dns_names: frozenset[str]
    issuer_subject: NameKey
    issuer_thumbprints: frozenset[str]
    spki_sha256: bytes
    # The certificate's own values as it shows them, for explanations.
    shown: dict[str, str] = field(default_factory=dict, compare=False)

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
        thumbprint = certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
        thumbprint_sha256 = certificate.fingerprint(hashes.SHA256()).hex().upper()
        serial = format(certificate.serial_number, "X")
        spki_digest = digest.finalize()
        shown = {
            "thumbprint": thumbprint, "thumbprint_sha256": thumbprint_sha256,
            "serial_number": serial,
            "common_name": ", ".join(sorted(
                str(a.value) for a in certificate.subject.get_attributes_for_oid(
                    NameOID.COMMON_NAME))) or "(none)",
            "subject": name_text(certificate.subject),
            "dns_name": ", ".join(sorted(dns)) or "(no subjectAltName DNS names)",
            "issuer_subject": name_text(certificate.issuer),
            "issuer_thumbprint": issuer.fingerprint(hashes.SHA256()).hex().upper()
            if issuer is not None else "(no issuer in the validated chain)",
            "spki_sha256": base64.b64encode(spki_digest).decode(),
        }
        return cls(
            thumbprint=thumbprint,
            thumbprint_sha256=thumbprint_sha256,
            serial_number=serial,
            common_names=cns,
            subject=name_key(certificate.subject),
            dns_names=dns,
            issuer_subject=name_key(certificate.issuer),
            issuer_thumbprints=issuer_prints,
            spki_sha256=spki_digest,
            shown=shown,
        )


@dataclass(frozen=True)
class IdentityRule:
    """One identity: every field that is set must match."""

    name: str | None = None
    thumbprint: str | None = None
    thumbprint_sha256: str | None = None
    serial_number: str | None = None
    common_name: str | None = None
    subject: NameKey | None = None
    dns_name: str | None = None
    issuer_subject: NameKey | None = None
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
        """Why no rule matched: the closest rule's fields that differ, each with the
        certificate's own value (the rules' values are the operator's, in the settings)."""
        closest = min(self.rules, key=lambda r: len(r.mismatches(cert)))
        differs = "; ".join(f"{name} (the certificate has '{cert.shown.get(name, '?')}')"
                            for name in closest.mismatches(cert))
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
