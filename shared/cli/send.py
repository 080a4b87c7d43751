"""``dip-edge send``: deliver a message the way the DIP does (mTLS + DIP signature headers)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.cli import EXIT_INVALID, EXIT_OK, EXIT_UNAVAILABLE, UsageError

NAME = "send"
HELP = ("deliver a message file the way the DIP does: mutual TLS with --cert/--key and the "
        "X-DIP-* signature made with --sign-cert/--sign-key")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the webhook URL, e.g. https://localhost:8443/api/webhooks/dip")
    parser.add_argument("file", help="the delivery (a JSON array of payloads); - for stdin")
    parser.add_argument("--cert", required=True, help="TLS client certificate (PEM, chain "
                        "after the leaf)")
    parser.add_argument("--key", required=True, help="its private key (PEM, unencrypted)")
    parser.add_argument("--sign-cert", required=True, help="signing certificate (PEM)")
    parser.add_argument("--sign-key", required=True, help="signing private key (PEM, RSA)")
    parser.add_argument("--ca", help="CA certificates to verify the server with (PEM); "
                        "default system trust")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")


def _read(path: str, what: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def _tls_alert(exc: BaseException | None) -> str | None:
    """The TLS alert the server sent (e.g. ``TLSV13_ALERT_CERTIFICATE_REQUIRED``), if one is
    behind ``exc``; None for anything else (our own verification of the server included)."""
    import ssl

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLError) and "ALERT" in (exc.reason or ""):
            return exc.reason
        exc = exc.__cause__ or exc.__context__
    return None


def _untrusted_server(exc: BaseException | None) -> str | None:
    """Our own refusal of the server's certificate (``--ca`` does not verify it), if that is
    behind ``exc``: OpenSSL's reason and its verify message."""
    import ssl

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLCertVerificationError):
            return f"{exc.reason}: {exc.verify_message}"
        exc = exc.__cause__ or exc.__context__
    return None


def run(args: argparse.Namespace) -> int:
    import ssl

    import httpx
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from shared.dip.signature import sign_request

    try:
        url = httpx.URL(args.url)
    except httpx.InvalidURL as exc:
        raise UsageError(f"not a valid URL: {args.url} ({exc})") from None
    if url.scheme not in ("https", "http"):
        raise UsageError(f"not an http(s) URL: {args.url}")
    body = _read(args.file, "the delivery")
    try:
        signer = x509.load_pem_x509_certificate(_read(args.sign_cert, "--sign-cert"))
        sign_key = load_pem_private_key(_read(args.sign_key, "--sign-key"), password=None)
    except (ValueError, TypeError):
        raise UsageError("--sign-cert/--sign-key must be a PEM certificate and an "
                         "unencrypted PEM private key") from None
    if not isinstance(sign_key, rsa.RSAPrivateKey):
        raise UsageError("--sign-key must be an RSA key: the DIP signs with RSASSA-PKCS1-v1_5")
    try:
        context = ssl.create_default_context(cafile=args.ca)
        context.load_cert_chain(args.cert, args.key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the TLS client certificate or CA: {exc}") from None
    headers = {"Content-Type": "application/json",
               **sign_request("POST", args.url, body, private_key=sign_key, certificate=signer)}
    try:
        with httpx.Client(verify=context, timeout=args.timeout) as client:
            response = client.post(args.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        alert = _tls_alert(exc)
        if alert:
            # The server answered, with a TLS alert: a refusal (say, of our certificate),
            # which retrying will not change.
            print(f"dip-edge send: {args.url} refused the TLS handshake: {alert}",
                  file=sys.stderr)
            return EXIT_INVALID
        untrusted = _untrusted_server(exc)
        if untrusted:
            print(f"dip-edge send: {args.url}: its server certificate is not trusted "
                  f"({untrusted}); give the CA that issued it with --ca", file=sys.stderr)
            return EXIT_UNAVAILABLE
        print(f"dip-edge send: {args.url} unreachable: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"HTTP {response.status_code} {response.reason_phrase}")
    if response.content:
        print(response.text)
    return EXIT_OK if 200 <= response.status_code < 300 else EXIT_INVALID
