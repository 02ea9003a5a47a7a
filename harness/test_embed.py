"""Embedding (issue 17): the example host (dist/embed_example.c) built in a fresh directory
against the installed libtun2sock.so found through pkg-config, on a TUN it opened itself, with
a real SOCKS5 proxy (dante) in a second namespace (the world of test_bin_socks.py).

- its protect callback binds every upstream socket to the uplink: curl downloads over IPv4 and
  IPv6 are byte-exact, and every upstream socket went through protect (the library's count,
  the host's own count and the TCP flows agree);
- a protect callback that fails refuses the flow at once and is counted;
- with host-fed network events (TUN2SOCK_MONITOR_HOST) no rtnetlink socket is open, a
  "default interface changed" from the host resets the running flow and new flows work through
  the new uplink, and a pause/resume resets and recovers;
- with packet I/O by callback (API 4: tun2sock gets no fd, the host reads its TUN and calls
  tun2sock_input_packet, the output callback writes to it), protect binding every socket to the
  uplink the host knows and host-fed events, all of the above at once.
"""
import hashlib
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from test_bin_install import _build_example_shared
from test_bin_socks import HTTP_PORT, ORIGIN4, ORIGIN6, PROXY4, SOCKS_PORT, World
from test_bin_util import link_exists, listening, need, veth, wait_for

pytestmark = [pytest.mark.root]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    build = Path(os.environ.get("T2S_BUILD_DIR", ROOT / "build"))
    if not (build / "tun2sock").exists():
        pytest.fail(f"{build}/tun2sock not built")
    prefix = tmp_path_factory.mktemp("prefix")
    p = subprocess.run(["cmake", "--install", str(build), "--prefix", str(prefix)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return _build_example_shared(prefix, tmp_path_factory.mktemp("example"))


@pytest.fixture
def world(tmp_path):
    need("curl", "ss", "danted")
    w = World(tmp_path)
    yield w
    w.close()


def _start_host(world, exe, *extra, **kw):
    c = world.c
    h = c.start([str(exe), "t2se0", f"socks5://{PROXY4}:{SOCKS_PORT}", *extra],
                world.tmp / "host.log", **kw)
    wait_for(lambda: link_exists(c, "t2se0") and "tun2sock running" in h.output(),
             "the example host's loop", proc=h)
    c.ip("addr", "add", "198.18.0.1/15", "dev", "t2se0")
    c.ip("addr", "add", "fd00:18::1/64", "dev", "t2se0", "nodad")
    c.ip("link", "set", "t2se0", "up")
    c.ip("route", "add", "192.0.2.0/24", "dev", "t2se0")
    c.ip("-6", "route", "add", "2001:db8:80::/48", "dev", "t2se0")
    return h


def _rtnetlink_sockets(pid: int) -> list:
    """The NETLINK_ROUTE sockets among the process's open fds (/proc/PID/fd against
    /proc/PID/net/netlink, whose Eth column is the protocol: 0 = NETLINK_ROUTE)."""
    lines = Path(f"/proc/{pid}/net/netlink").read_text().splitlines()
    head = lines[0].split()
    route_inodes = {int(f[head.index("Inode")]) for f in (l.split() for l in lines[1:])
                    if int(f[head.index("Eth")]) == 0}
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", link)
        if m and int(m.group(1)) in route_inodes:
            found.append(int(fd))
    return found


def _final_counts(out: str) -> dict:
    m = re.search(r"upstream sockets (\d+), protect calls (\d+) \(seen by the host (\d+)\), "
                  r"protect failures (\d+), tcp flows (\d+)", out)
    assert m, out[-3000:]
    return dict(zip(("sockets", "calls", "seen", "failures", "flows"), map(int, m.groups())))


def test_protect_binds_every_upstream_socket_and_downloads_are_exact(world, example):
    world.start_dante()
    h = _start_host(world, example, "protect-bind=va")
    for host in (ORIGIN4, f"[{ORIGIN6}]"):
        out = world.tmp / "big.out"
        r = world.curl(f"http://{host}:{HTTP_PORT}/big.bin", "-o", str(out), timeout=60)
        assert r.returncode == 0, r.stderr + h.output()[-3000:]
        assert hashlib.sha256(out.read_bytes()).hexdigest() == world.big_sha, host
    # A UDP exchange through the proxy's UDP relay: a datagram socket (and its control stream).
    echo = world.p.start(["/usr/bin/python3", "-c",
                          "import socket\n"
                          "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                          f"s.bind(('{ORIGIN4}', 9053))\n"
                          "while True:\n"
                          "    d, a = s.recvfrom(2048); s.sendto(d[::-1], a)\n"],
                         world.tmp / "echo.log")
    wait_for(lambda: listening(world.p, 9053, "u"), "the UDP echo", proc=echo)
    r = world.c.run("/usr/bin/python3", "-c",
                    "import socket\n"
                    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)\n"
                    "for i in range(10):\n"
                    f"    s.sendto(b'protected', ('{ORIGIN4}', 9053))\n"
                    "    try:\n"
                    "        print(s.recv(100).decode()); break\n"
                    "    except socket.timeout: pass\n", check=False, timeout=20)
    assert r.stdout.strip() == "detcetorp", r.stdout + r.stderr + h.output()[-3000:]
    rtnl = _rtnetlink_sockets(h.pid)
    assert h.stop() == 0, h.output()[-3000:]
    n = _final_counts(h.output())
    assert n["flows"] >= 2 and n["failures"] == 0, n
    # Every upstream socket went through protect: the library's socket count, its protect
    # count and the host's own count are equal; each TCP flow had its socket, and the UDP
    # session its datagram socket.
    assert n["sockets"] == n["calls"] == n["seen"] and n["sockets"] > n["flows"], n
    assert rtnl, "the rtnetlink monitor's socket is seen in /proc (the check of host mode)"
    bound = [l for l in h.output().splitlines() if l.startswith("protect: fd ")]
    assert len(bound) == n["seen"] and all(l.endswith("bound to va") for l in bound), bound
    assert any("(datagram)" in l for l in bound) and \
        sum("(stream)" in l for l in bound) >= n["flows"], bound


def test_failing_protect_refuses_the_flow_and_is_counted(world, example):
    world.start_dante()
    h = _start_host(world, example, "protect-fail")
    t0 = time.monotonic()
    r = world.curl(f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt")
    took = time.monotonic() - t0
    assert r.returncode != 0 and r.stdout == "", r.stdout
    assert took < 8, f"refused at once, not after a timeout ({took:.1f} s)"
    assert "refused" in h.output()
    assert h.stop() == 0, h.output()[-3000:]
    n = _final_counts(h.output())
    assert n["failures"] >= 1 and n["failures"] == n["calls"] == n["seen"], n


def _slow_download(world, name):
    """A 4 MiB download at 200 KiB/s (about 20 s): a flow that is open when the network moves.
    curl limits how fast it reads, not the transfer: with the default receive buffer (up to
    6 MiB) the whole file lands in the client's socket within a second and the flow is closed
    before the change. A small buffer in the client namespace keeps the flow open."""
    world.c.run("sysctl", "-q", "-w", "net.ipv4.tcp_rmem=4096 32768 65536")
    out = world.tmp / f"{name}.out"
    p = world.c.start(["curl", "-sS", "--max-time", "60", "--limit-rate", "200k", "-o", str(out),
                       f"http://{ORIGIN4}:{HTTP_PORT}/big.bin"], world.tmp / f"{name}.log")
    wait_for(lambda: out.exists() and out.stat().st_size > 100_000, f"{name} under way", proc=p)
    return p


def _tell(h, line):
    h.p.stdin.write(line + "\n")
    h.p.stdin.flush()
    wait_for(lambda: f"host: {line} -> 0" in h.output(), f"the host's '{line}'", proc=h)


def _host_fed_change_and_sleep(world, h):
    """The host says "the default interface changed" to va2 (the proxy is reachable through
    it): the running flow is reset and new ones leave through va2. Then pause / resume: the
    flow open across the sleep is reset and new flows work after. rtnetlink stays closed."""
    world.c.ip("route", "add", f"{PROXY4}/32", "via", "198.51.100.2", "dev", "va2")
    dl = _slow_download(world, "before-change")
    _tell(h, "net va2")
    wait_for(lambda: not dl.alive(), "the flow's reset", timeout=15, proc=h)
    assert dl.p.returncode != 0, dl.output()
    wait_for(lambda: "listener: default interface va2" in h.output(), "the decision", proc=h)
    before = int(world.c.run("cat", "/sys/class/net/va2/statistics/tx_bytes").stdout)
    world.get_hello(h)
    after = int(world.c.run("cat", "/sys/class/net/va2/statistics/tx_bytes").stdout)
    assert after - before > 300, "the new flow did not leave through va2"

    # Pause / resume: the flow open across the sleep is reset; new flows work after.
    dl = _slow_download(world, "before-sleep")
    _tell(h, "pause")
    wait_for(lambda: "listener: network paused" in h.output(), "on_network_paused", proc=h)
    _tell(h, "resume 5000")
    wait_for(lambda: "listener: network resumed after 5000 ms" in h.output(),
             "on_network_resumed", proc=h)
    wait_for(lambda: not dl.alive(), "the reset at resume", timeout=15, proc=h)
    assert dl.p.returncode != 0, dl.output()
    world.get_hello(h)
    assert _rtnetlink_sockets(h.pid) == []


def test_host_fed_events_reset_and_recover_without_rtnetlink(world, example):
    world.start_dante()
    # A second uplink to the proxy's network, used once the host says so (sockets bound to it).
    veth(world.c, "198.51.100.1/24", world.p, "198.51.100.2/24", a_dev="va2", b_dev="vb2")
    h = _start_host(world, example, "host-events", stdin=subprocess.PIPE, text=True)
    wait_for(lambda: "listener: default interface va" in h.output(), "the start", proc=h)
    assert _rtnetlink_sockets(h.pid) == [], "host mode opened an rtnetlink socket"
    world.get_hello(h)

    _host_fed_change_and_sleep(world, h)
    h.p.stdin.close()
    assert h.stop() == 0, h.output()[-3000:]
    m = re.search(r"flows reset (\d+)", h.output())
    assert m and int(m.group(1)) >= 2, h.output()[-3000:]


def _download_both(world, h):
    for host in (ORIGIN4, f"[{ORIGIN6}]"):
        out = world.tmp / "big.out"
        r = world.curl(f"http://{host}:{HTTP_PORT}/big.bin", "-o", str(out), timeout=60)
        assert r.returncode == 0, r.stderr + h.output()[-3000:]
        assert hashlib.sha256(out.read_bytes()).hexdigest() == world.big_sha, host


def test_packet_callbacks_protect_and_host_events_without_rtnetlink(world, example):
    """The host owns the TUN and moves every packet itself (tun2sock_input_packet from its
    reader thread, config.output to write), binds every upstream socket to its uplink in
    protect, and feeds the network events; rtnetlink is off."""
    world.start_dante()
    veth(world.c, "198.51.100.1/24", world.p, "198.51.100.2/24", a_dev="va2", b_dev="vb2")
    h = _start_host(world, example, "packets", "protect-bind=va", "host-events",
                    stdin=subprocess.PIPE, text=True)
    wait_for(lambda: "listener: default interface va" in h.output(), "the start", proc=h)
    assert "tun2sock running: callbacks" in h.output(), "not in packet-callback mode"
    # The library mapped is the installed one (pkg-config's libdir in the temporary prefix).
    libs = {l.split()[-1] for l in Path(f"/proc/{h.pid}/maps").read_text().splitlines()
            if "libtun2sock.so" in l}
    build = Path(os.environ.get("T2S_BUILD_DIR", ROOT / "build")).resolve()
    assert libs and all("/prefix" in x and not x.startswith(str(build)) for x in libs), libs
    assert _rtnetlink_sockets(h.pid) == [], "host mode opened an rtnetlink socket"

    # Byte-exact downloads over IPv4 and IPv6, every packet through the callbacks.
    _download_both(world, h)

    _host_fed_change_and_sleep(world, h)
    h.p.stdin.close()
    assert h.stop() == 0, h.output()[-3000:]
    out = h.output()
    m = re.search(r"flows reset (\d+)", out)
    assert m and int(m.group(1)) >= 2, out[-3000:]
    # Every upstream socket went through protect, bound to the uplink of its time.
    n = _final_counts(out)
    assert n["failures"] == 0 and n["flows"] >= 6, n
    assert n["sockets"] == n["calls"] == n["seen"] and n["sockets"] >= n["flows"], n
    bound = [l for l in out.splitlines() if l.startswith("protect: fd ")]
    assert len(bound) == n["seen"], bound
    assert all(l.endswith(("bound to va", "bound to va2")) for l in bound), bound
    assert any(l.endswith("bound to va2") for l in bound), bound
    # The packets went through the callbacks: two 4 MiB downloads are > 5,700 segments out
    # (MTU 1500, no offloads) and their ACKs in.
    m = re.search(r"packets: input (\d+) \(refused (\d+), dropped by the host (\d+)\), "
                  r"output (\d+) \(errors (\d+), write errors (\d+)\)", out)
    assert m, out[-3000:]
    pin, _refused, pdrop, pout, perr, pwerr = map(int, m.groups())
    assert pin > 500 and pout > 5000 and perr == 0 and pwerr == 0, m.group(0)
    assert pdrop == 0, m.group(0)
