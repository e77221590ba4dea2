"""kill -9 of the sender or the receiver at a random moment of a sync, on real processes; after
a restart the two trees must be identical byte for byte (content, permission bits, mtimes).

One mesh of two nodes serves every trial: each trial changes the sender's tree (new files of
1 KiB to 4 MiB, edits, deletions), kills one side 0 to 1 s later, restarts it, waits until both
say in sync, and compares. Counted per trial: identical trees, damaged files (a path whose bytes
differ on the two sides, or that a node holds half-written), temp files left behind, crashes
(a node that died by itself, or a traceback in its log).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.conftest import ENV, Daemon, in_sync, mesh, tree


class FixedPortDaemon(Daemon):
    """A node that comes back on the port it had (as a real deployment does: 7440). With a new
    random port on every restart, two nodes restarted in turn can each be left with only the
    other's old address, and nothing to dial."""

    def start(self) -> "FixedPortDaemon":
        if not self.listen:
            return super().start()
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gossip_backer", "run", str(self.root), "--listen", self.listen,
             "--no-web"], stdout=subprocess.PIPE,
            stderr=open(self.root.parent / f"{self.root.name}.log", "ab"), text=True, env=ENV)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            raise AssertionError(f"backer run {self.root} did not come back: {line!r}")
        return self


@dataclass
class KillReport:
    trials: int = 0
    identical: int = 0
    damaged: int = 0
    temp_left: int = 0
    crashes: int = 0
    failures: list[str] = field(default_factory=list)


def _change(root: Path, rng: random.Random, trial: int) -> None:
    folder = root / f"t{trial:03d}"
    folder.mkdir()
    for i in range(rng.randrange(3, 7)):
        size = rng.choice((1 << 10, 64 << 10, 512 << 10, 2 << 20, 4 << 20))
        (folder / f"f{i}.bin").write_bytes(rng.randbytes(size))
        if rng.random() < 0.3:
            os.chmod(folder / f"f{i}.bin", 0o600)
    earlier = sorted(p for p in root.glob("t*/*.bin") if not p.is_relative_to(folder))
    for p in rng.sample(earlier, min(len(earlier), 2)):
        if rng.random() < 0.5:
            p.unlink()
        else:
            with open(p, "r+b") as f:  # an edit in the middle
                f.seek(rng.randrange(max(1, p.stat().st_size)))
                f.write(rng.randbytes(4096))


def _damaged(a: dict, b: dict) -> int:
    return sum(1 for k in a.keys() & b.keys() if a[k][:2] != b[k][:2])


def _temps(root: Path) -> int:
    return sum(1 for p in root.rglob(".backer-tmp-*") if ".backer/" not in str(p.relative_to(root)) + "/"
               and not str(p.relative_to(root)).startswith(".backer/"))


def _log_has_traceback(d: Daemon) -> bool:
    log = d.root.parent / f"{d.root.name}.log"
    return log.exists() and "Traceback" in log.read_text(errors="replace")


def campaign(base: Path, trials: int, seed: int = 0) -> KillReport:
    """Run `trials` kill -9 trials in a fresh mesh under `base`."""
    rng = random.Random(seed)
    started: list[Daemon] = []

    def make(root: Path, web: bool = False) -> Daemon:
        d = FixedPortDaemon(root, web)
        started.append(d)
        return d

    report = KillReport()
    try:
        sender, receiver = mesh(base, make, 2)
        for trial in range(trials):
            victim = (sender, receiver)[trial % 2]
            report.trials += 1
            _change(sender.root, rng, trial)
            time.sleep(rng.uniform(0.0, 1.0))
            if sender.proc.poll() is not None or receiver.proc.poll() is not None:
                report.crashes += 1
            victim.kill9()
            victim.start()
            try:
                in_sync([sender, receiver], timeout=120)
            except AssertionError as exc:
                report.failures.append(f"trial {trial} ({'sender' if victim is sender else 'receiver'}): {exc}")
            ta, tb = tree(sender.root), tree(receiver.root)
            report.identical += ta == tb
            report.damaged += _damaged(ta, tb)
            report.temp_left += _temps(sender.root) + _temps(receiver.root)
        report.crashes += sum(_log_has_traceback(d) for d in (sender, receiver))
    finally:
        for d in started:
            d.stop()
    return report
