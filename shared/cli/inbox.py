"""``dip-edge inbox list|show``: read the inbox the webhook writes (SQLite or Blob storage)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from shared.cli import EXIT_INVALID, EXIT_OK, EXIT_UNAVAILABLE

NAME = "inbox"
HELP = "list the stored DIP messages, or show one by transaction ID"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", help="the SQLite inbox's state dir (default "
                        "DIP_EDGE_STATE_DIR or .dip-edge)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="one line (or JSON object) per transaction ID, "
                             "with its count of conflicting copies")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.add_argument("--limit", type=int, help="at most this many (oldest first)")
    show = sub.add_parser("show", help="one message's metadata and body, and every "
                          "differing copy delivered under its transaction ID")
    show.add_argument("transaction_id", metavar="ID", help="the message's transaction ID")


def run(args: argparse.Namespace) -> int:
    from shared.dip.inbox import open_inbox
    from shared.problems import DipEdgeError
    from shared.settings import get_settings

    if args.state_dir:
        os.environ["DIP_EDGE_STATE_DIR"] = args.state_dir
        get_settings.cache_clear()
    try:
        settings = get_settings()
        missing = _missing_sqlite_inbox(settings)
        if missing is not None:
            # Reading never creates an inbox: in another directory than serve's, an empty
            # new one would pass for "nothing was delivered".
            print(f"dip-edge inbox: no inbox at {missing}: nothing was stored there (serve "
                  "keeps it in its state directory: --state-dir, DIP_EDGE_STATE_DIR)",
                  file=sys.stderr)
            if args.action == "list":
                print("[]" if args.json else "(the inbox is empty)")
                return EXIT_OK
            return EXIT_INVALID
        inbox = open_inbox(settings)
        try:
            if args.action == "list":
                return _list(inbox, args)
            return _show(inbox, args.transaction_id)
        finally:
            inbox.close()
    except DipEdgeError as err:
        print(f"dip-edge inbox: {err.code}: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE if err.finding.type.retryable else EXIT_INVALID


def _missing_sqlite_inbox(settings):
    """The SQLite inbox's path when that is the backend and the file does not exist."""
    from shared.dip.inbox import INBOX_SETTINGS

    settings.require(*INBOX_SETTINGS)
    path = (settings.state_dir / "inbox.sqlite3").absolute()
    return path if settings.inbox_backend != "blob" and not path.exists() else None


def _list(inbox, args) -> int:
    messages = inbox.list(args.limit)
    if args.json:
        print(json.dumps([m.to_dict() for m in messages], indent=2))
        return EXIT_OK
    for m in messages:
        flags = " replay" if m.replay_indicator else ""
        if m.conflicts:
            flags += f" conflicts={m.conflicts}"
        print(f"{m.received_at}  {m.interface_id:8}  {m.channel or '-':12}  "
              f"{m.transaction_id}{flags}")
    if not messages:
        print("(the inbox is empty)")
    return EXIT_OK


def _show(inbox, transaction_id: str) -> int:
    message = inbox.get(transaction_id)
    if message is None:
        print(f"dip-edge inbox: no message with transaction ID {transaction_id!r}",
              file=sys.stderr)
        return EXIT_INVALID
    document = _shown(message)
    document["copies"] = [_shown(copy, copy=True) for copy in message.copies]
    try:
        print(json.dumps(document, indent=2, ensure_ascii=False))
    except UnicodeEncodeError:  # a "\udc00" the payload may hold, or a narrow terminal
        print(json.dumps(document, indent=2))
    return EXIT_OK


def _shown(message, *, copy: bool = False) -> dict:
    document = message.to_dict()
    if copy:
        document.pop("conflicts")  # the original says how many
    document["message"] = json.loads(message.body) if message.body else None
    return document
