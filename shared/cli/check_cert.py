"""``dip-edge check-cert CERT``: would the webhook accept this client certificate?

Runs a certificate (PEM or DER; a PEM file may carry its chain after the leaf) through
the webhook's client-certificate policy — the same code the webhook runs, configured from
the same settings (``DIP_CLIENT_*``, ``AIA_*``). Options override the settings:
``--anchors`` replaces the trust anchors, ``--chain`` adds intermediates, ``--identities``
replaces the identity rules (inline JSON or a file), ``--usage`` the required extended key
usage, ``--at`` checks at another time ("will the renewed certificate be accepted on the
day it is switched on?"). With no identity rules (neither the setting nor the option) the
chain is still checked, but the verdict is a rejection (``config.invalid``): the webhook
refuses every delivery until they are set. The output names the trust anchors in force.
Exit 0 accepted (warnings allowed), 1 rejected, 2 usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import TYPE_CHECKING, Any

from shared.cli import EXIT_INVALID, EXIT_OK, UsageError, existing_file, read_certificate_file

if TYPE_CHECKING:
    from shared.settings import Settings

NAME = "check-cert"
HELP = ("Check a certificate against the webhook's client-certificate policy (anchors, "
        "chain, extended key usage, identity rules), as the webhook would.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cert", metavar="CERT", help="the certificate, PEM or DER")
    parser.add_argument("--chain", metavar="PEM", action="append", default=[],
                        help="PEM file of intermediate certificates to add (may be repeated)")
    parser.add_argument("--anchors", metavar="PEM",
                        help="PEM file of trust anchors, instead of DIP_CLIENT_TRUST_ANCHORS "
                             "(default: the bundled GlobalSign roots; the DIP's certificates "
                             "may chain to the DIP-PKI's own CA, from the DIP Manager)")
    parser.add_argument("--identities", metavar="JSON",
                        help="identity rules (inline JSON or a file, or any), instead of "
                             "DIP_CLIENT_IDENTITIES")
    parser.add_argument("--at", metavar="ISO-TIME",
                        help="check at this time (e.g. 2026-09-01T00:00:00Z) instead of now")
    parser.add_argument("--usage", choices=("client", "server", "any"),
                        help="required extended key usage, instead of DIP_CLIENT_EKU")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from shared.certs.trust_config import TrustSources, trust_summary
    from shared.problems import CONFIG_INVALID, DipEdgeError
    from shared.settings import Settings, load_settings

    at = _parse_time(args.at) if args.at is not None else None
    leaf, extra_pem = _read_certificate(args.cert)
    settings = _without_overridden(load_settings(), args)
    try:
        settings.require(Settings.expiry_warning_days)
        sources = TrustSources.from_settings(settings, "client")
        sources = replace(
            sources,
            anchors=("--anchors", existing_file(args.anchors)) if args.anchors is not None
            else sources.anchors,
            intermediates=sources.intermediates
            + tuple(("--chain", existing_file(p)) for p in args.chain)
            + ((("CERT", extra_pem),) if extra_pem else ()),
            identities=("--identities", _json_or_path(args.identities))
            if args.identities is not None else sources.identities,
            usage=args.usage or sources.usage,
            expiry_warning_days=settings.expiry_warning_days,
        )
        policy = sources.build(inspect=True)
    except DipEdgeError as exc:
        raise UsageError(str(exc)) from None
    verdict = policy.check(leaf, at=at)
    warnings = list(verdict.warnings)
    if not verdict.accepted:
        warnings = [*policy.warnings, *warnings]
    errors = list(verdict.errors)
    if sources.identities is None:  # the webhook would refuse it, whatever its chain
        errors.append(CONFIG_INVALID(
            "no identity rules (DIP_CLIENT_IDENTITIES, or --identities): the webhook refuses "
            "every delivery until they are set; `dip-edge identity-rule CERT` prints one"))
    doc = {**verdict.to_dict(), "accepted": not errors,
           "errors": [e.to_dict() for e in errors],
           "warnings": [w.to_dict() for w in warnings],
           "trust": trust_summary(sources, policy)}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        _print_human(doc, policy, at)
    return EXIT_OK if doc["accepted"] else EXIT_INVALID


def _without_overridden(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings minus the bad values the options replace (so they don't stop the check)."""
    from shared.settings import Setting, Settings

    overridden: dict[Setting[Any], str | None] = {
        Settings.dip_client_trust_anchors: args.anchors,
        Settings.dip_client_identities: args.identities,
        Settings.dip_client_eku: args.usage}
    return settings.without_issues(*(s for s, option in overridden.items() if option is not None))


def _parse_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise UsageError(f"--at: not an ISO-8601 time such as 2026-09-01T00:00:00Z: {text!r}") \
            from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _json_or_path(value: str) -> str:
    from shared.certs.trust_config import ANY_IDENTITY

    if value.strip().lower() == ANY_IDENTITY:
        return ANY_IDENTITY
    return value if value.lstrip()[:1] in {"[", "{"} else existing_file(value)


def _read_certificate(value: str):
    """The leaf (object or DER bytes, for the policy to judge) and any PEM chain after it."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    data = read_certificate_file(value)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return data, ""  # DER, or garbage the policy reports as clientcert.malformed
    try:
        certs = x509.load_pem_x509_certificates(data)
    except (ValueError, x509.InvalidVersion):
        return data, ""  # PEM armour around something that is not a certificate
    extra = b"".join(c.public_bytes(Encoding.PEM) for c in certs[1:]).decode()
    return certs[0], extra


def _print_human(doc: dict, policy, at: dt.datetime | None) -> None:
    out = sys.stdout
    facts = doc["certificate"]
    when = at.isoformat() if at else "now"
    verdict = "ACCEPTED" if doc["accepted"] else "REJECTED"
    print(f"{verdict} as a DIP {policy.label} (usage {policy.usage}, checked at {when})",
          file=out)
    if facts:
        for label, key in (("subject", "subject"), ("issuer", "issuer"),
                           ("serial", "serialNumber"), ("thumbprint", "thumbprintSha1"),
                           ("sha-256", "thumbprintSha256"), ("spki sha-256", "spkiSha256"),
                           ("dns names", "dnsNames"), ("eku", "extendedKeyUsages"),
                           ("not before", "notBefore"), ("not after", "notAfter")):
            value = facts.get(key)
            if isinstance(value, list | tuple):
                value = ", ".join(value) or "-"
            print(f"  {label:<13} {value}", file=out)
    anchors = doc["trust"]["anchors"]
    print(f"trust anchors ({anchors['source']}):", file=out)
    for anchor in anchors["certificates"]:
        print(f"  {anchor['subject']}  sha-256 {anchor['sha256']}", file=out)
    for item in doc["errors"]:
        print(f"error   {item['code']}: {item['detail']}", file=out)
    for item in doc["warnings"]:
        print(f"warning {item['code']}: {item['detail']}", file=out)
