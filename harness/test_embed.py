"""Embedding (issue 17): the example host (dist/embed_example.c) built in a fresh directory
against the installed libtun2sock.so found through pkg-config, on a TUN it opened itself, with
a real SOCKS5 proxy (dante) in a second namespace (the world of test_bin_socks.py).

- its protect callback binds every upstream socket to the uplink: curl downloads over IPv4 and
  IPv6 are byte-exact, and every upstream socket went through protect (the library's count,
  the host's own count and the TCP flows agree);
- a protect callback that fails refuses the flow at once and is counted.
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
from test_bin_util import link_exists, listening, need, wait_for

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


def _start_host(world, exe, *extra):
    c = world.c
    h = c.start([str(exe), "t2se0", f"socks5://{PROXY4}:{SOCKS_PORT}", *extra],
                world.tmp / "host.log")
    wait_for(lambda: link_exists(c, "t2se0") and "tun2sock running" in h.output(),
             "the example host's loop", proc=h)
    c.ip("addr", "add", "198.18.0.1/15", "dev", "t2se0")
    c.ip("addr", "add", "fd00:18::1/64", "dev", "t2se0", "nodad")
    c.ip("link", "set", "t2se0", "up")
    c.ip("route", "add", "192.0.2.0/24", "dev", "t2se0")
    c.ip("-6", "route", "add", "2001:db8:80::/48", "dev", "t2se0")
    return h


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
    assert h.stop() == 0, h.output()[-3000:]
    n = _final_counts(h.output())
    assert n["flows"] >= 2 and n["failures"] == 0, n
    # Every upstream socket went through protect: the library's socket count, its protect
    # count and the host's own count are equal; each TCP flow had its socket, and the UDP
    # session its datagram socket.
    assert n["sockets"] == n["calls"] == n["seen"] and n["sockets"] > n["flows"], n
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
