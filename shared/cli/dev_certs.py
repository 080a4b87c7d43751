"""``dip-edge dev-certs DIR``: a local CA with server, client and signer certificates."""

from __future__ import annotations

import argparse
from pathlib import Path

from shared.cli import EXIT_OK, UsageError

NAME = "dev-certs"
HELP = ("write a local CA, a server certificate, a client certificate and a signing "
        "certificate (PEM) for trying mutual TLS and DIP signatures")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", help="where to write them (created)")
    parser.add_argument("--force", action="store_true", help="replace an existing set")


def run(args: argparse.Namespace) -> int:
    from shared.devhost.devcerts import DevCertPaths, write_dev_certs

    directory = Path(args.directory)
    try:
        if DevCertPaths.in_dir(directory).ca.exists() and not args.force:
            raise UsageError(f"{directory} already holds dev certificates "
                             "(--force replaces them)")
        paths = write_dev_certs(directory)
    except OSError as exc:
        raise UsageError(f"cannot write to the directory: {exc.strerror}") from None
    rows = [("CA (trust anchor)", paths.ca), ("issuing CA", paths.intermediate),
            ("server certificate", paths.server_cert), ("server key", paths.server_key),
            ("client certificate", paths.client_cert), ("client key", paths.client_key),
            ("signing certificate", paths.signer_cert), ("signing key", paths.signer_key)]
    for label, path in rows:
        print(f"{label:20} {path}")
    return EXIT_OK
