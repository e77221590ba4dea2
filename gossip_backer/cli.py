"""The `backer` command: argparse -> runtime calls; human output, or one JSON document with --json.

Exit codes: 0 success, 1 a user error (one line on stderr, never a traceback), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from gossip_backer.errors import BackerError, UserError

Handler = Callable[[argparse.Namespace], object]


class JournalFormatter(logging.Formatter):
    """One line per record, as journald reads a service's stderr: a `<N>` syslog priority
    prefix (so `journalctl -p warning` works), no timestamp (journald adds its own), and a
    traceback folded onto the same line, so one event is one journal entry."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += " | " + self.formatException(record.exc_info).replace("\n", " | ")
        priority = self.PRIORITY.get(record.levelno, 6)
        return f"<{priority}>" + text.replace("\n", " | ")


def stderr_is_journal() -> bool:
    """systemd sets JOURNAL_STREAM=DEV:INODE when stderr goes to the journal."""
    import os

    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return dev.isdigit() and ino.isdigit() and (st.st_dev, st.st_ino) == (int(dev), int(ino))


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backer",
        description="Mirror a folder between all your machines over an encrypted gossip mesh.",
    )
    parser.add_argument("--log-level", default="warning",
                        choices=["debug", "info", "warning", "error"], help="stderr log level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("init", help="make ROOT a node of a new mesh")
    p.add_argument("root")
    p.add_argument("--name")
    _add_json(p)

    p = sub.add_parser("invite", help="a one-time invite for a new node")
    p.add_argument("root")
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--address", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--expires", type=float, default=7 * 24 * 3600, metavar="SECONDS")
    _add_json(p)

    p = sub.add_parser("join", help="make ROOT a node of the mesh of INVITE")
    p.add_argument("root")
    p.add_argument("invite")
    p.add_argument("--name")
    _add_json(p)

    p = sub.add_parser("run", help="run the node in the foreground")
    p.add_argument("root")
    p.add_argument("--listen", default="0.0.0.0:7440", metavar="HOST:PORT")
    web = p.add_mutually_exclusive_group()
    web.add_argument("--web", default="127.0.0.1:8484", metavar="HOST:PORT")
    web.add_argument("--no-web", action="store_true")
    p.add_argument("--public", metavar="HOST:PORT", help="serve share links (and nothing else) here")
    p.add_argument("--log-level", dest="run_log_level", default=None,
                   choices=["debug", "info", "warning", "error"])

    p = sub.add_parser("status", help="state of the node (live when it runs)")
    p.add_argument("root")
    p.add_argument("--watch", action="store_true", help="show live progress")
    _add_json(p)

    p = sub.add_parser("peers", help="the other members of the mesh")
    p.add_argument("root")
    _add_json(p)

    p = sub.add_parser("remove-peer", help="revoke a member mesh-wide")
    p.add_argument("root")
    p.add_argument("node_id")
    _add_json(p)

    p = sub.add_parser("history", help="versions of PATH known in the mesh")
    p.add_argument("root")
    p.add_argument("path")
    _add_json(p)

    p = sub.add_parser("restore", help="bring back a version of PATH")
    p.add_argument("root")
    p.add_argument("path")
    p.add_argument("--version")
    _add_json(p)

    p = sub.add_parser("share", help="public read-only links")
    p.add_argument("root")
    p.add_argument("path", nargs="?")
    p.add_argument("--expires", type=float, metavar="SECONDS")
    p.add_argument("--password", metavar="PW")
    p.add_argument("--list", action="store_true")
    p.add_argument("--revoke", metavar="TOKEN")
    _add_json(p)

    p = sub.add_parser("live", help="mark text files matching GLOB as live-edit")
    p.add_argument("root")
    p.add_argument("glob")
    p.add_argument("--off", action="store_true")
    _add_json(p)

    p = sub.add_parser("events", help="stream the running node's events")
    p.add_argument("root")
    _add_json(p)

    p = sub.add_parser("demo", help="a local mesh of N nodes with web GUIs")
    p.add_argument("--nodes", type=int, default=3)
    return parser


def _print(args: argparse.Namespace, result: object) -> None:
    if result is None:
        return
    if getattr(args, "json", False):
        print(json.dumps(result, sort_keys=False))
        return
    from gossip_backer.runtime.human import render

    print(render(args.command, result))


def _run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from gossip_backer.daemon import run_daemon

    run_daemon(Path(args.root), args.listen, None if args.no_web else args.web, args.public)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = getattr(args, "run_log_level", None) or args.log_level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter() if stderr_is_journal() else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    from gossip_backer.runtime import commands

    if args.command == "run":
        handler: Handler = _run
    else:
        handler = getattr(commands, "cmd_" + args.command.replace("-", "_"))
    try:
        _print(args, handler(args))
    except UserError as exc:
        print(f"backer {args.command}: {exc}", file=sys.stderr)
        return 1
    except BackerError as exc:
        print(f"backer {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return 0
