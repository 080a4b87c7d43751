"""``dip-edge check-pfx FILE``: say what is wrong with a PFX before anyone uploads it.

Secrets never come from the command line: the PFX password, API key and API secret are
read from the environment variables named by ``--password-env``, ``--api-key-env`` and
``--api-secret-env``; without ``--password-env`` a PFX that needs a password is asked for
one at the terminal (only when stdin is a terminal). With an API key and secret, and
unless ``--offline``, a PFX that passes the offline checks is proven against GlobalSign
Atlas. Exit 0 valid (warnings allowed), 1 invalid, 2 usage error, 3 GlobalSign
unreachable or busy.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.cli import EXIT_INVALID, EXIT_OK, EXIT_UNAVAILABLE, UsageError

if TYPE_CHECKING:
    from shared.atlas.client import AtlasConnection
    from shared.settings import Settings

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

NAME = "check-pfx"
HELP = ("Check a PFX (PKCS#12) before uploading it to the DIP; with an API key and secret, "
        "prove all three against GlobalSign Atlas.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the PFX / .p12 file")
    parser.add_argument("--password-env", metavar="VAR",
                        help="environment variable holding the PFX password")
    parser.add_argument("--trust", metavar="PEM", action="append", default=[],
                        help="PEM file of extra issuer certificates to accept (a private or "
                             "test CA); may be repeated")
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="environment variable holding the GlobalSign API key")
    parser.add_argument("--api-secret-env", metavar="VAR",
                        help="environment variable holding the GlobalSign API secret")
    parser.add_argument("--atlas-url", metavar="URL",
                        help="GlobalSign Atlas API base URL (default: ATLAS_BASE_URL)")
    parser.add_argument("--atlas-ca", metavar="PEM",
                        help="CA certificates to verify the Atlas server with "
                             "(default: ATLAS_CA_BUNDLE, else system trust)")
    parser.add_argument("--offline", action="store_true",
                        help="do not contact GlobalSign, even with an API key and secret")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    # Secrets typed as arguments are refused without being echoed; and no abbreviation,
    # or "--password SECRET" would be read as "--password-env SECRET".
    parser.allow_abbrev = False
    parser.add_argument("--password", "--api-key", "--api-secret", dest="secret_on_argv",
                        metavar="-", help=argparse.SUPPRESS)


@dataclass(frozen=True)
class _Inputs:
    data: bytes
    password: bytes | None
    api_key: str | None
    api_secret: str | None


def run(args: argparse.Namespace) -> int:
    from shared.certs.pfx_check import check_pfx
    from shared.problems import API_KEY_MISSING, API_SECRET_MISSING, DipEdgeError, Finding
    from shared.settings import load_settings
    from shared.validation import validate_credentials

    settings = load_settings()
    policy = _policy(args, settings)
    inputs = _read_inputs(args, policy.max_bytes)
    report = check_pfx(inputs.data, inputs.password, policy)
    if inputs.password is None and _needs_password(report) and sys.stdin.isatty():
        import getpass

        try:
            report = check_pfx(inputs.data, getpass.getpass("PFX password: ").encode(), policy)
        except EOFError:  # Ctrl-D: no password typed, so the report's "none given" stands
            print(file=sys.stderr)
    skipped = _why_not_online(args, inputs, report)
    empty: list[Finding] = []
    if inputs.api_key == "":
        empty.append(API_KEY_MISSING(f"The environment variable {args.api_key_env} is empty."))
    if inputs.api_secret == "":
        empty.append(
            API_SECRET_MISSING(f"The environment variable {args.api_secret_env} is empty."))
    if skipped is None and empty:
        skipped = "not asked: fix the problems above first"
    online = skipped is None
    try:  # an empty key or secret: not asked (the gate), reported after the PFX's findings
        verdict = validate_credentials(report, inputs.api_key if online else None,
                                       inputs.api_secret, lambda: _connection(args, settings))
    except DipEdgeError as err:  # config.invalid: a bad ATLAS_* setting or --atlas-ca file
        raise UsageError(str(err)) from None
    errors, warnings, proof = [*verdict.errors, *empty], list(verdict.warnings), verdict.proof
    document = {
        "valid": not errors,
        "errors": [f.to_dict() for f in errors],
        "warnings": [f.to_dict() for f in warnings],
        "certificate": report.certificate.to_dict() if report.certificate else None,
        "chain": [c.to_dict() for c in report.chain],
        "pkcs12": report.pkcs12(),
        "globalsign": proof.to_dict() if proof is not None else None,
    }
    if args.json:
        import json

        print(json.dumps(document, indent=2))
    else:
        print(_human(args.file, report, errors, warnings, proof, skipped))
    if proof is not None and proof.unavailable:  # proof runs only when all else passed
        return EXIT_UNAVAILABLE
    return EXIT_INVALID if errors else EXIT_OK


def _read_inputs(args: argparse.Namespace, max_bytes: int) -> _Inputs:
    if args.secret_on_argv is not None:
        raise UsageError("secrets are not taken from the command line (they would show in "
                         "the process list and shell history): put the value in an "
                         "environment variable and name it with --password-env, "
                         "--api-key-env or --api-secret-env")
    if bool(args.api_key_env) != bool(args.api_secret_env):
        raise UsageError("--api-key-env and --api-secret-env go together: give both or neither")
    path = Path(args.file)
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)  # one byte more tells "too large"; no more is read
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or type(exc).__name__}") from None
    password = _env(args.password_env, "--password-env")
    return _Inputs(
        data=data,
        password=password.encode() if password is not None else None,
        api_key=_env(args.api_key_env, "--api-key-env"),
        api_secret=_env(args.api_secret_env, "--api-secret-env"),
    )


def _env(name: str | None, option: str) -> str | None:
    if not name:
        return None
    if not _ENV_NAME.fullmatch(name):  # perhaps a secret given by mistake: do not echo it
        raise UsageError(f"{option} takes the name of an environment variable (letters, "
                         "digits and _), not a value")
    if name not in os.environ:
        raise UsageError(f"{option} names {name}, which is not set in the environment")
    return os.environ[name]


def _policy(args: argparse.Namespace, settings):
    from cryptography import x509

    from shared.certs.pfx_check import PfxPolicy
    from shared.problems import DipEdgeError

    try:
        policy = PfxPolicy.from_settings(settings)
    except DipEdgeError as err:
        raise UsageError(str(err)) from None
    extra: list[x509.Certificate] = []
    for pem_path in args.trust:
        try:
            extra += x509.load_pem_x509_certificates(Path(pem_path).read_bytes())
        except OSError as exc:
            raise UsageError(f"--trust {pem_path}: {exc.strerror or type(exc).__name__}") from None
        except ValueError:
            raise UsageError(f"--trust {pem_path}: not a file of PEM certificates") from None
    return policy.trusting(extra)


def _needs_password(report) -> bool:
    from shared.problems import PFX_WRONG_PASSWORD

    return any(f.is_(PFX_WRONG_PASSWORD) for f in report.errors)


def _why_not_online(args: argparse.Namespace, inputs: _Inputs, report) -> str | None:
    """Why GlobalSign is not asked, or None when it is."""
    if args.offline:
        return "not asked (--offline)"
    if inputs.api_key is None:
        return "not asked (no --api-key-env / --api-secret-env given)"
    if not report.valid:
        return "not asked: fix the problems above first"
    return None


def _connection(args: argparse.Namespace, settings: Settings) -> AtlasConnection:
    """Where Atlas is: the ATLAS_* settings, with --atlas-url and --atlas-ca instead."""
    import dataclasses

    from shared.atlas.client import AtlasConnection
    from shared.problems import DipEdgeError
    from shared.settings import Settings

    overridden = [setting for setting, option in ((Settings.atlas_base_url, args.atlas_url),
                                                  (Settings.atlas_ca_bundle, args.atlas_ca))
                  if option]
    try:
        connection = AtlasConnection.from_settings(settings.without_issues(*overridden))
    except DipEdgeError as err:  # config.invalid: a bad ATLAS_* setting
        raise UsageError(str(err)) from None
    overrides: dict[str, Any] = {}
    if args.atlas_url:
        try:  # ATLAS_BASE_URL's own parser (it refuses what urlsplit cannot split)
            overrides["base_url"] = Settings.atlas_base_url.parse(args.atlas_url)
        except ValueError as exc:
            raise UsageError(f"--atlas-url {exc}") from None
    if args.atlas_ca:
        if not os.path.isfile(args.atlas_ca):  # False for a name too long to stat
            raise UsageError(f"--atlas-ca {args.atlas_ca}: no such file")
        overrides["ca_bundle"] = args.atlas_ca
    return dataclasses.replace(connection, **overrides)


def _human(file: str, report, errors, warnings, proof, skipped: str | None) -> str:
    from shared.certs.advice import advice_for

    lines = [f"PFX {file}"]
    facts = report.certificate
    if facts is not None:
        usage = ", ".join(facts.extended_key_usages) or "any (no extended key usage)"
        lines += [
            f"  certificate  {facts.subject}",
            f"  issuer       {facts.issuer}",
            f"  valid        {facts.not_before:%Y-%m-%d} to {facts.not_after:%Y-%m-%d} "
            f"({facts.days_to_expiry} days left)",
            f"  key          {facts.key_type} {facts.curve or facts.key_size or ''}, "
            f"signed with {facts.signature_hash or 'n/a'}",
            f"  usage        {usage}",
            f"  thumbprint   {facts.thumbprint_sha1} (SHA-1)",
            f"  chain        {len(report.chain)} more certificate(s) in the file",
        ]
    protection = report.protection
    if protection is not None:
        lines.append(f"  integrity    {protection.mac or 'none (no MAC)'}")
        parts = []
        for label, schemes in (("certificates", protection.certificates),
                               ("private key", protection.keys)):
            shown = "; ".join(str(s) for s in dict.fromkeys(schemes)) or "not encrypted"
            parts.append(f"{label} {shown}")
        lines.append(f"  encryption   {parts[0]}")
        lines.append(f"               {parts[1]}")
    lines.append("")
    if errors:
        lines.append(f"INVALID: {len(errors)} problem(s) to fix before uploading to the DIP")
    elif proof is None:
        lines.append("VALID: the PFX passes every offline check")
    else:
        lines.append("VALID: the PFX, API key and secret work with GlobalSign Atlas")
    for level, findings in (("ERROR", errors), ("WARNING", warnings)):
        for finding in findings:
            lines.append("")
            lines += _wrap(f"{level} {finding.code}: {finding.detail}", "  ", "    ")
            advice = advice_for(finding.code)
            if advice:
                lines += _wrap(f"Why it matters: {advice.why}", "    ", "      ")
                lines += _wrap(f"What to do: {advice.action}", "    ", "      ")
    lines.append("")
    if proof is None:
        lines.append(f"GlobalSign Atlas: {skipped}")
    elif proof.proven:
        lines.append("GlobalSign Atlas: login with the PFX, API key and secret succeeded")
    else:
        lines.append("GlobalSign Atlas: the credentials were not proven (see above)")
    return "\n".join(lines)


def _wrap(text: str, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, width=96, initial_indent=first, subsequent_indent=rest)
