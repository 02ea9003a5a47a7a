"""--fake-dns with the real binary in namespaces (docs/fake-dns.md; layout: E2EWorld in
test_bin_util.py).

The client namespace's resolv.conf names 198.18.0.53, an address inside the TUN's 198.18.0.1/15;
the server namespace's names a dnsmasq beside the proxy, the only resolver that knows
`only-proxy.test` (192.0.2.80, 2001:db8:80::80, an MX). So a name works in the client only if
tun2sock answers A/AAAA itself and the proxy gets the name: curl and getent through dante (whose
log shows the name in the CONNECT), microsocks and `ssh -D`; `dig AAAA` gets a pool address and
an IPv6 connection to it works; `dig MX` is answered by dnsmasq through the proxy (over UDP
ASSOCIATE with dante, over the DNS-over-TCP fallback with microsocks); a UDP client (QUIC-like,
port 4433) by name goes through UDP ASSOCIATE with the name; a pool address no name holds gets
an RST at once; 100,000 distinct names keep the table and the process within the bound.
"""
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from test_bin_util import (E2E_HTTP_PORT, E2E_PROXY4, E2E_SOCKS_PORT, PYTHON, E2EWorld,
                           dante_conf, listening, need, proc_rss_kb, veth, wait_for)

pytestmark = [pytest.mark.root]

NAME = "only-proxy.test"
NAME4 = "udp4.test"  # only an A record: dante relays UDP replies over IPv4 only
RESOLVER = "198.18.0.53"  # in the TUN's 198.18.0.0/15: the engine answers it
SIZE = 200_000

# Sends 100,000 (argv[2]) A queries for distinct names to argv[1]:53, a window at a time, and
# prints how many were answered with an address of 198.19.0.0/16.
BULK = r"""
import socket, struct, sys, time
server, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2.0)
def q(i):
    name = b"".join(bytes([len(l)]) + l for l in (b"n%d" % i, b"bulk", b"test")) + b"\0"
    return struct.pack(">HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0) + name + b"\0\1\0\1"
ok = 0
deadline = time.monotonic() + 120
i = 0
while i < n and time.monotonic() < deadline:
    w = min(64, n - i)
    for k in range(w):
        s.sendto(q(i + k), (server, 53))
    for k in range(w):
        try:
            a = s.recv(600)
        except socket.timeout:
            break
        if len(a) >= 4 and a[-4:-2] == b"\xc6\x13":
            ok += 1
    i += w
print(ok)
"""

# A UDP round trip by name: sends to (name, port), prints the echo.
UDP_PROBE = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
ai = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0]
s = socket.socket(ai[0], socket.SOCK_DGRAM)
s.settimeout(3.0)
for attempt in range(3):
    s.sendto(b"quic-like hello", ai[4])
    try:
        data, src = s.recvfrom(2048)
        print(ai[4][0], src[0], data.decode())
        break
    except socket.timeout:
        continue
"""

UDP_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)  # the proxy may resolve either family
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
while True:
    data, src = s.recvfrom(2048)
    print("got", data.decode(errors="replace"), file=sys.stderr, flush=True)
    s.sendto(b"echo " + data, src)
"""

PROBE = r"""
import json, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET)
s.settimeout(5)
t0 = time.monotonic()
try:
    s.connect((host, port)); outcome = "connected"
except ConnectionRefusedError: outcome = "refused"
except ConnectionResetError: outcome = "reset"
except socket.timeout: outcome = "timeout"
print(json.dumps({"outcome": outcome, "elapsed": time.monotonic() - t0}))
"""


@pytest.fixture(scope="module")
def www(tmp_path_factory):
    d = tmp_path_factory.mktemp("www")
    data = os.urandom(SIZE)
    (d / "f.bin").write_bytes(data)
    return d, hashlib.sha256(data).hexdigest()


def _netns_file(ns, name, text):
    d = Path("/etc/netns") / ns.name
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)


@pytest.fixture
def world(tmp_path, www):
    need("curl", "ss", "dig", "getent", "dnsmasq")
    w = E2EWorld(tmp_path, "fdns")
    try:
        # `ip netns exec` mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf.
        _netns_file(w.c, "resolv.conf", f"nameserver {RESOLVER}\noptions timeout:2 attempts:2\n")
        _netns_file(w.c, "hosts", "127.0.0.1 localhost\n")
        _netns_file(w.s, "resolv.conf", f"nameserver {E2E_PROXY4}\n")
        _netns_file(w.s, "hosts", "127.0.0.1 localhost\n")
        w.start_origin(www[0])
        dns = w.s.start(["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--pid-file=",
                         f"--listen-address={E2E_PROXY4}", "--bind-interfaces", "--user=root",
                         f"--address=/{NAME}/192.0.2.80", f"--address=/{NAME}/2001:db8:80::80",
                         f"--mx-host={NAME},mail.{NAME},10", f"--address=/{NAME4}/192.0.2.80",
                         "--log-queries",
                         "--log-facility=-"], tmp_path / "dnsmasq.log")
        w.wait_listen(53, dns, "dnsmasq", proto="u")
        yield w
    finally:
        w.close()
        for ns in (w.c, w.s):
            shutil.rmtree(Path("/etc/netns") / ns.name, ignore_errors=True)


def _start(world, binary, proxy, *extra):
    world.start_tun2sock(binary, proxy, "--fake-dns", "--dns-hijack", f"{E2E_PROXY4}:53", *extra)
    world.c.ip("-6", "route", "add", "fd00:19::/64", "dev", "t2s0")


def _getent(world, db="ahostsv4"):
    r = world.c.run("getent", db, NAME, check=False, timeout=15)
    assert r.returncode == 0, f"getent {db} {NAME}: {r.stdout}{r.stderr}\n{world.log_tail()}"
    return r.stdout.split()[0]


def _curl_ok(world, sha, *opts):
    r = world.c.run("sh", "-c", f"curl -sS --max-time 20 {' '.join(opts)} "
                    f"http://{NAME}:{E2E_HTTP_PORT}/f.bin | sha256sum", check=False, timeout=30)
    assert r.returncode == 0 and r.stdout.split()[0] == sha, \
        f"curl {opts}: {r.stdout}{r.stderr}\n{world.log_tail()}"


def _dig(world, qtype, *extra):
    r = world.c.run("dig", "+short", "+time=3", "+tries=2", f"@{RESOLVER}", qtype, NAME, *extra,
                    check=False, timeout=20)
    return r.stdout.strip()


def _start_dante_logging(world):
    """dante logging every request as it arrives (debug: 1 prints its ATYP and address)."""
    conf = "debug: 1\n" + dante_conf([E2E_PROXY4]).replace(
        "command: connect udpassociate udpreply bindreply }",
        "command: connect udpassociate udpreply bindreply\n log: connect disconnect error }")
    path = world.tmp / "danted.conf"
    path.write_text(conf)
    d = world.s.start(["danted", "-f", str(path), "-N", "1", "-p", str(world.tmp / "d.pid")],
                      world.tmp / "danted.log")
    world.wait_listen(E2E_SOCKS_PORT, d, "dante")
    return d


def test_names_resolved_only_beside_the_proxy_work_through_dante(world, tun2sock_bin, www):
    need("danted")
    _start_dante_logging(world)
    _start(world, tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    a = _getent(world)
    assert a.startswith("198.19."), a
    _curl_ok(world, www[1], "-4")
    # dante's log (debug: 1 prints each request) shows the CONNECT by name, ATYP 3.
    want = f"CMD: 1 FLAG: 0 ATYP: 3 address: {NAME}.{E2E_HTTP_PORT}"
    wait_for(lambda: want in (world.tmp / "danted.log").read_text(), "the name in dante's log")
    log = (world.tmp / "danted.log").read_text()
    assert a not in log, log[-2000:]
    # AAAA: a pool address, and an IPv6 connection to it works.
    aaaa = _dig(world, "AAAA")
    assert aaaa.startswith("fd00:19::"), aaaa
    _curl_ok(world, www[1], "-6")
    # MX: answered by dnsmasq, through the proxy (UDP ASSOCIATE).
    mx = _dig(world, "MX")
    assert f"mail.{NAME}" in mx, f"{mx}\n{world.log_tail()}"
    # A pool address no name holds: reset at once.
    r = world.c.run(PYTHON, "-c", PROBE, "198.19.200.200", str(E2E_HTTP_PORT), timeout=20)
    res = json.loads(r.stdout)
    assert res["outcome"] in ("reset", "refused") and res["elapsed"] < 1.0, res
    s = world.stats()
    fd = s["fake_dns"]
    assert fd["flows"] >= 2 and fd["stale"] == 1 and fd["forwarded"] >= 1, fd
    assert fd["answered"] >= 2, fd
    assert s["packets_dropped"]["fake_dns_stale"] == 1, s["packets_dropped"]


def test_the_names_survive_a_network_change(world, tun2sock_bin, www):
    """The route to the proxy moves to a second uplink (a Wi-Fi => Ethernet change): flows are
    reset as the policy says, but the table keeps every name, so an address handed out before
    the change still connects by name after it, without a new query."""
    need("danted")
    veth(world.c, "198.51.100.1/24", world.s, "198.51.100.2/24", a_dev="va2", b_dev="vb2")
    _start_dante_logging(world)
    _start(world, tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    a = _getent(world)
    _curl_ok(world, www[1], "-4")
    before = world.stats()
    world.c.ip("route", "add", f"{E2E_PROXY4}/32", "via", "198.51.100.2", "dev", "va2")
    wait_for(lambda: world.stats()["network_changes"] > before["network_changes"],
             "the change counted")
    _curl_ok(world, www[1], "-4", "--resolve", f"{NAME}:{E2E_HTTP_PORT}:{a}")
    after = world.stats()
    assert after["fake_dns"]["entries"] == before["fake_dns"]["entries"], after["fake_dns"]
    assert after["fake_dns"]["answered"] == before["fake_dns"]["answered"], after["fake_dns"]
    assert after["fake_dns"]["flows"] > before["fake_dns"]["flows"], after["fake_dns"]
    assert after["fake_dns"]["stale"] == 0
    # The new flow's upstream socket left through the second uplink.
    r = world.c.run("ss", "-tnH", "dst", f"{E2E_PROXY4}:{E2E_SOCKS_PORT}", check=False)
    print(f"\nsockets to the proxy after the change:\n{r.stdout}")


def test_udp_by_name_goes_through_udp_associate_with_the_name(world, tun2sock_bin):
    """A QUIC-like UDP client by name: the datagram reaches the destination through dante's UDP
    ASSOCIATE addressed to the name (ATYP 3). dante 1.4.2 relays no reply to a datagram it got
    by name (observed: it sends, the echo answers, dante forwards nothing back), so the reply
    path (from the pool address) is shown by tests/test_engine_fakedns.c udp_by_name."""
    need("danted")
    _start_dante_logging(world)
    script = world.tmp / "echo.py"
    script.write_text(UDP_ECHO)
    echo = world.s.start([PYTHON, str(script), "4433"], world.tmp / "echo.log")
    world.wait_listen(4433, echo, "the UDP echo", proto="u")
    _start(world, tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    world.c.run(PYTHON, "-c", UDP_PROBE, NAME4, "4433", check=False, timeout=20)
    wait_for(lambda: "got quic-like hello" in echo.output(), "the datagram at the destination",
             proc=echo)
    # The relay got the datagram for the name (ATYP 3), from a pool address the client used.
    log = (world.tmp / "danted.log").read_text()
    assert f"for target {NAME4}.4433" in log, log[-3000:]
    fd = world.stats()["fake_dns"]
    assert fd["flows"] >= 1 and fd["stale"] == 0, fd


def test_names_through_microsocks_without_udp(world, tun2sock_bin, www):
    need("microsocks")
    world.start_microsocks()
    _start(world, tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    assert _getent(world).startswith("198.19.")
    _curl_ok(world, www[1], "-4")
    # No UDP at the proxy: MX goes over the DNS-over-TCP fallback, to dnsmasq by CONNECT.
    mx = ""
    for _ in range(3):  # the first query may be the one that finds out there is no UDP
        mx = _dig(world, "MX")
        if f"mail.{NAME}" in mx:
            break
    assert f"mail.{NAME}" in mx, f"{mx}\n{world.log_tail()}"


def test_dig_and_kdig_over_tcp_are_answered_by_the_engine(world, tun2sock_bin):
    """DNS over TCP to port 53 is answered by the engine itself (engine_fakedns_tcp.c): `dig
    +tcp` and `kdig +tcp` get pool addresses, several queries on one connection (`dig
    +keepopen`) too, and MX over TCP is forwarded through the proxy (microsocks, no UDP) to
    dnsmasq on a stream of the connection's own."""
    need("microsocks", "kdig")
    world.start_microsocks()
    _start(world, tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    a = _dig(world, "A", "+tcp")
    assert a.startswith("198.19."), f"{a}\n{world.log_tail()}"
    r = world.c.run("kdig", "+tcp", "+short", "+timeout=3", "+retry=1", f"@{RESOLVER}", "AAAA",
                    NAME, check=False, timeout=20)
    assert r.stdout.strip().startswith("fd00:19::"), f"{r.stdout}{r.stderr}"
    r = world.c.run("kdig", "+tcp", "+short", "+timeout=3", "+retry=1", f"@{RESOLVER}", "A",
                    NAME, check=False, timeout=20)
    assert r.stdout.strip() == a, f"{r.stdout}{r.stderr}"  # the same name, the same address
    r = world.c.run("dig", "+tcp", "+keepopen", "+short", "+time=3", "+tries=1", f"@{RESOLVER}",
                    "k1.test", "A", "k2.test", "A", "k3.test", "AAAA", check=False, timeout=20)
    got = r.stdout.split()
    assert len(got) == 3 and got[0].startswith("198.19.") and got[1].startswith("198.19.") \
        and got[2].startswith("fd00:19::") and got[0] != got[1], r.stdout + r.stderr
    mx = _dig(world, "MX", "+tcp")
    assert f"mail.{NAME}" in mx, f"{mx}\n{world.log_tail()}"
    fd = world.stats()["fake_dns"]
    assert fd["answered"] >= 6 and fd["forwarded"] >= 1, fd


def test_names_through_ssh_dynamic_forwarding(world, tun2sock_bin, www):
    need("sshd", "ssh", "ssh-keygen")
    key = world.start_sshd(addr=E2E_PROXY4)
    ssh = world.c.start(["ssh", "-N", "-D", "127.0.0.1:1082", "-p", "12222",
                         *world.ssh_opts(key), "-o", "ExitOnForwardFailure=yes",
                         f"root@{E2E_PROXY4}"], world.tmp / "ssh-D.log")
    wait_for(lambda: listening(world.c, 1082), "ssh -D", proc=ssh)
    _start(world, tun2sock_bin, "socks5://127.0.0.1:1082")
    assert _getent(world).startswith("198.19.")
    _curl_ok(world, www[1], "-4")


def test_100000_names_stay_within_the_table_bound(world, tun2sock_bin):
    need("microsocks")
    world.start_microsocks()
    _start(world, tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}", "--fake-dns-size",
           "1000")
    script = world.tmp / "bulk.py"
    script.write_text(BULK)
    r = world.c.run(PYTHON, str(script), RESOLVER, "2000", timeout=60)
    rss_before = proc_rss_kb(world.t2s.pid)
    t0 = time.monotonic()
    r = world.c.run(PYTHON, str(script), RESOLVER, "100000", timeout=150)
    elapsed = time.monotonic() - t0
    rss_after = proc_rss_kb(world.t2s.pid)
    answered = int(r.stdout.strip())
    fd = world.stats()["fake_dns"]
    print(f"\n100,000 names: {answered} answered in {elapsed:.1f} s; rss {rss_before} -> "
          f"{rss_after} kB; table {fd}")
    assert answered >= 99_000, answered
    assert fd["entries"] == 1000 and fd["recycled"] >= 100_000, fd
    assert rss_after - rss_before < 4096, (rss_before, rss_after)
