"""Two real `backer run` processes of one mesh, shared by the browser tests and the share-link
test that needs real processes: A and B both serve a web GUI on 127.0.0.1, and B a public
listener (`run --public`) for share links."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Daemon, backer_json, invite, join, wait_until


class Mesh2:
    def __init__(self, a: Daemon, b: Daemon, public_b: str) -> None:
        self.a, self.b = a, b
        self.url_a = _line(a, "web on ")
        self.url_b = _line(b, "web on ")
        self.public_b = public_b


def _line(d: Daemon, prefix: str) -> str:
    return next(line.split()[-1] for line in d.lines if line.startswith(prefix))


@pytest.fixture(scope="session")
def mesh2(tmp_path_factory):
    base = tmp_path_factory.mktemp("mesh2")
    root_a, root_b = base / "A", base / "B"
    backer_json("init", str(root_a), "--name", "alpha")
    (root_a / "docs").mkdir()
    (root_a / "docs" / "plan.txt").write_text("milk\neggs\nbread\n")
    a = Daemon(root_a, web=True).start()
    b = None
    try:
        join(root_b, invite(a), "beta")
        b = Daemon(root_b, web=True, args=("--public", "127.0.0.1:0")).start()
        public = b.proc.stdout.readline().strip()
        assert public.startswith("public on "), public
        b.lines.append(public)
        wait_until(lambda: (root_b / "docs" / "plan.txt").exists(), what="first sync")
        yield Mesh2(a, b, public.split()[-1])
    finally:
        if b is not None:
            b.stop()
        a.stop()
