"""What each `backer` command does: against the running node's control socket when it runs,
else against the stored state. Returns the JSON value of SPEC.md; cli.py prints it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gossip_backer.core.ids import NodeId
from gossip_backer.core.invite import Invite
from gossip_backer.core.paths import printable
from gossip_backer.errors import UserError
from gossip_backer.runtime import control
from gossip_backer.runtime.state import NodeState, state_dir
from gossip_backer.runtime.views import invite_view, peer_view, stored_status
from gossip_backer.wire.codec import unpack


ADMISSION_WAIT = 30.0


def _control_path(root: str) -> Path:
    return state_dir(Path(root).expanduser().absolute()) / "control.sock"


def _open(root: str) -> NodeState:
    return NodeState.open(Path(root))


def cmd_init(args: argparse.Namespace) -> dict:
    state = NodeState.init(Path(args.root), args.name)
    try:
        return {"node_id": str(state.node_id), "mesh_id": state.mesh_id, "root": str(state.root)}
    finally:
        state.close()


def cmd_join(args: argparse.Namespace) -> dict:
    invite = Invite.from_text(args.invite, unpack)
    state = NodeState.join(Path(args.root), invite, args.name)
    try:
        return {"node_id": str(state.node_id), "mesh_id": state.mesh_id, "root": str(state.root)}
    finally:
        state.close()


def _checked_addresses(addresses: list[str] | None) -> list[str]:
    """`--address` values, each HOST:PORT with a real port (none: the running node's own)."""
    from gossip_backer.runtime.dial import split_address

    for address in addresses or []:
        try:
            host, _port = split_address(address)
        except ValueError:
            host = ""
        if not host or any(c.isspace() for c in address) or address.endswith(":0"):
            raise UserError(f"--address {address!r} is not HOST:PORT (e.g. 192.0.2.7:7440)")
    return list(addresses or [])


def cmd_invite(args: argparse.Namespace) -> dict:
    """Made by the running node when one runs (it holds its invites in memory: the joining node
    is let in at once), else stored here for the node to find when it starts."""
    if args.expires <= 0:
        raise UserError("--expires must be a positive number of seconds")
    addresses = _checked_addresses(args.address)
    _wait_for_admission(args.root)
    req = {"cmd": "invite", "read_only": args.read_only, "expires": args.expires,
           "addresses": addresses}
    live = control.request(_control_path(args.root), req)
    if live is not None:
        return live
    state = _open(args.root)
    try:
        return invite_view(state.create_invite(addresses, args.read_only, args.expires))
    finally:
        state.close()


def _wait_for_admission(root: str, timeout: float = ADMISSION_WAIT) -> None:
    """A node that joined a moment ago (README: `join`, `run`, then `invite`) is not a member
    until its inviter admits it: while it runs and waits for that, wait too (saying so)."""
    import time

    state = _open(root)
    try:
        if state.is_member() or state.pending_invite() is None:
            return  # a member, or never going to be one (create_invite says why)
    finally:
        state.close()
    deadline = time.monotonic() + timeout
    said = False
    while time.monotonic() < deadline:
        status = control.request(_control_path(root), {"cmd": "status"})
        if status is None:
            return  # not running: create_invite says what to do
        if not any(p["kind"] == "invite" for p in status.get("problems", [])) or status.get("error"):
            return
        if not said:
            print(f"waiting for this node to be admitted by its inviter (up to {timeout:.0f} s)...",
                  file=sys.stderr, flush=True)
            said = True
        time.sleep(0.3)


def cmd_status(args: argparse.Namespace) -> dict:
    if args.watch and not args.json:
        from gossip_backer.runtime.human import watch_status

        watch_status(_control_path(args.root))
        return None
    live = control.request(_control_path(args.root), {"cmd": "status"})
    if live is not None:
        live.pop("advertise", None)
        return live
    state = _open(args.root)
    try:
        return stored_status(state, state.repo.get_config("invite_error"))
    finally:
        state.close()


def cmd_peers(args: argparse.Namespace) -> list:
    live = control.request(_control_path(args.root), {"cmd": "peers"})
    if live is not None:
        return live
    state = _open(args.root)
    try:
        return [peer_view(state, m, None) for m in state.metamap.membership.members.values()
                if m.node != state.identity.public and not m.revoked]
    finally:
        state.close()


def cmd_remove_peer(args: argparse.Namespace) -> dict:
    node = NodeId.parse(args.node_id)
    live = control.request(_control_path(args.root), {"cmd": "remove-peer", "node_id": str(node)})
    if live is not None:
        return live
    state = _open(args.root)
    try:
        state.revoke(node.key)
        return {"removed": str(node)}
    finally:
        state.close()


def cmd_events(args: argparse.Namespace) -> None:
    _open(args.root).close()  # a clear error for a root that is no node
    lines = control.stream(_control_path(args.root), {"cmd": "events"})
    if lines is None:
        raise UserError(f"no node is running at {args.root} (start it with `backer run`)")
    import json

    for event in lines:
        event = printable(event)
        if args.json:
            print(json.dumps(event), flush=True)
        else:
            fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("type", "time"))
            print(f"{event['type']} {fields}", flush=True)
    return None


def cmd_demo(args: argparse.Namespace) -> None:
    from gossip_backer.runtime.demo import run_demo

    if args.nodes < 1 or args.nodes > 50:
        raise UserError("--nodes must be between 1 and 50")
    return run_demo(args.nodes)


def _not_yet(name: str):
    def handler(args: argparse.Namespace) -> None:
        _open(args.root).close()
        raise UserError(f"`backer {name}` is not built yet in this version of gossip-backer")

    return handler


def cmd_history(args: argparse.Namespace) -> list:
    from gossip_backer.runtime.history import mesh_path, offline_history

    state = _open(args.root)
    try:
        path = mesh_path(state.root, args.path)
        live = control.request(_control_path(args.root), {"cmd": "history", "path": path})
        return live if live is not None else offline_history(state, path)
    finally:
        state.close()


def cmd_restore(args: argparse.Namespace) -> dict:
    from gossip_backer.runtime.history import mesh_path, offline_restore

    state = _open(args.root)
    try:
        path = mesh_path(state.root, args.path)
        req = {"cmd": "restore", "path": path, "version": args.version}
        live = control.request(_control_path(args.root), req, timeout=600)
        return live if live is not None else offline_restore(state, path, args.version)
    finally:
        state.close()


def cmd_share(args: argparse.Namespace) -> object:
    """`backer share`: through the running node (its link base), else on the stored state
    (the link spreads, and is served, once the node runs)."""
    from gossip_backer.runtime import shares

    modes = sum([args.list, args.revoke is not None, args.path is not None])
    if modes != 1:
        raise UserError("give exactly one of PATH, --list or --revoke TOKEN")
    if args.path is not None:
        req = {"cmd": "share", "path": shares.cli_path(Path(args.root).expanduser().absolute(), args.path), "expires": args.expires, "password": args.password}
    elif args.list:
        req = {"cmd": "shares"}
    else:
        req = {"cmd": "revoke-share", "token": args.revoke}
    live = control.request(_control_path(args.root), req, timeout=60)
    if live is not None:
        return live
    state = _open(args.root)
    try:
        if args.list:
            return shares.listed(state.metamap, None)
        if args.revoke is not None:
            state.make(shares.revocation(state, args.revoke))
            return {"revoked": args.revoke}
        share = shares.new_share(state, shares.cli_path(state.root, args.path), args.expires,
                                 args.password, offline=True)
        state.make(share)
        return shares.spec_view(state.metamap, share, None)
    finally:
        state.close()


def cmd_live(args: argparse.Namespace) -> dict:
    """`backer live ROOT GLOB [--off]`: through the running node, else in the store (spread
    when the node next runs)."""
    state = _open(args.root)
    try:
        req = {"cmd": "live", "glob": args.glob, "on": not args.off}
        live = control.request(_control_path(args.root), req)
        if live is not None:
            return live
        state.set_live(args.glob, not args.off)
        return {"live": state.metamap.live_globs()}
    finally:
        state.close()
