"""The JSON API of SPEC.md "Web GUI and API" against two real nodes (tests/web/harness.py):
every route, its bad input (400, one line), unknown routes (404 JSON) and foreign origins (403).
"""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

import trio

from gossip_backer.core.record import LiveGlob

from tests.web.harness import http, settle, two_nodes, wait_for


def one_line_error(reply) -> str:
    assert reply.headers["content-type"] == "application/json", reply.body
    message = reply.json()["error"]
    assert message and "\n" not in message and "Traceback" not in message
    return message


def test_files_history_and_restore_spread_to_the_other_node(tmp_path) -> None:
    async def main() -> None:
        async with two_nodes(tmp_path) as p:
            (p.root_a / "docs").mkdir()
            (p.root_a / "docs" / "plan.txt").write_text("first\n")
            (p.root_a / "zeta.txt").write_text("z")
            (p.root_a / "alpha.bin").write_bytes(b"\0" * 10)
            (p.root_a / "docs" / "notes.md").write_text("# live\n")
            p.a.local_changes([p.a.state.make(LiveGlob("*.md", True, p.a.state.metamap.clock + 1))])
            await settle(p, "docs/plan.txt", "zeta.txt", "alpha.bin", "docs/notes.md")
            (p.root_a / "docs" / "plan.txt").write_text("second, longer\n")
            await wait_for(lambda: all(n.state.metamap.winner("docs/plan.txt").size == 15
                                       for n in (p.a, p.b)), what="the edit on both nodes")
            await settle(p)

            root = (await http(p.web_a, "/api/files")).json()
            assert [(e["name"], e["kind"]) for e in root] == [
                ("alpha.bin", "file"), ("docs", "dir"), ("zeta.txt", "file")]
            assert set(root[0]) == {"name", "path", "kind", "size", "mtime", "live"}
            assert root[0]["size"] == 10 and root[0]["live"] is False
            docs = (await http(p.web_b, "/api/files?path=docs")).json()
            assert [(e["name"], e["live"]) for e in docs] == [("notes.md", True), ("plan.txt", False)]
            assert docs[1]["path"] == "docs/plan.txt" and docs[1]["size"] == len("second, longer\n")
            assert one_line_error(await http(p.web_a, "/api/files?path=nope")).startswith("no such folder")
            assert (await http(p.web_a, "/api/files?path=../etc")).status == 400
            assert (await http(p.web_a, "/api/files?path=.backer")).status == 400

            history = (await http(p.web_b, "/api/history?path=docs/plan.txt")).json()
            assert len(history) == 2
            assert set(history[0]) == {"version", "time", "size", "hash", "node_id", "deleted"}
            assert (await http(p.web_a, "/api/history")).status == 400
            assert (await http(p.web_a, "/api/history?path=missing.txt")).status == 400

            older, newer = history[1]["version"], history[0]["version"]
            # b kept the older version when a's edit replaced it (a's editor overwrote its own)
            diff = (await http(p.web_b, f"/api/diff?path=docs/plan.txt&left={older}&right={newer}")).json()
            assert diff["rows"] == [{"left_no": 1, "left": "first", "right_no": 1,
                                     "right": "second, longer", "kind": "changed"}]
            # a kept only the newer one (its own edit overwrote the older): fetched from b
            fetched = (await http(p.web_a, f"/api/diff?path=docs/plan.txt&left={older}&right={newer}")).json()
            assert fetched["rows"] == diff["rows"]
            assert not list(p.root_a.glob("docs/.backer-tmp-*"))  # the scratch copy is gone
            assert (await http(p.web_a, "/api/diff?path=docs/plan.txt&left=nope")).status == 400
            assert (await http(p.web_a, "/api/diff?path=alpha.bin&other=zeta.txt")).status == 400
            got = await http(p.web_b, "/api/download?path=docs/plan.txt")
            assert got.status == 200 and got.body == b"second, longer\n"
            assert got.headers["content-disposition"].startswith("attachment")
            assert (await http(p.web_b, "/api/download?path=docs")).status == 400

            restored = await http(p.web_b, "/api/restore", "POST", {"path": "docs/plan.txt",
                                                                    "version": older})
            assert restored.status == 200, restored.body
            assert restored.json()["path"] == "docs/plan.txt"
            await wait_for(lambda: (p.root_a / "docs" / "plan.txt").read_text() == "first\n",
                           what="the restored version on the other node's disk")

            for bad in (None, [], {"version": older}, {"path": 3}, {"path": "docs/plan.txt",
                                                                      "version": "nope"}):
                reply = await http(p.web_b, "/api/restore", "POST", bad)
                assert reply.status == 400, (bad, reply.body)
                one_line_error(reply)
            garbage = await http(p.web_b, "/api/restore", "POST", raw=b"{not json",
                                 headers={"Content-Type": "application/json"})
            assert one_line_error(garbage) == "the request body is not JSON"

    trio.run(main)


def test_conflicts_are_listed_and_resolved_as_changes_that_spread(tmp_path) -> None:
    async def main() -> None:
        async with two_nodes(tmp_path) as p:
            copy = "notes.sync-conflict-20260101-120000-ABCDEFG.txt"
            (p.root_a / "notes.txt").write_text("winner\n")
            (p.root_a / copy).write_text("loser\n")
            await settle(p, "notes.txt", copy)
            listed = (await http(p.web_b, "/api/conflicts")).json()
            assert listed == [{"path": copy, "original": "notes.txt", "node_id": "ABCDEFG",
                               "time": listed[0]["time"]}]

            keep = await http(p.web_b, "/api/conflicts", "POST", {"path": copy, "keep": "copy"})
            assert keep.status == 200, keep.body
            await wait_for(lambda: (p.root_a / "notes.txt").read_text() == "loser\n"
                           and not (p.root_a / copy).exists(), what="keep-the-copy on node a")
            await settle(p)
            assert (await http(p.web_a, "/api/conflicts")).json() == []

            (p.root_a / copy).write_text("another\n")
            await settle(p, copy)
            both = await http(p.web_a, "/api/conflicts", "POST", {"path": copy, "keep": "both"})
            assert both.status == 200, both.body
            kept = "notes.kept-20260101-120000-ABCDEFG.txt"
            await wait_for(lambda: (p.root_b / kept).exists() and not (p.root_b / copy).exists(),
                           what="keep-both on node b")

            assert one_line_error(await http(p.web_a, "/api/conflicts", "POST",
                                             {"path": "notes.txt", "keep": "copy"})
                                  ).startswith("not a conflict copy")
            assert (await http(p.web_a, "/api/conflicts", "POST",
                               {"path": kept, "keep": "sideways"})).status == 400

    trio.run(main)


def test_shares_api_make_list_revoke_and_bad_input(tmp_path) -> None:
    async def main() -> None:
        async with two_nodes(tmp_path) as p:
            (p.root_a / "photos").mkdir()
            (p.root_a / "photos" / "a.jpg").write_bytes(b"jpeg")
            await settle(p, "photos/a.jpg")
            made = await http(p.web_a, "/api/shares", "POST", {"path": "photos", "expires": 3600,
                                                             "password": "pw"})
            assert made.status == 200, made.body
            link = made.json()
            assert set(link) == {"url", "token", "path", "expires"}
            assert link["url"] == f"{p.public_a}s/{link['token']}/"
            assert len(link["token"]) >= 22 and abs(link["expires"] - time.time() - 3600) < 5
            listed = (await http(p.web_a, "/api/shares")).json()
            assert [s["token"] for s in listed] == [link["token"]]
            assert listed[0]["password"] is True and listed[0]["downloads"] == 0
            await wait_for(lambda: p.b.shares() and p.b.shares()[0]["token"] == link["token"],
                           what="the link on node b")

            for bad in ({"path": "nope"}, {"path": "photos", "expires": -1},
                        {"path": "photos", "expires": "soon"}, {"path": "../x"}, {}, [1]):
                one_line_error(await http(p.web_a, "/api/shares", "POST", bad))
            assert (await http(p.web_a, "/api/shares/not-a-token", "DELETE")).status == 400

            gone = await http(p.web_b, f"/api/shares/{link['token']}", "DELETE")
            assert gone.json() == {"revoked": link["token"]}
            await wait_for(lambda: p.a.shares() == [], what="the revocation on node a")

    trio.run(main)


def test_events_unknown_routes_foreign_origins_invites_and_peer_removal(tmp_path) -> None:
    async def main() -> None:
        async with two_nodes(tmp_path) as p:
            await events_carry_increasing_ids(p)
            missing = await http(p.web_a, "/api/nothing/here")
            assert missing.status == 404 and "error" in missing.json()
            host = urlsplit(p.web_a).netloc
            evil = {"Origin": "http://evil.example"}
            for method, path, body in (("POST", "/api/shares", {"path": ""}),
                                       ("POST", "/api/restore", {"path": "x"}),
                                       ("POST", "/api/conflicts", {"path": "x", "keep": "both"}),
                                       ("POST", "/api/invites", {}),
                                       ("DELETE", "/api/shares/abc", None),
                                       ("DELETE", f"/api/peers/{p.b.node_id}", None)):
                refused = await http(p.web_a, path, method, body, headers=evil)
                assert refused.status == 403, (method, path)
                assert refused.json() == {"error": "cross-origin request refused"}
            assert p.a.shares() == [] and p.a.peers()  # nothing happened
            ok = await http(p.web_a, "/api/shares", "POST", {"path": ""},
                            headers={"Origin": f"http://{host}"})
            assert ok.status == 200
            assert (await http(p.web_a, "/api/shares", "PUT", {})).status == 405
            await invites_and_peer_removal(p)  # last: b leaves the mesh

    trio.run(main)


async def invites_and_peer_removal(p) -> None:
    p.a.advertise = ["127.0.0.1:7440"]
    made = (await http(p.web_a, "/api/invites", "POST", {"read_only": True})).json()
    assert made["invite"].startswith("backer-invite-") and made["read_only"] is True
    assert (await http(p.web_a, "/api/invites", "POST", {"read_only": "yes"})).status == 400
    assert (await http(p.web_a, "/api/invites", "POST", {"expires": 0})).status == 400
    assert (await http(p.web_a, "/api/peers/nonsense", "DELETE")).status == 400
    removed = await http(p.web_a, f"/api/peers/{quote(str(p.b.node_id))}", "DELETE")
    assert removed.json() == {"removed": str(p.b.node_id)}
    assert p.a.peers() == []


async def events_carry_increasing_ids(p) -> None:
    import http.client as httpclient

    def read_ids() -> list[int]:
        parts = urlsplit(p.web_a)
        conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=20)
        conn.request("GET", "/api/events")
        resp = conn.getresponse()
        ids = []
        while len(ids) < 2:
            line = resp.readline()
            if line.startswith(b"id: "):
                ids.append(int(line[4:]))
        conn.close()
        return ids

    result: list[int] = []
    async with trio.open_nursery() as nursery:
        async def reader() -> None:
            result.extend(await trio.to_thread.run_sync(read_ids))
        nursery.start_soon(reader)
        await trio.sleep(0.3)
        for i in range(3):
            (p.root_a / f"e{i}.txt").write_text(str(i))
            await trio.sleep(0.3)
    assert result == [1, 2]
