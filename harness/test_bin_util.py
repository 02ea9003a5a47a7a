"""Helpers for the tests of the real tun2sock binary (harness/test_bin_*.py); no tests here.

Every namespace is named t2sb-<pid>-<n>-<tag> and deleted by the test that made it; every
process is started by the test and stopped by its PID (SIGTERM, then SIGKILL after a bounded
wait). Traffic stays in documentation and private ranges (192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24, 198.18.0.0/15, 2001:db8::/32, fd00::/8) and loopback.
"""
import itertools
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import List, Optional

_counter = itertools.count()
WAIT_S = 10.0  # the longest any helper waits for something to appear


def have(cmd: str) -> bool:
    return shutil.which(cmd) is not None


def run(cmd: List[str], check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"$ {' '.join(cmd)}\nexit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


class Process:
    """A process the test started; stop() ends it by its PID."""

    def __init__(self, cmd: List[str], log: Path, **kw):
        self.cmd = cmd
        self.log = log
        self._f = open(log, "w")
        self.p = subprocess.Popen(cmd, stdout=self._f, stderr=subprocess.STDOUT,
                                  start_new_session=True, **kw)

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.p.pid, sig)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit status."""
        if self.alive():
            os.kill(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=timeout)
        if not self._f.closed:
            self._f.close()
        return self.p.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Netns:
    """A network namespace t2sb-<pid>-<n>-<tag> with lo up and rp_filter off."""

    def __init__(self, tag: str):
        self.name = f"t2sb-{os.getpid()}-{next(_counter)}-{tag}"[:40]
        self.procs: List[Process] = []
        run(["ip", "netns", "add", self.name])
        self.ip("link", "set", "lo", "up")
        for key in ("all", "default"):
            self.sh(f"sysctl -qw net.ipv4.conf.{key}.rp_filter=0", check=False)

    def cmd(self, *args: str) -> List[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str, check: bool = True, timeout: float = 30, **kw):
        return run(self.cmd(*args), check=check, timeout=timeout, **kw)

    def ip(self, *args: str, check: bool = True):
        return self.run("ip", *args, check=check)

    def sh(self, script: str, check: bool = True, timeout: float = 30):
        return self.run("sh", "-c", script, check=check, timeout=timeout)

    def start(self, args: List[str], log: Path, **kw) -> Process:
        p = Process(self.cmd(*args), log, **kw)
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()
        run(["ip", "netns", "del", self.name], check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def veth(a: Netns, a_addr: str, b: Netns, b_addr: str, a_addr6: str = "", b_addr6: str = "") -> None:
    """Joins a and b with a veth pair (a side: va, b side: vb) and addresses them."""
    tmp_a = f"t2sa{os.getpid() % 100000}{next(_counter)}"[:15]
    tmp_b = f"t2sb{os.getpid() % 100000}{next(_counter)}"[:15]
    run(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b])
    run(["ip", "link", "set", tmp_a, "netns", a.name])
    run(["ip", "link", "set", tmp_b, "netns", b.name])
    a.ip("link", "set", tmp_a, "name", "va")
    b.ip("link", "set", tmp_b, "name", "vb")
    for ns, dev, addr, addr6 in ((a, "va", a_addr, a_addr6), (b, "vb", b_addr, b_addr6)):
        ns.ip("addr", "add", addr, "dev", dev)
        if addr6:
            ns.ip("addr", "add", addr6, "dev", dev, "nodad")
        ns.ip("link", "set", dev, "up")


def wait_for(pred, what: str, timeout: float = WAIT_S, proc: Optional[Process] = None):
    """Polls pred() every 50 ms until it is true (bounded); fails saying what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        if proc is not None and not proc.alive():
            raise AssertionError(f"process exited ({proc.p.returncode}) while waiting for "
                                 f"{what}:\n{proc.output()}")
        time.sleep(0.05)
    out = f"\n--- log ---\n{proc.output()}" if proc is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{out}")


def link_exists(ns: Netns, dev: str) -> bool:
    return ns.ip("link", "show", "dev", dev, check=False).returncode == 0


def addrs_of(ns: Netns, dev: str) -> str:
    return ns.ip("addr", "show", "dev", dev, check=False).stdout


def start_tun2sock(ns: Netns, binary: Path, log: Path, args: List[str], dev: str = "t2s0",
                   ready_addr: Optional[str] = None) -> Process:
    """Starts the binary in ns and waits until dev is up (and ready_addr is on it)."""
    p = ns.start([str(binary), *args], log)

    def ready():
        if not link_exists(ns, dev):
            return False
        out = addrs_of(ns, dev)
        return ",UP" in out and (ready_addr is None or ready_addr in out)

    wait_for(ready, f"{dev} up in {ns.name}", proc=p)
    return p
