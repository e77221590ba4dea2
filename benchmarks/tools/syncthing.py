"""Two Syncthing instances (the Debian package's version) on 127.0.0.1, configured from here.

Each instance gets its own home (`syncthing generate`), then its config.xml is edited before the
first start: GUI/REST on a free loopback port with a known API key, one listen address
tcp://127.0.0.1:PORT, no global or local discovery, no relays, no NAT traversal, no usage
reporting, no crash reporting, no auto-upgrade, no browser, normal CPU priority (Syncthing lowers
its own by default; gossip-backer does not, so neither runs niced), the other instance as a device
at its explicit loopback address, and one folder `bench` shared by both with the file watcher on
(`fsWatcherDelayS` the default 10 s, or the value asked). Each runs as one process (STMONITORED
set: no monitor parent), so its PID is the one whose RSS is measured.

Figures come from the REST API: completion from the receiver's `/rest/db/status`, bytes on the
wire from `/rest/system/connections` (`total.inBytesTotal + total.outBytesTotal`, the process's
counters of the bytes its BEP connections read and wrote), a rescan from `POST /rest/db/scan`
(which returns when the scan is done)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

from .common import HOST, Timeout, free_port, stop, track, wait_until

FOLDER = "bench"
DEFAULT_DELAY = 10  # Syncthing's default fsWatcherDelayS


def binary() -> str | None:
    return shutil.which("syncthing")


def version() -> str:
    out = subprocess.run([binary() or "syncthing", "--version"], capture_output=True, text=True)
    return out.stdout.strip()


def _set(parent: ET.Element, tag: str, value: object) -> None:
    el = parent.find(tag)
    if el is None:
        el = ET.SubElement(parent, tag)
    el.text = str(value).lower() if isinstance(value, bool) else str(value)


class StartFailed(RuntimeError):
    """An instance exited while starting; the message gives the warnings of its log."""


class Instance:
    def __init__(self, home: Path, root: Path, name: str) -> None:
        self.home = home
        self.root = root
        self.name = name
        self.new_ports()
        self.api_key = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.device_id = ""
        self.log = home.parent / f"{name}.log"
        self._log_from = 0  # where this start's output begins in the log

    def new_ports(self) -> None:
        """Ports free a moment ago. Another process (or the kernel's ephemeral port of some
        outgoing connection) can take one before Syncthing binds it: then it exits (1) with
        "Starting API/GUI: listen tcp ...: bind: address already in use", and we retry."""
        self.gui_port = free_port()
        self.listen_port = free_port()

    # -- setup -----------------------------------------------------------------------------
    def generate(self) -> None:
        subprocess.run([binary(), "generate", f"--home={self.home}", "--no-default-folder"],
                       check=True, capture_output=True, timeout=60)
        tree = ET.parse(self.home / "config.xml")
        self.device_id = tree.getroot().find("device").get("id")
        shutil.copyfile(self.home / "config.xml", self.home / "config.xml.generated")

    def configure(self, peer: "Instance", delay: int) -> None:
        """config.xml from the generated one (so that a retry with other ports starts afresh)."""
        path = self.home / "config.xml"
        tree = ET.parse(self.home / "config.xml.generated")
        cfg = tree.getroot()
        gui = cfg.find("gui")
        gui.set("tls", "false")
        _set(gui, "address", f"{HOST}:{self.gui_port}")
        _set(gui, "apikey", self.api_key)
        opts = cfg.find("options")
        for el in opts.findall("listenAddress"):
            opts.remove(el)
        ET.SubElement(opts, "listenAddress").text = f"tcp://{HOST}:{self.listen_port}"
        for tag, value in (("globalAnnounceEnabled", False), ("localAnnounceEnabled", False),
                           ("relaysEnabled", False), ("natEnabled", False), ("urAccepted", -1),
                           ("crashReportingEnabled", False), ("autoUpgradeIntervalH", 0),
                           ("startBrowser", False), ("setLowPriority", False),
                           ("restartOnWakeup", False)):
            _set(opts, tag, value)
        defaults = cfg.find("defaults")
        # the devices: this one (as generated) and the peer at its explicit loopback address
        for dev in cfg.findall("device"):
            if dev.get("id") == self.device_id:
                _set(dev, "address", f"tcp://{HOST}:{self.listen_port}")
                dev.set("name", self.name)
        peer_dev = ET.fromstring(ET.tostring(defaults.find("device")))
        peer_dev.set("id", peer.device_id)
        peer_dev.set("name", peer.name)
        _set(peer_dev, "address", f"tcp://{HOST}:{peer.listen_port}")
        cfg.insert(list(cfg).index(gui), peer_dev)
        # the shared folder
        folder = ET.fromstring(ET.tostring(defaults.find("folder")))
        folder.set("id", FOLDER)
        folder.set("label", FOLDER)
        folder.set("path", str(self.root))
        folder.set("fsWatcherEnabled", "true")
        folder.set("fsWatcherDelayS", str(delay))
        folder.set("rescanIntervalS", "3600")
        for dev in folder.findall("device"):
            folder.remove(dev)
        for dev_id in (self.device_id, peer.device_id):
            el = ET.Element("device", {"id": dev_id, "introducedBy": ""})
            ET.SubElement(el, "encryptionPassword")
            folder.insert(1, el)
        cfg.insert(list(cfg).index(gui), folder)
        tree.write(path)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".stfolder").mkdir(exist_ok=True)

    # -- process ---------------------------------------------------------------------------
    def start(self) -> None:
        env = {**os.environ, "STNOUPGRADE": "1", "STNORESTART": "1", "STNODEFAULTFOLDER": "1",
               "STMONITORED": "yes",
               "HOME": str(self.home)}
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        self.proc = track(subprocess.Popen(
            [binary(), "serve", f"--home={self.home}", "--no-browser", "--no-restart",
             "--no-default-folder", f"--gui-address={HOST}:{self.gui_port}", "--logflags=3"],
            stdin=subprocess.DEVNULL, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            env=env))

    def wait_api(self, timeout: float = 60) -> None:
        def up() -> bool:
            return self.proc.poll() is not None or bool(self.get("/rest/system/ping"))
        wait_until(up, timeout, 0.05, f"syncthing {self.name} REST API")
        if self.proc.poll() is not None:
            raise StartFailed(f"{self.name} exited ({self.proc.returncode}): {self.why()}")

    def why(self) -> str:
        """The warnings this start wrote to its log (why it exited), or where the log is."""
        try:
            with open(self.log, "rb") as f:
                f.seek(self._log_from)
                text = f.read().decode(errors="replace")
        except OSError:
            text = ""
        said = [line.split(": ", 1)[-1].strip() for line in text.splitlines()
                if "WARNING:" in line or "FATAL:" in line]
        return "; ".join(dict.fromkeys(said)) or f"see {self.log}"

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    # -- REST ------------------------------------------------------------------------------
    def _call(self, method: str, path: str, timeout: float) -> object:
        req = urllib.request.Request(f"http://{HOST}:{self.gui_port}{path}", method=method,
                                     headers={"X-API-Key": self.api_key})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body.strip() else {}

    def get(self, path: str, timeout: float = 10) -> object:
        return self._call("GET", path, timeout)

    def post(self, path: str, timeout: float = 600) -> object:
        return self._call("POST", path, timeout)

    def folder_status(self) -> dict:
        return self.get(f"/rest/db/status?folder={FOLDER}")

    def wire_bytes(self) -> int:
        total = self.get("/rest/system/connections")["total"]
        return int(total["inBytesTotal"]) + int(total["outBytesTotal"])

    def connected_to(self, peer: "Instance") -> bool:
        conns = self.get("/rest/system/connections")["connections"]
        return bool(conns.get(peer.device_id, {}).get("connected"))

    def idle(self) -> bool:
        st = self.folder_status()
        return st.get("state") == "idle" and st.get("needFiles", 1) == 0

    def rescan(self) -> None:
        """A full rescan of the folder; the REST call returns when it is done."""
        self.post(f"/rest/db/scan?folder={FOLDER}")


class EventWatch:
    """The receiver's event stream (`/rest/events`, long polls) read in a thread: `changed` is
    set whenever the shared folder's state changes (e.g. syncing -> idle), so the folder's status
    is asked for only then."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.changed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> threading.Event:
        # a filtered subscription numbers its events on its own: start from its latest
        past = self.inst.get("/rest/events?since=0&timeout=0&events=StateChanged")
        self.since = max((e["id"] for e in past or []), default=0)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self.changed

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                events = self.inst.get(f"/rest/events?since={self.since}&timeout=1"
                                       "&events=StateChanged", timeout=10)
            except (OSError, ValueError):
                if self._stop.wait(0.1):
                    return
                continue
            for e in events or []:
                self.since = max(self.since, e["id"])
                if e.get("data", {}).get("folder") == FOLDER:
                    self.changed.set()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


class SyncthingPair:
    """A (sends) and B (receives), one shared folder; see the module docstring."""

    def __init__(self, workdir: Path, delay: int = DEFAULT_DELAY, name: str = "syncthing") -> None:
        self.name = name
        self.delay = delay
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.a = Instance(workdir / "home-A", workdir / "A", f"{name}-A")
        self.b = Instance(workdir / "home-B", workdir / "B", f"{name}-B")

    @property
    def a_root(self) -> Path:
        return self.a.root

    @property
    def b_root(self) -> Path:
        return self.b.root

    def setup(self, timeout: float = 90, tries: int = 3, connect_timeout: float = 40) -> None:
        """Both instances configured, running, connected, the (empty) folder idle on both. An
        instance that exits while starting (a port taken meanwhile), or a pair that does not
        connect within `connect_timeout` (seen once in `make test`, under load: both up, never
        connected), is started again with fresh ports, saying why from their logs."""
        for inst in (self.a, self.b):
            inst.generate()
        for attempt in range(1, tries + 1):
            self.a.configure(self.b, self.delay)
            self.b.configure(self.a, self.delay)
            try:
                for inst in (self.a, self.b):
                    inst.start()
                for inst in (self.a, self.b):
                    inst.wait_api()
                try:
                    self.wait_connected(connect_timeout)
                except Timeout:
                    raise StartFailed(f"not connected after {connect_timeout:.0f} s (A: "
                                      f"{self.a.why()}; B: {self.b.why()})") from None
                break
            except StartFailed as exc:
                self.close()
                if attempt == tries:
                    raise
                print(f"{self.name}: {exc}; retrying with fresh ports", file=sys.stderr, flush=True)
                for inst in (self.a, self.b):
                    inst.new_ports()
        wait_until(lambda: self.a.idle() and self.b.idle(), timeout, 0.1, f"{self.name}: folders idle")

    def wait_connected(self, timeout: float = 60) -> None:
        wait_until(lambda: self.a.connected_to(self.b) and self.b.connected_to(self.a), timeout,
                   0.05, f"{self.name}: both instances connected")

    def pids(self) -> list[int]:
        return [p.pid for p in (self.a, self.b) if p.proc is not None]

    def wire_bytes(self) -> int:
        """The receiver's counters (it runs all along; its only peer is A)."""
        return self.b.wire_bytes()

    def receiver_events(self) -> EventWatch:
        return EventWatch(self.b)

    def receiver_has(self, files: int, size: int) -> bool:
        # (localBytes also counts 128 bytes per folder in this version: files are compared)
        st = self.b.folder_status()
        return (st.get("localFiles") == files and st.get("globalFiles") == files
                and st.get("needTotalItems") == 0 and st.get("state") == "idle")

    def both_idle(self) -> bool:
        return self.a.idle() and self.b.idle()

    def rescan_sender(self) -> None:
        self.a.rescan()

    def close(self) -> None:
        for inst in (self.a, self.b):
            inst.stop()
