"""Running as a service (issue 11): the systemd units parse, and log lines suit journald."""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ENV, backer_json

UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
BACKER = str(Path(sys.executable).parent / "backer")


def _parse(text: str) -> configparser.ConfigParser:
    ini = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",))
    ini.optionxform = str  # systemd keys are case-sensitive
    ini.read_string(text)
    return ini


@pytest.mark.parametrize("name", ["backer.service", "backer@.service"])
def test_units_restart_on_failure_and_stop_with_sigterm(name):
    ini = _parse((UNITS / name).read_text())
    service = ini["Service"]
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert " run " in service["ExecStart"] and ini["Install"]["WantedBy"]
    if name.startswith("backer@"):
        assert service["ExecStart"].endswith(" run %f")  # the instance is the escaped root


@pytest.mark.parametrize("name", ["backer.service", "backer@.service"])
def test_units_pass_systemd_analyze_verify(name, tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (the ini structure is checked above)")
    text = (UNITS / name).read_text()
    # verify insists that ExecStart's program exists: point it at this venv's `backer`. The user
    # unit is verified by the system manager (a CI container has no user manager to ask).
    text = text.replace("/usr/local/bin/backer", BACKER).replace("%h/.local/bin/backer", BACKER)
    unit = tmp_path / (name.replace("@.", "@srv-sync.") if "@." in name else name)
    unit.write_text(text)
    out = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert not [l for l in out.stderr.splitlines() if unit.name.split("@")[0] in l
                and ("Unknown" in l or "Failed" in l or "ignoring" in l)], out.stderr


def test_log_lines_under_journald_carry_a_priority_and_no_timestamp(tmp_path):
    root = tmp_path / "a"
    backer_json("init", str(root), "--name", "a")
    log = tmp_path / "journal"
    with open(log, "wb") as err:
        st = os.fstat(err.fileno())
        env = {**ENV, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        proc = subprocess.Popen([sys.executable, "-m", "gossip_backer", "run", str(root),
                                 "--listen", "127.0.0.1:0", "--no-web", "--log-level", "info"],
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        assert proc.stdout.readline().startswith("listening on ")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    lines = log.read_text().splitlines()
    assert lines and all(l[:3] in ("<7>", "<6>", "<4>", "<3>", "<2>") for l in lines), lines[:5]
    assert any(l.startswith("<6>") and "shutting down" in l for l in lines)
    assert not any(l[3:7].isdigit() for l in lines)  # no "2026-..." timestamp of our own
