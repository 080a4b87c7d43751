"""The ``dip-edge`` command.

Each subcommand is a module of this package that defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; the modules are found at start, so
adding a command means adding a module. Modules import heavy libraries inside ``run``.
Exit codes: 0 success, 1 a negative verdict, 2 usage error, 3 a dependency unreachable,
141 the output's reader went away (a closed pipe).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a command killed by SIGPIPE


class UsageError(Exception):
    """A mistake in how the command was called; printed, exit code 2."""


# A certificate file the commands read is at most this large (real ones are a few KB).
MAX_CERT_FILE_BYTES = 1024 * 1024


def existing_file(value: str) -> str:
    """``value``, when it names a regular file; a UsageError saying what it is otherwise.

    ``os.path`` answers False for a path it cannot stat (a name too long among them), where
    ``Path.is_file`` raises OSError."""
    if not os.path.isfile(value):
        raise UsageError(f"not a regular file: {value}" if os.path.lexists(value)
                         else f"no such file: {value}")
    return value


def read_certificate_file(value: str) -> bytes:
    """The bytes of the certificate file ``value`` (a UsageError when it is missing,
    unreadable or larger than :data:`MAX_CERT_FILE_BYTES`)."""
    try:
        with open(existing_file(value), "rb") as file:
            data = file.read(MAX_CERT_FILE_BYTES + 1)  # one byte more tells "too large"
    except OSError as exc:
        raise UsageError(f"cannot read {value}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_CERT_FILE_BYTES:
        raise UsageError(f"{value}: larger than {MAX_CERT_FILE_BYTES} bytes; not a certificate")
    return data


def _commands():
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "NAME"):
            yield module


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # A mistyped option may be followed by a secret (--passwd S3CRET): don't repeat it.
        if message.startswith("unrecognized arguments:"):
            message = "unrecognized arguments (not repeated here: one may be a secret)"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dip-edge",
        description="GlobalSign Atlas credential checks and the Elexon DIP webhook.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _commands():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Output to a pipe its reader closed (``dip-edge ... | head``) ends
    quietly with 141, as a command killed by SIGPIPE does, instead of a traceback."""
    try:
        try:
            code = _run(argv)
        finally:
            sys.stdout.flush()  # inside: buffered output meets a closed pipe here, not at exit
    except BrokenPipeError:
        _discard_output()
        return EXIT_BROKEN_PIPE
    return code


def _run(argv: Sequence[str] | None) -> int:
    # Commands report in their own output; the service's log records (such as "no identity
    # rules are configured") reach stderr only where a command sets up logging (serve).
    logging.getLogger("dip_edge").addHandler(logging.NullHandler())
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error, as argparse does
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"dip-edge {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _discard_output() -> None:
    """Point stdout and stderr at /dev/null, so the interpreter's final flush of what is
    still buffered cannot fail again ("Exception ignored ... BrokenPipeError")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):  # not a real file (captured in tests)
            pass
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
