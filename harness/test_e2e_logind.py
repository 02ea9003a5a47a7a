"""systemd-logind's PrepareForSleep as a source of the paused and resumed events
(docs/network-change.md, "Sleep"): a private dbus-daemon stands in for the system bus
(DBUS_SYSTEM_BUS_ADDRESS), a helper that owns org.freedesktop.login1 stands in for logind.

    client ns: tun2sock on t2s0 (E2EWorld: 192.0.2.0/24 routed into it)
    server ns: dante on 203.0.113.2:1080, the HTTP origin 192.0.2.80:8080
    the bus:   dbus-daemon on a unix socket in the test's directory (the root namespace; a
               unix socket path reaches every network namespace)

PrepareForSleep(true) puts the engine in SUSPENDED (new connections refused at once);
PrepareForSleep(false) resumes it (every flow reset once, then new flows work). A forged signal
from a process that does not own org.freedesktop.login1 is not delivered to tun2sock. Without a
bus tun2sock says so in one line and runs; --no-logind does not try.
"""
import json
import os
import time
from pathlib import Path

import pytest

from test_bin_util import (E2E_HTTP_PORT, E2E_ORIGIN4, E2E_PROXY4, E2E_SOCKS_PORT, PYTHON,
                           E2EWorld, Netns, Process, have, run, start_tun2sock, wait_for)

pytestmark = [pytest.mark.root]

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

# logind's stand-in: owns org.freedesktop.login1 (tun2sock listens to that sender only) and
# sends one PrepareForSleep(BOOL).
FAKE_LOGIND_PY = r"""
import sys
import dbus, dbus.bus, dbus.lowlevel
bus = dbus.bus.BusConnection(sys.argv[1])
assert bus.request_name("org.freedesktop.login1") == dbus.bus.REQUEST_NAME_REPLY_PRIMARY_OWNER
m = dbus.lowlevel.SignalMessage("/org/freedesktop/login1", "org.freedesktop.login1.Manager",
                                "PrepareForSleep")
m.append(sys.argv[2] == "true", signature="b")
bus.send_message(m)
bus.flush()
bus.close()
"""

URL = f"http://{E2E_ORIGIN4}:{E2E_HTTP_PORT}/hello.txt"
SLEPT_S = 30


def _have_python_dbus() -> bool:
    return run([PYTHON, "-c", "import dbus"], check=False).returncode == 0


class Bus:
    """A private dbus-daemon on TMP/bus, stopped by its PID."""

    def __init__(self, tmp: Path):
        self.sock = tmp / "bus"
        self.address = f"unix:path={self.sock}"
        conf = tmp / "bus.conf"
        conf.write_text(BUS_CONF.format(sock=self.sock))
        self.p = Process(["dbus-daemon", "--nofork", "--nopidfile", f"--config-file={conf}"],
                         tmp / "dbus-daemon.log")
        wait_for(self.sock.exists, "the dbus-daemon socket", proc=self.p)

    def prepare_for_sleep(self, tmp: Path, sleeping: bool) -> None:
        script = tmp / "fake_logind.py"
        script.write_text(FAKE_LOGIND_PY)
        run([PYTHON, str(script), self.address, "true" if sleeping else "false"], timeout=10)

    def forged(self, sleeping: bool) -> None:
        """The same signal from a connection that does not own org.freedesktop.login1."""
        run(["dbus-send", f"--bus={self.address}", "--type=signal", "/org/freedesktop/login1",
             "org.freedesktop.login1.Manager.PrepareForSleep",
             f"boolean:{'true' if sleeping else 'false'}"], timeout=10)

    def close(self) -> None:
        self.p.stop()


def _need_bus():
    for tool in ("dbus-daemon", "dbus-send", "danted", "curl", "ss"):
        if not have(tool):
            pytest.skip(f"{tool} not installed (Debian packages dbus-daemon, dbus-bin, "
                        "dante-server, curl, iproute2)")
    if not _have_python_dbus():
        pytest.skip("python3-dbus not installed (Debian package python3-dbus)")


def _skip_without_sd_bus(out: str) -> None:
    if "built without sd-bus" in out:
        pytest.skip("tun2sock was built without sd-bus (libsystemd-dev missing at configure time)")


@pytest.fixture
def bus(tmp_path):
    _need_bus()
    b = Bus(tmp_path)
    yield b
    b.close()


@pytest.fixture
def world(tmp_path, bus):
    w = E2EWorld(tmp_path, "lgd")
    yield w
    w.close()


def _state(world) -> dict:
    return world.stats()["network"]


def test_prepare_for_sleep_pauses_and_resumes_once(world, bus, tun2sock_bin, tmp_path,
                                                   monkeypatch):
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello\n")
    world.start_origin(www)
    world.start_dante()
    offset = tmp_path / "boottime-offset"
    offset.write_text("0\n")
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
    monkeypatch.setenv("TUN2SOCK_TEST_BOOTTIME_OFFSET_FILE", str(offset))
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}",
                             "--log-level", "debug")
    _skip_without_sd_bus(t.output())
    wait_for(lambda: "logind: listening for PrepareForSleep" in t.output(),
             "the PrepareForSleep subscription", proc=t)
    curl = lambda: world.c.run("curl", "-sS", "--max-time", "10", URL, check=False, timeout=20)
    assert curl().stdout == "hello\n", world.log_tail()
    assert _state(world)["state"] == "UP"

    # A process that is not logind cannot put tun2sock to sleep: the bus does not deliver it.
    bus.forged(True)
    time.sleep(0.5)
    assert _state(world)["state"] == "UP", world.log_tail()
    assert "about to sleep" not in t.output()

    bus.prepare_for_sleep(tmp_path, True)
    wait_for(lambda: _state(world)["state"] == "SUSPENDED", "state SUSPENDED", proc=t)
    assert "logind: the machine is about to sleep" in t.output()
    r = curl()
    assert r.returncode != 0, "a new connection succeeded while suspended"

    # The wake: CLOCK_BOOTTIME is SLEPT_S ahead now, which the clock detector (once a second)
    # notices too; whichever reports first, the flows are reset once and the other is dropped.
    offset.write_text(f"{SLEPT_S * 10**9}\n")
    bus.prepare_for_sleep(tmp_path, False)
    wait_for(lambda: _state(world)["resumes"] == 1, "the resume", proc=t)
    wait_for(lambda: curl().stdout == "hello\n", "a new connection after the wake", proc=t)
    time.sleep(2.5)  # past the clock detector's next checks
    out = t.output()
    assert _state(world)["resumes"] == 1, out[-4000:]
    assert out.count(f"the machine slept {SLEPT_S}.") == 1, out[-4000:]
    assert ("logind: the machine woke" in out or
            "the wake was already reported by the clocks" in out), out[-4000:]
    assert _state(world)["state"] == "UP"


@pytest.fixture
def ns():
    n = Netns("lgd")
    yield n
    n.close()


def _start_alone(ns, tun2sock_bin, tmp_path, *extra):
    return start_tun2sock(ns, tun2sock_bin, tmp_path / "tun2sock.log",
                          ["--device", "t2s0", "--proxy", "socks5://127.0.0.1:1080",
                           "--address", "198.18.0.1/15", *extra], ready_addr="198.18.0.1")


def test_without_a_system_bus_one_info_line_and_it_runs(ns, tun2sock_bin, tmp_path,
                                                       monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-such-bus'}")
    t = _start_alone(ns, tun2sock_bin, tmp_path)
    wait_for(lambda: "logind: " in t.output(), "the logind line", proc=t)
    out = t.output()
    assert out.count("logind: ") == 1, out
    assert "sleep is noticed by the clocks only" in out, out
    assert t.alive()
    assert t.stop() == 0, t.output()


def test_no_logind_does_not_try(ns, tun2sock_bin, tmp_path, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-such-bus'}")
    t = _start_alone(ns, tun2sock_bin, tmp_path, "--no-logind", "--log-level", "debug")
    time.sleep(0.5)  # the subscription would be tried at the start of the loop
    assert "logind" not in t.output(), t.output()
    assert t.stop() == 0, t.output()
