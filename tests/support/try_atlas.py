"""Run the fake GlobalSign Atlas by hand, to try the credential API, the portal page and
``check-pfx`` online on one machine::

    .venv/bin/python -m tests.support.try_atlas DIR

It starts the fake (real mutual TLS, on a free loopback port) with one account, and writes
to DIR (owner-only): ``atlas-access.pfx`` (that account's access certificate and key) and
``api-key``, ``api-secret``, ``pfx-password`` (the secrets, as files: never printed), and
``atlas.env`` (the settings that point dip-edge at the fake and trust its PKI, to ``source``
before ``dip-edge serve`` or ``check-pfx``). It serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import threading
from pathlib import Path

from shared.private import private_dir, private_file
from tests.support.fake_atlas import FakeAtlas
from tests.support.pfx_factory import to_pfx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.try_atlas",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", metavar="DIR", help="where to write the files (created)")
    directory = private_dir(Path(parser.parse_args(argv).directory).resolve())
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with FakeAtlas() as atlas:
        api_key, api_secret = secrets.token_hex(8), secrets.token_hex(20)
        password = secrets.token_urlsafe(12)
        certificate = atlas.new_client_certificate("acme-atlas-access")
        atlas.add_account(api_key, api_secret, certificate)
        files = {"atlas-access.pfx": to_pfx(certificate, password.encode()).data,
                 "api-key": api_key.encode(), "api-secret": api_secret.encode(),
                 "pfx-password": password.encode(),
                 "atlas.env": "".join(f"export {name}={value}\n"
                                      for name, value in atlas.env().items()).encode()}
        for name, data in files.items():
            private_file(directory / name).write_bytes(data)
        print(f"fake GlobalSign Atlas on {atlas.base_url} (mutual TLS), one account:\n"
              f"  settings:    . {directory / 'atlas.env'}\n"
              f"  PFX:         {directory / 'atlas-access.pfx'}\n"
              f"  secrets in:  {directory}/api-key, api-secret, pfx-password\n"
              "Ctrl-C stops it.", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
