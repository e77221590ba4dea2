"""Share links (SPEC.md "Share links") served by real nodes on 127.0.0.1: files with ranges and
ETags, folder listings, streamed zips, expiry, passwords with their slow-down, download counts,
the traversal corpus; and, with real `backer run` processes, a revocation made on node A ending
the link that node B's public listener serves.
"""

from __future__ import annotations

import http.client as http_client
import io
import os
import time
import zipfile

import trio

import pytest

from tests.e2e.conftest import backer_json, wait_until
from gossip_backer.web.server import serve_web
from tests.web.harness import fetch, http, settle, two_nodes, wait_for


async def make_tree(p) -> None:
    photos = p.root_a / "photos"
    (photos / "2026").mkdir(parents=True)
    (photos / "a.txt").write_bytes(b"0123456789")
    (photos / "2026" / "b.bin").write_bytes(os.urandom(300_000))
    (photos / "secret.key").write_text("ignored, never served")
    (p.root_a / ".backerignore").write_text("*.key\n")
    (p.root_a / "outside.txt").write_text("not in the link")
    os.symlink("/etc", photos / "etc-link")
    os.symlink("../outside.txt", photos / "up-link.txt")
    await settle(p, "photos/a.txt", "photos/2026/b.bin", "outside.txt", "photos/etc-link")


async def share(p, path: str, **extra) -> dict:
    made = await http(p.web_a, "/api/shares", "POST", {"path": path, **extra})
    assert made.status == 200, made.body
    return made.json()


def test_file_ranges_etag_head_and_download_count(tmp_path) -> None:
    async def main() -> None:
        async with two_nodes(tmp_path) as p:
            await make_tree(p)
            link = await share(p, "photos/a.txt")
            base = f"/s/{link['token']}/"
            whole = await http(p.public_a, base)
            assert whole.status == 200 and whole.body == b"0123456789"
            assert whole.headers["content-type"] == "text/plain; charset=utf-8"
            assert whole.headers["content-length"] == "10"
            assert whole.headers["accept-ranges"] == "bytes"
            assert whole.headers["content-security-policy"].startswith("sandbox")
            etag = whole.headers["etag"]
            part = await http(p.public_a, base, headers={"Range": "bytes=2-5"})
            assert part.status == 206 and part.body == b"2345"
            assert part.headers["content-range"] == "bytes 2-5/10"
            assert part.headers["content-length"] == "4"
            tail = await http(p.public_a, base, headers={"Range": "bytes=-3"})
            assert tail.status == 206 and tail.body == b"789"
            open_end = await http(p.public_a, base, headers={"Range": "bytes=7-"})
            assert open_end.body == b"789"
            past = await http(p.public_a, base, headers={"Range": "bytes=10-"})
            assert past.status == 416 and past.headers["content-range"] == "bytes */10"
            stale = await http(p.public_a, base, headers={"Range": "bytes=0-1", "If-Range": '"x"'})
            assert stale.status == 200 and stale.body == b"0123456789"
            same = await http(p.public_a, base, headers={"If-None-Match": etag})
            assert same.status == 304 and same.body == b""
            head = await http(p.public_a, base, "HEAD")
            assert head.status == 200 and head.body == b"" and head.headers["content-length"] == "10"
            # also served by the web GUI, the one route there that needs no token
            assert (await http(p.web_a, base)).body == b"0123456789"
            async with trio.open_nursery() as nursery:
                guarded = await nursery.start(serve_web, p.a, "127.0.0.1", 0, "web-token")
                assert (await http(guarded, "/api/status")).status == 401
                assert (await http(guarded, "/files")).status == 401
                open_link = await http(guarded, base, headers={"Host": "files.example.org"})
                assert open_link.status == 200 and open_link.body == b"0123456789"
                nursery.cancel_scope.cancel()
            assert (await http(p.public_a, "/api/status")).status == 404  # public: links only
            assert (await http(p.public_a, "/")).status == 404
            await wait_for(lambda: p.b.shares()[0]["downloads"] >= 3,
                           what="the download count on node b")

            # a revocation cuts a download under way short (no complete-looking file)
            (p.root_a / "big.bin").write_bytes(os.urandom(24 << 20))
            await settle(p, "big.bin")
            big = await share(p, "big.bin")
            got = await trio.to_thread.run_sync(_read_then_revoke, p, big["token"])
            assert got < 24 << 20

    trio.run(main)


def _read_then_revoke(p, token: str) -> int:
    """(thread) Start the download, read 1 MiB, revoke the link, read what still comes."""
    import http.client as httpclient
    from urllib.parse import urlsplit

    parts = urlsplit(p.public_a)
    conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=20)
    conn.request("GET", f"/s/{token}/")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.headers["content-length"] == str(24 << 20)
    n = len(resp.read(1 << 20))
    trio.from_thread.run_sync(p.a.revoke_share, token)
    try:
        while chunk := resp.read(1 << 20):
            n += len(chunk)
    except httpclient.IncompleteRead as exc:
        n += len(exc.partial)
    conn.close()
    return n


def test_folder_listing_and_streamed_zip_hold_only_what_the_link_reveals(tmp_path) -> None:
    async def main() -> None:
        async with two_nodes(tmp_path) as p:
            await make_tree(p)
            link = await share(p, "photos")
            base = f"/s/{link['token']}/"
            page = await http(p.public_a, base)
            assert page.status == 200 and page.headers["content-type"].startswith("text/html")
            assert 'href="2026/"' in page.text and 'href="a.txt"' in page.text
            assert "?zip" in page.text
            for hidden in ("secret.key", "etc-link", "up-link", "outside"):
                assert hidden not in page.text
            assert page.text.index("2026/") < page.text.index("a.txt")  # folders first
            sub = await http(p.public_a, base + "2026")
            assert sub.status == 308 and sub.headers["location"].endswith("/2026/")
            assert "b.bin" in (await http(p.public_a, base + "2026/")).text

            got = await http(p.public_a, base + "?zip")
            assert got.status == 200 and got.headers["content-type"] == "application/zip"
            assert "photos.zip" in got.headers["content-disposition"]
            assert "content-length" not in got.headers  # streamed while written
            with zipfile.ZipFile(io.BytesIO(got.body)) as zf:
                assert sorted(zf.namelist()) == ["2026/b.bin", "a.txt"]
                assert zf.testzip() is None
                assert zf.read("2026/b.bin") == (p.root_a / "photos/2026/b.bin").read_bytes()
            sub_zip = await http(p.public_a, base + "2026/?zip")
            with zipfile.ZipFile(io.BytesIO(sub_zip.body)) as zf:
                assert zf.namelist() == ["b.bin"]

    trio.run(main)


TRAVERSAL = [
    "../outside.txt", "..%2foutside.txt", "%2e%2e/outside.txt", "%2E%2E%2Foutside.txt",
    "%252e%252e/outside.txt", "..%5coutside.txt", "..\\outside.txt", "2026/../../outside.txt",
    "./a.txt/../../outside.txt", "etc-link/passwd", "up-link.txt", "secret.key", "%00",
    ".backer/identity", "2026/%2e%2e/%2e%2e/outside.txt", "/outside.txt", "//etc/passwd",
]


def test_traversal_corpus_reveals_nothing_outside_the_link(tmp_path) -> None:
    async def main() -> None:
        async with two_nodes(tmp_path) as p:
            await make_tree(p)
            link = await share(p, "photos")
            whole = await share(p, "")
            for attempt in TRAVERSAL:
                reply = await http(p.public_a, f"/s/{link['token']}/{attempt}")
                assert reply.status in (400, 404), (attempt, reply.status)
                assert b"not in the link" not in reply.body and b"root:" not in reply.body
            for attempt in (".backer/identity", ".backer/", "photos/secret.key",
                            "%2ebacker/state.db", "photos/etc-link/passwd"):
                reply = await http(p.public_a, f"/s/{whole['token']}/{attempt}")
                assert reply.status in (400, 404), (attempt, reply.status)
            assert (await http(p.public_a, f"/s/{whole['token']}/outside.txt")).status == 200
            assert (await http(p.public_a, "/s/wrongtokenwrongtokenwrong/")).status == 404

    trio.run(main)


async def _status_or_cut(url: str, path: str) -> int | None:
    """The status of a download, or None when the link expired while it was being sent (the
    node cuts a download under way at expiry, as at revocation)."""
    try:
        return (await http(url, path)).status
    except http_client.IncompleteRead:
        return None


def test_expiry_and_password_with_slow_down(tmp_path) -> None:
    async def main() -> None:
        async with two_nodes(tmp_path) as p:
            await make_tree(p)
            short = await share(p, "photos/a.txt", expires=1)
            assert (await http(p.public_a, f"/s/{short['token']}/")).status == 200
            with trio.fail_after(3):  # expiry is kept in whole seconds, rounded up
                while await _status_or_cut(p.public_a, f"/s/{short['token']}/") != 404:
                    await trio.sleep(0.1)
            assert time.time() >= short["expires"]
            assert p.a.shares()[0]["expired"] is True

            locked = await share(p, "photos", password="open sesame")
            base = f"/s/{locked['token']}/"
            form = await http(p.public_a, base)
            assert form.status == 401 and 'type=password' in form.text
            assert (await http(p.public_a, base + "a.txt")).status == 401
            form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
            took = []
            for _ in range(3):
                started = time.monotonic()
                wrong = await http(p.public_a, base, "POST", raw=b"password=guess",
                                   headers=form_headers)
                took.append(time.monotonic() - started)
                assert wrong.status == 401 and "Wrong password" in wrong.text
            assert took[1] >= 0.25 and took[2] >= 0.5, took  # 0.25 s, then 0.5 s, doubling
            right = await http(p.public_a, base, "POST", raw=b"password=open+sesame",
                               headers=form_headers)
            assert right.status == 303 and "HttpOnly" in right.headers["set-cookie"]
            cookie = right.headers["set-cookie"].split(";")[0]
            opened = await http(p.public_a, base + "a.txt", headers={"Cookie": cookie})
            assert opened.status == 200 and opened.body == b"0123456789"

    trio.run(main)


@pytest.mark.e2e
def test_revocation_on_node_a_ends_the_link_served_by_node_b(mesh2) -> None:
    """Real processes (tests/web/conftest.py): A makes and revokes the link, B's public
    listener serves it."""
    a, public = mesh2.a, mesh2.public_b
    (a.root / "report.txt").write_text("quarterly numbers\n")
    wait_until(lambda: (mesh2.b.root / "report.txt").exists(), what="the file on b")
    made = backer_json("share", str(a.root), "report.txt")
    path = f"/s/{made['token']}/"
    wait_until(lambda: fetch(public, path).status == 200, timeout=20, what="b serving the link")
    assert fetch(public, path).body == b"quarterly numbers\n"
    assert backer_json("share", str(a.root), "--revoke", made["token"]) == {"revoked": made["token"]}
    started = time.monotonic()
    wait_until(lambda: fetch(public, path).status == 404, timeout=10, interval=0.05,
               what="b refusing the revoked link")
    print(f"revocation reached node b's public listener in {time.monotonic() - started:.2f} s")
    assert made["token"] not in {s["token"] for s in backer_json("share", str(mesh2.b.root), "--list")}
