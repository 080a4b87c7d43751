"""Why each finding matters for the DIP and what to do about it, for human reports.

One table, keyed by catalogue code, so the CLI (and anything else that talks to a
certificate admin) gives the same advice everywhere. Where the CLI's action names its own
flags or environment variables, ``api_action`` says it in the credential API's and the
portal's terms (fields, app settings), which is what :func:`advised` gives them.
"""

from __future__ import annotations

from typing import NamedTuple


class Advice(NamedTuple):
    why: str
    action: str  # for check-pfx
    api_action: str | None = None  # for the credential API and the portal, when different

    @property
    def for_api(self) -> str:
        return self.api_action or self.action


ADVICE: dict[str, Advice] = {
    "pfx.missing": Advice(
        "The DIP needs the PFX to log in to GlobalSign Atlas on your behalf.",
        "Pass the PFX file exported for your GlobalSign Atlas API access."),
    "pfx.too_large": Advice(
        "A real Atlas access PFX is a few kilobytes; the DIP will not take a file this size.",
        "Check that you picked the PFX and not an archive or a backup."),
    "pfx.not_pkcs12": Advice(
        "The DIP accepts only a PKCS#12 (.pfx/.p12) file holding the certificate and its "
        "private key.",
        "Export the certificate with its private key as PKCS#12 (.pfx), or convert the "
        "files you have as the detail shows."),
    "pfx.wrong_password": Advice(
        "The DIP must open the PFX with the password you upload with it.",
        "Set the right password (e.g. PFX_PASSWORD=... and --password-env PFX_PASSWORD), "
        "or re-export the PFX with a password you know.",
        "Give the PFX's own password (PFX password, pfxPassword), or re-export the PFX with "
        "a password you know."),
    "pfx.no_certificate": Advice(
        "The DIP logs in with the certificate; without it there is nothing to present.",
        "Re-export the PFX including the certificate (and its chain)."),
    "pfx.no_private_key": Advice(
        "Mutual TLS needs the private key; a PFX without it cannot log in.",
        "Export again from where the key lives (certificate store, Key Vault, the CSR's "
        "machine), with the key marked exportable."),
    "pfx.key_mismatch": Advice(
        "The certificate presented and the key that proves it must belong together, or the "
        "TLS handshake fails.",
        "Export the certificate together with the key it was issued for (usually from the "
        "same certificate store entry)."),
    "pfx.several_keys": Advice(
        "The DIP logs in with one key; with several, which one a tool uses is up to the tool "
        "(most take the first), so the upload may not work as it did here.",
        "Export only the Atlas API access certificate with its own key (and its chain)."),
    "pfx.password_unused": Advice(
        "The DIP opens the PFX with the password uploaded beside it; a file without a "
        "password does not open with one.",
        "Upload the PFX with an empty password, or export it again protected by the "
        "password you mean to upload."),
    "pfx.legacy_encryption": Advice(
        "Old PKCS#12 encryption (RC2, 3DES) is refused by FIPS-mode systems, and OpenSSL 3 "
        "opens RC2 only with -legacy, so the DIP's side may not open the file.",
        "Export it again with AES-256: `openssl pkcs12 -export` (OpenSSL 3 defaults), "
        "Windows' AES256-SHA256, or `keytool` from Java 17."),
    "cert.expired": Advice(
        "GlobalSign refuses expired certificates, so the DIP's validation fails.",
        "Renew the Atlas API access certificate in GlobalSign's console and export a new PFX."),
    "cert.not_yet_valid": Advice(
        "GlobalSign refuses a certificate before its validity starts.",
        "Wait until the start date, or check the clock of the machine that issued it."),
    "cert.expiring_soon": Advice(
        "When it expires the DIP can no longer reach GlobalSign for you.",
        "Plan the renewal now and upload the new PFX before the date."),
    "cert.weak_key": Advice(
        "GlobalSign and the DIP require RSA of at least 2048 bits or an ECDSA key on "
        "P-256/P-384/P-521.",
        "Request a new certificate with a stronger key."),
    "cert.weak_signature": Advice(
        "Certificates signed with SHA-1 or MD5 are refused by TLS libraries.",
        "Get a certificate signed with SHA-256 or better (any current GlobalSign "
        "certificate is)."),
    "cert.missing_client_auth": Advice(
        "The DIP logs in to Atlas with mutual TLS, which needs a certificate allowed for "
        "TLS client authentication.",
        "Use the Atlas API access certificate (it allows clientAuth), not a server or "
        "signing certificate."),
    "cert.is_ca": Advice(
        "A CA certificate is not an account certificate and cannot log in to Atlas.",
        "Export the end-entity (API access) certificate with its key, not the CA."),
    "cert.untrusted_issuer": Advice(
        "The DIP accepts only credentials issued by GlobalSign Atlas.",
        "Use the API access certificate GlobalSign issued for your Atlas account; for a test "
        "CA, pass it with --trust (or PFX_TRUSTED_ISSUERS).",
        "Use the API access certificate GlobalSign issued for your Atlas account; for a test "
        "CA, the app's PFX_TRUSTED_ISSUERS setting must name it."),
    "cert.malformed": Advice(
        "A certificate that cannot be parsed cannot be checked, and TLS peers reject it.",
        "Export the certificate again; if it persists, ask GlobalSign to reissue it."),
    "credentials.api_key_missing": Advice(
        "The DIP needs the API key with the PFX.",
        "Set the API key in the environment variable named by --api-key-env.",
        "Give the API key of your GlobalSign Atlas account (API key, apiKey)."),
    "credentials.api_secret_missing": Advice(
        "The DIP needs the API secret with the PFX.",
        "Set the API secret in the environment variable named by --api-secret-env.",
        "Give the API secret of your GlobalSign Atlas account (API secret, apiSecret)."),
    "globalsign.mtls_rejected": Advice(
        "GlobalSign refused the certificate at the TLS handshake, so the DIP's check fails "
        "the same way.",
        "Check it is the API access certificate of this Atlas account and not revoked."),
    "globalsign.invalid_credentials": Advice(
        "The API key and secret must belong to the account of the certificate.",
        "Copy the key and secret again from GlobalSign's console (the secret is shown "
        "once; create a new one if lost)."),
    "globalsign.unavailable": Advice(
        "GlobalSign could not be asked now; nothing is known to be wrong.",
        "Try again later."),
    "globalsign.unexpected_response": Advice(
        "GlobalSign answered in a way dip-edge does not understand.",
        "Try again later; if it persists, check --atlas-url.",
        "Try again later; if it persists, ask the cloud team to check the app's "
        "ATLAS_BASE_URL setting."),
}


def advice_for(code: str) -> Advice | None:
    return ADVICE.get(code)


def advised(finding) -> dict[str, str]:
    """A finding as the credential API gives it (``code``, ``detail``) with ``why`` and
    ``action`` when advised."""
    document = finding.to_dict()
    advice = ADVICE.get(finding.code)
    if advice is not None:
        document["why"], document["action"] = advice.why, advice.for_api
    return document
