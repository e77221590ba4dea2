"""The JSON objects of SPEC.md built from a node's state (shared by CLI, control socket, web)."""

from __future__ import annotations

from gossip_backer.core.ids import NodeId
from gossip_backer.core.invite import Invite
from gossip_backer.core.membership import Member
from gossip_backer.core.record import FILE
from gossip_backer.runtime.problems import describe
from gossip_backer.runtime.state import NodeState
from gossip_backer.wire.codec import pack


def peer_view(state: NodeState, member: Member, live: dict | None) -> dict:
    """One peer object: live connection facts from `live` (None on a stopped node)."""
    live = live or {}
    address = live.get("address") or (member.addresses[0] if member.addresses else None)
    return {
        "node_id": str(NodeId(member.node)),
        "name": member.name,
        "read_only": member.read_only,
        "connected": bool(live.get("connected", False)),
        "address": address,
        "last_seen": live.get("last_seen"),
    }


def invite_view(invite: Invite) -> dict:
    """`backer invite --json`: the invite's line, its role and when it expires."""
    return {"invite": invite.to_text(pack), "read_only": invite.read_only,
            "expires": invite.expires}


def totals(state: NodeState) -> tuple[int, int]:
    files = size = 0
    for path in state.metamap.files:
        rec = state.metamap.winner(path)
        if rec is not None and rec.kind == FILE and not rec.deleted:
            files += 1
            size += rec.size
    return files, size


def stored_status(state: NodeState, error: str | None, *, count_files: bool = True) -> dict:
    """The status a stopped node's store gives (the running node adds what it knows): `error`,
    why the inviter refused this node (the running node holds it; a stopped one reads it).
    `count_files=False` leaves `files` and `bytes` at 0 for a caller that counts them its own
    way (a running folder's index): counting walks every path of the map."""
    files, size = totals(state) if count_files else (0, 0)
    members = state.metamap.membership.members
    me = members.get(state.identity.public)
    problems = describe(invite_error=error, pending_invite=state.pending_invite() is not None,
                        member=me is not None, removed=me is not None and me.revoked)
    return {
        "node_id": str(state.node_id),
        "name": state.name,
        "mesh_id": state.mesh_id,
        "running": False,
        "listen": None,
        "web": None,
        "files": files,
        "bytes": size,
        "in_sync": me is not None and not me.revoked,
        "pending_files": 0,
        "pending_bytes": 0,
        "conflicts": [],
        "unavailable": [],
        "net": {"bytes_in": 0, "bytes_out": 0},
        "peers": [peer_view(state, m, None) for m in members.values()
                  if m.node != state.identity.public and not m.revoked],
        **({"error": error} if error else {}),
        **problems,
    }
