"""``dip-edge serve``: run the function app locally over HTTPS, client certificates required
(and, as on App Service, any accepted: the functions decide)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from shared.cli import EXIT_OK, EXIT_UNAVAILABLE, UsageError
from shared.logconfig import FORMATS

NAME = "serve"
HELP = ("run the function app locally over HTTPS with client certificates required, like "
        "App Service (SQLite inbox, local secret store, dev certificates)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on "
                        "(default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8443,
                        help="port (default 8443; 0 picks a free one and prints it)")
    parser.add_argument("--state-dir", help="where the inbox, local secrets and dev "
                        "certificates live (default DIP_EDGE_STATE_DIR or .dip-edge)")
    parser.add_argument("--verify-client-at-tls", action="store_true",
                        help="refuse in the TLS handshake a client certificate that does not "
                        "chain to the dev CA or DIP_CLIENT_TRUST_ANCHORS (App Service accepts "
                        "any and leaves it to the function)")
    level = parser.add_mutually_exclusive_group()
    level.add_argument("--quiet", action="store_true", help="log warnings only")
    level.add_argument("--debug", action="store_true", help="log everything (query strings "
                       "and the function key are still never logged)")
    parser.add_argument("--log-format", choices=FORMATS, default="text",
                        help="log records on stderr as readable text (default) or JSON lines "
                        "(the structured records' fields as keys; README 'Telemetry')")


def _sample_delivery(path: Path) -> None:
    """A one-message delivery to try ``send`` with (written once)."""
    from shared.private import write_private

    if path.exists():
        return
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    delivery = [{"payload": {
        "CommonBlock": {
            "S0": {"interfaceID": "IF-033", "schemaVersion": "011"},
            "D0": {"transactionID": str(uuid.uuid4()), "transactionTimestamp": now,
                   "publicationID": "PUB-033", "replayIndicator": False},
        },
        "CustomBlock": {"note": "sample delivery written by dip-edge serve"},
    }}]
    write_private(path, (json.dumps(delivery, indent=2) + "\n").encode())


def _function_key(path: Path) -> str:
    """The local host's function key, made on first run (owner-only file)."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    os.chmod(path, 0o600)  # also one written before, by hand or an older version
    return path.read_text().strip()


def _configure_environment(state_dir: Path) -> Path:
    """Point the app at the state dir. Unless anchors are configured, trust the dev CA and
    pin the dev client and signing certificates as the DIP's identities (unless identities
    are configured); a configuration of one's own without identities fails closed."""
    from cryptography import x509

    from shared.certs.identity import rule_for
    from shared.devhost.devcerts import ensure_dev_certs

    os.environ["DIP_EDGE_STATE_DIR"] = str(state_dir)
    certs = ensure_dev_certs(state_dir / "dev-certs")
    if os.environ.get("DIP_CLIENT_TRUST_ANCHORS", "").strip():
        return certs.directory
    os.environ["DIP_CLIENT_TRUST_ANCHORS"] = str(certs.ca)
    if not os.environ.get("DIP_CLIENT_INTERMEDIATES", "").strip():
        os.environ["DIP_CLIENT_INTERMEDIATES"] = str(certs.intermediate)
    for name, path in (("DIP_CLIENT_IDENTITIES", certs.client_cert),
                       ("DIP_SIGNER_IDENTITIES", certs.signer_cert)):
        if not os.environ.get(name, "").strip():
            leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
            os.environ[name] = json.dumps([rule_for(leaf)])
    return certs.directory


def run(args: argparse.Namespace) -> int:
    import function_app
    from shared.certs.trust_config import identities_missing, missing_identities
    from shared.devhost import logredact
    from shared.devhost.devcerts import DevCertPaths
    from shared.devhost.functions import FunctionTable
    from shared.devhost.invoke import start_worker
    from shared.devhost.server import DevHost, Limits, server_tls_context
    from shared.devhost.workers import background_workers
    from shared.private import private_dir
    from shared.problems import MESSAGE_TOO_LARGE, REQUEST_TOO_LARGE
    from shared.settings import get_settings, read_text_setting
    from shared.telemetry import configure_sdk_logging

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    from shared.logconfig import configure

    level = logging.WARNING if args.quiet else logging.DEBUG if args.debug else logging.INFO
    configure(args.log_format, level=level)
    # The worker's own records (its indexing summary, a line per invocation) are debugging.
    logging.getLogger("azure.functions").setLevel(logging.DEBUG if args.debug else logging.WARNING)
    state_dir = Path(args.state_dir or os.environ.get("DIP_EDGE_STATE_DIR") or ".dip-edge")
    try:
        state_dir = private_dir(state_dir.resolve())
        function_key = _function_key(state_dir / "function-key")
        logredact.install([function_key])
        certs = DevCertPaths.in_dir(_configure_environment(state_dir))
        _sample_delivery(state_dir / "sample-delivery.json")
    except OSError as exc:
        raise UsageError(f"cannot use the state directory: {exc.strerror}") from None
    _raise_open_file_limit()
    get_settings.cache_clear()
    settings = get_settings()
    configure_sdk_logging(settings.azure_sdk_log_level)
    for error in settings.errors:
        print(f"warning: setting {error}", file=sys.stderr)
    missing = missing_identities(settings)
    if missing:  # said now, not first at the DIP's first delivery
        print("warning: the webhook refuses every delivery (503 config.invalid): "
              f"{identities_missing(missing).finding.detail}", file=sys.stderr)

    client_cas = None
    if args.verify_client_at_tls:
        client_cas = [certs.ca.read_text()]
        for value in (settings.dip_client_trust_anchors, settings.dip_client_intermediates):
            if value:
                client_cas.append(read_text_setting(value))
    tls = server_tls_context(str(certs.server_cert), str(certs.server_key), client_cas)
    functions = FunctionTable.load(function_app.app, Path(function_app.__file__).with_name(
        "host.json"))
    limits = Limits(head_timeout=settings.serve_head_timeout_seconds,
                    body_timeout=settings.serve_body_timeout_seconds,
                    idle_timeout=settings.serve_idle_timeout_seconds,
                    max_connections=settings.serve_max_connections)
    # Refused from Content-Length before the body is read, with the function's own code.
    credentials = (settings.credentials_max_body_bytes, REQUEST_TOO_LARGE)
    body_limits = {"dip_webhook": (settings.webhook_max_body_bytes, MESSAGE_TOO_LARGE),
                   "credentials": credentials, "credentials_validate": credentials}
    default = (max(settings.webhook_max_body_bytes, settings.credentials_max_body_bytes),
               REQUEST_TOO_LARGE)
    worker = start_worker(Path(function_app.__file__).parent)
    try:
        host = DevHost(functions, tls, args.host, args.port,
                       workers=background_workers(settings, functions, worker),
                       function_key=function_key, limits=limits, body_limits=body_limits,
                       default_body_limit=default)
    except OSError as exc:
        print(f"dip-edge serve: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return EXIT_UNAVAILABLE

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    host.start()
    _print_banner(host, functions, certs, state_dir, worker,
                  verify_at_tls=args.verify_client_at_tls)
    stop.wait()
    print("dip-edge serve: stopping", file=sys.stderr, flush=True)
    host.stop()
    return EXIT_OK


def _raise_open_file_limit() -> None:
    """Up to the hard limit: each connection is a descriptor, and 1,024 is a common soft one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass


def _print_banner(host, functions, certs, state_dir: Path, worker, *,
                  verify_at_tls: bool) -> None:
    url = host.base_url
    # The dip-edge being run (`make run`'s is not on PATH), so the commands paste as they are.
    beside = Path(sys.executable).with_name("dip-edge")
    command = str(beside) if beside.exists() else "dip-edge"
    tls = f"--cacert {certs.ca} --cert {certs.client_cert} --key {certs.client_key}"
    checked = ("verified in the handshake" if verify_at_tls
               else "any accepted, the functions decide")
    lines = [f"dip-edge serve: listening on {url} (TLS 1.2+, client certificate required, "
             f"{checked}; up to {host.max_connections} connections)",
             f"  state: {state_dir} (SQLite inbox, local secrets); dev certificates: "
             f"{certs.directory}",
             "  HTTP functions run in: " + ("Microsoft's Python worker (azure-functions-runtime "
                                            f"{worker.version})" if worker else
                                            "the local adapter (the worker is not installed)"),
             "  functions:"]
    for route in functions.routes:
        lines.append(f"    {' '.join(sorted(route.methods)):9} {url}{route.path}  "
                     f"[{route.name}]")
    lines += [
        "  try:",
        f"    curl {tls} {url}/api/health",
        f"    curl {tls} -H \"x-functions-key: $(cat {state_dir / 'function-key'})\" "
        f"{url}/api/credentials",
        f"    {command} send {url}/api/webhooks/dip {state_dir / 'sample-delivery.json'} \\",
        f"      --ca {certs.ca} --cert {certs.client_cert} --key {certs.client_key} \\",
        f"      --sign-cert {certs.signer_cert} --sign-key {certs.signer_key}",
        f"    {command} inbox --state-dir {state_dir} list",
        f"  the Certificate Admin's page: {url}/api/portal (the browser needs the client "
        f"certificate {certs.client_cert} with {certs.client_key}; the page asks once for "
        f"the function key, in {state_dir / 'function-key'})",
        "  Ctrl-C stops.",
    ]
    print("\n".join(lines), flush=True)
