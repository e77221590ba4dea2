"""TCP: listen for peers, dial every known member, reconnect with jittered exponential backoff,
and claim a pending invite.

Both ends of a pair may dial at once; the node keeps the connection dialed by the greater key
(runtime/peerlinks.py `_attach`), and the lesser key waits a little before dialing so that
usually only one connection is made (`session.first_dial_delay`).
"""

from __future__ import annotations

import logging
import random
import socket
import time

import trio

from gossip_backer.core.ids import NodeId
from gossip_backer.crypto.identity import Identity
from gossip_backer.protocol import session
from gossip_backer.protocol.peer import Authenticated, Received
from gossip_backer.wire.codec import unpack
from gossip_backer.wire.messages import InviteClaim, InviteResult

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 5.0
LAST_PORT = "listen_port"  # config: the port `--listen HOST:0` got, asked for again at restart


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"not HOST:PORT: {address!r}")
    return host.strip("[]"), int(port)


def advertised(host: str, port: int) -> list[str]:
    """Addresses to tell others: the listen address, or this machine's addresses for 0.0.0.0."""
    if host not in ("0.0.0.0", "::", ""):
        return [f"{host}:{port}"]
    found: list[str] = []
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            ip = info[4][0]
            if not ip.startswith("127.") and f"{ip}:{port}" not in found:
                found.append(f"{ip}:{port}")
    except OSError:
        pass
    return found + [f"127.0.0.1:{port}"]


async def listen(node, address: str, task_status=trio.TASK_STATUS_IGNORED) -> None:
    host, port = split_address(address)
    listeners = await _open_listeners(node.state, host, port)
    real_port = listeners[0].socket.getsockname()[1]
    node.listen = f"{host}:{real_port}"
    node.advertise = advertised(host, real_port)
    task_status.started(node.listen)

    async def handle(stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()
            where = f"{peer[0]}:{peer[1]}"
        except OSError:
            where = None
        await node.serve_stream(stream, initiator=False, address=where)

    await trio.serve_listeners(handle, listeners)


async def _open_listeners(state, host: str, port: int) -> list[trio.SocketListener]:
    """Port 0 asks for any free port: we ask first for the one this node got last time. Peers
    know a node's address only from the node itself; two nodes both restarted on new ports while
    the other was stopped would each dial the other's old port for ever. Taken meanwhile: a new
    free port, announced as usual to the peers it reaches."""
    if port != 0:
        return await trio.open_tcp_listeners(port, host=host)
    last = await state.store_call(state.repo.get_config, LAST_PORT)
    if isinstance(last, int) and 0 < last < 65536:
        try:
            return await trio.open_tcp_listeners(last, host=host)
        except OSError as exc:
            log.info("port %d of the last run is taken (%s): listening on a new one", last, exc)
    listeners = await trio.open_tcp_listeners(0, host=host)
    state.store_later(state.repo.set_config, LAST_PORT, listeners[0].socket.getsockname()[1])
    return listeners


class Dialer:
    """Keeps a connection to every member it can reach."""

    def __init__(self, node, rng: random.Random | None = None) -> None:
        self.node = node  # its serve_stream runs each session we open
        self.state = node.state
        self.links = node.links
        self.bootstrap = node.bootstrap  # the inviter's addresses, from our invite
        self.join = node.join  # how joining went, shown in status (runtime/report.py)
        self.rng = rng or random.Random()
        self.next_try: dict[bytes, float] = {}
        self.delay: dict[bytes, float] = {}
        self.busy: set[bytes] = set()

    def targets(self) -> dict[bytes, list[str]]:
        """Members to reach and their addresses (from gossip, else from the invite)."""
        state = self.state
        out: dict[bytes, list[str]] = {}
        for peer, addresses in self.bootstrap.items():
            out[peer] = list(addresses)
        for m in state.metamap.membership.members.values():
            if m.node == state.identity.public or m.revoked:
                out.pop(m.node, None)
                continue
            if m.addresses:
                out[m.node] = list(m.addresses) + [a for a in out.get(m.node, []) if a not in m.addresses]
        out.pop(state.identity.public, None)
        return out

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                if self.state.pending_invite() is not None and "invite" not in self.busy:
                    self.busy.add("invite")
                    nursery.start_soon(self._claim_invite)
                now = time.monotonic()
                for peer, addresses in self.targets().items():
                    if peer in self.links or peer in self.busy or not addresses:
                        continue
                    if peer not in self.next_try:
                        self.next_try[peer] = now + session.first_dial_delay(
                            self.state.identity.public, peer)
                    if now >= self.next_try[peer]:
                        self.busy.add(peer)
                        nursery.start_soon(self._dial, peer, addresses)
                await trio.sleep(0.25)

    async def _connect(self, addresses: list[str]) -> tuple[trio.SocketStream, str] | None:
        for address in addresses:
            try:
                host, port = split_address(address)
                with trio.fail_after(CONNECT_TIMEOUT):
                    return await trio.open_tcp_stream(host, port), address
            except (OSError, ValueError, trio.TooSlowError):
                continue
        return None

    async def _dial(self, peer: bytes, addresses: list[str]) -> None:
        try:
            got = await self._connect(addresses)
            attached = False
            if got is not None:
                stream, address = got
                before = self.links.get(peer)
                reason = await self.node.serve_stream(stream, initiator=True, address=address)
                attached = self.links.get(peer) is not before or reason == "peer said goodbye"
                log.info("link to %s via %s ended: %s", NodeId(peer).short(), address, reason)
            self._backoff(peer, success=attached)
        finally:
            self.busy.discard(peer)

    def _backoff(self, peer: bytes, success: bool) -> None:
        delay = session.RETRY_FIRST if success else session.next_retry(self.delay.get(peer))
        self.delay[peer] = delay
        self.next_try[peer] = time.monotonic() + session.jittered(delay, self.rng.uniform)

    async def _claim_invite(self) -> None:
        """Connect with the invite's one-time key and ask the inviter for our grant."""
        state = self.state
        try:
            while (invite := state.pending_invite()) is not None:
                if session.claim_settled(state.metamap.membership.members, state.identity.public):
                    await state.forget_invite()  # our grant came by gossip: nothing to claim
                    self.join.wait = None
                    break
                got = await self._connect(list(invite.addresses))
                if got is None:
                    self.join.wait = "cannot reach " + ", ".join(invite.addresses)
                    await trio.sleep(self._retry_invite())
                    continue
                stream, address = got
                self.join.wait = f"{address} does not answer (a wrong mesh secret gets no answer)"
                done = await self._run_claim(stream, address, invite)
                if not done:
                    await trio.sleep(self._retry_invite())
        finally:
            self.busy.discard("invite")

    def _retry_invite(self) -> float:
        delay = session.next_retry(self.delay.get(b"invite"))
        self.delay[b"invite"] = delay
        return session.jittered(delay, self.rng.uniform)

    async def _run_claim(self, stream, address: str, invite) -> bool:
        state = self.state
        key = Identity.from_seed(invite.invite_seed)
        outcome: list[InviteResult] = []

        async def unanswered(link) -> None:
            await trio.sleep(session.CLAIM_TIMEOUT)
            link.abort(f"no answer to the invite claim in {session.CLAIM_TIMEOUT:.0f} s")

        async def on_event(link, event) -> None:
            if isinstance(event, Authenticated):
                proof = state.identity.sign(session.claim_bytes(state.mesh_id, key.public, state.identity.public))
                link.send(InviteClaim(state.identity.public, state.name, proof))
                await link.spawn(unanswered, link)  # cancelled when the link ends
            elif isinstance(event, Received) and isinstance(event.message, InviteResult):
                outcome.append(event.message)
                link.abort("invite answered")

        why = await self.node.serve_stream(stream, initiator=True, address=address, identity=key,
                                           on_message=on_event)
        if not outcome:
            self.join.wait = f"{address}: {why or 'no answer'}"
            return False
        result = outcome[0]
        await state.forget_invite()
        if not result.accepted and not session.claim_settled(state.metamap.membership.members,
                                                             state.identity.public):
            self.join.error = f"the invite was refused: {result.reason}"
            state.store_later(state.repo.set_config, "invite_error", self.join.error)  # kept
            log.error("%s", self.join.error)
        return True


def load_bootstrap(state) -> dict[bytes, list[str]]:
    raw = state.repo.get_config("bootstrap")
    if not raw:
        return {}
    return {bytes(peer): list(addrs) for peer, addrs in unpack(raw)}
