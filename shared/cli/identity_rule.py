"""``dip-edge identity-rule CERT``: the identity rule that names a certificate, as JSON.

For the DIP's client or signing certificate as the DIP Manager publishes it (PEM or DER;
a PEM file's first certificate is the one named). Prints a JSON array of one rule, ready
to paste into ``DIP_CLIENT_IDENTITIES`` / ``DIP_SIGNER_IDENTITIES`` (or to join with other
rules)::

    export DIP_CLIENT_IDENTITIES="$(dip-edge identity-rule dip-client.pem)"

``--pin subject`` (default) names the subject and the issuer's subject; ``spki`` the public
key; ``thumbprint`` exactly this certificate. Exit 0 printed, 2 usage error (not a readable
certificate, a CA certificate, a rule that cannot name it).
"""

from __future__ import annotations

import argparse
import json

from shared.cli import EXIT_OK, UsageError, read_certificate_file

NAME = "identity-rule"
HELP = ("Print the JSON identity rule (subject and issuer, SPKI or thumbprint pin) for a "
        "certificate, ready for DIP_CLIENT_IDENTITIES / DIP_SIGNER_IDENTITIES.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cert", metavar="CERT", help="the certificate, PEM or DER")
    parser.add_argument("--pin", choices=("subject", "spki", "thumbprint"), default="subject",
                        help="what the rule names: subject and issuer (default; survives "
                             "renewal by the same CA), spki (the public key) or thumbprint "
                             "(this certificate only)")


def run(args: argparse.Namespace) -> int:
    from shared.certs.identity import rule_for
    from shared.certs.trust import UNPARSABLE

    certificate = _read_certificate(args.cert)
    try:
        rule = rule_for(certificate, args.pin)
    except ValueError as exc:
        raise UsageError(f"{args.cert}: {exc}") from None
    except UNPARSABLE:  # cryptography parses lazily: a hostile key raises here
        raise UsageError(f"{args.cert}: not a readable X.509 certificate") from None
    print(json.dumps([rule]))
    return EXIT_OK


def _read_certificate(value: str):
    from cryptography import x509

    from shared.certs.trust import UNPARSABLE

    data = read_certificate_file(value)
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            certificate = x509.load_pem_x509_certificates(data)[0]
        else:
            certificate = x509.load_der_x509_certificate(data)
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        is_ca = constraints.value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    except UNPARSABLE:
        raise UsageError(f"{value}: not a readable PEM or DER X.509 certificate") from None
    if is_ca:
        raise UsageError(f"{value}: is a CA certificate; identity rules name the DIP's own "
                         "certificate (a CA belongs in DIP_CLIENT_TRUST_ANCHORS or "
                         "DIP_CLIENT_INTERMEDIATES)")
    return certificate
