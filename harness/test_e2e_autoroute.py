"""--auto-route end to end (docs/auto-route.md): real namespaces, real clients, a capture on the
client's physical veth.

    client ns "c": va 203.0.113.1/24 fd00:1::1/64, default routes via the server side;
                   tun2sock on t2s0 (198.18.0.1/15, fd00:18::1/64) with --auto-route
    server ns "s": vb 203.0.113.2/24 fd00:1::2/64; on lo: the origin 192.0.2.80 and
                   2001:db8:80::80 (HTTP 8080, iperf3 5201), a DNS server 192.0.2.53 (dnsmasq),
                   the proxy (dante 203.0.113.2:1080, or ss-server for the ss-local test)

The client namespace has direct routes to everything, so any flow that escapes the tunnel shows
up on va. Namespaces are named t2sar-<pid>-<n>-<tag> and removed by the test that made them.
"""
import difflib
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import List

import pytest

from test_bin_util import (E2E_ORIGIN_PY, PYTHON, Netns, Process, listening,
                           need as _need, run, start_dante, start_tun2sock, veth,
                           wait_for)

pytestmark = [pytest.mark.root, pytest.mark.slow]

ORIGIN4, ORIGIN6, HTTP_PORT = "192.0.2.80", "2001:db8:80::80", 8080
DNS4 = "192.0.2.53"
PROXY4, PROXY6, SOCKS_PORT = "203.0.113.2", "fd00:1::2", 1080
NOWHERE_DNS = "198.51.100.99"  # no such server: answered only through --dns-hijack
MARK = "0x2022"
_n = itertools.count()


class ArNetns(Netns):
    """A Netns with this module's prefix (t2sar-)."""

    def __init__(self, tag: str):  # noqa: super().__init__ would pick the t2sb- prefix
        self.name = f"t2sar-{os.getpid()}-{next(_n)}-{tag}"[:40]
        self.procs: List[Process] = []
        run(["ip", "netns", "add", self.name])
        self.ip("link", "set", "lo", "up")
        for key in ("all", "default"):
            self.sh(f"sysctl -qw net.ipv4.conf.{key}.rp_filter=0", check=False)


class World:
    def __init__(self, tmp: Path, tag: str, proxy_on_lo: bool = False):
        self.tmp = tmp
        self.c = ArNetns(f"{tag}c")
        self.s = ArNetns(f"{tag}s")
        self.t2s = None
        self.metrics = f"127.0.0.1:{19300 + next(_n) % 500}"
        try:
            veth(self.c, "203.0.113.1/24", self.s, "203.0.113.2/24", "fd00:1::1/64",
                 "fd00:1::2/64")
            self.c.ip("route", "add", "default", "via", "203.0.113.2")
            self.c.ip("-6", "route", "add", "default", "via", "fd00:1::2")
            for a in (ORIGIN4, DNS4) + (("192.0.2.1",) if proxy_on_lo else ()):
                self.s.ip("addr", "add", f"{a}/32", "dev", "lo")
            self.s.ip("addr", "add", f"{ORIGIN6}/128", "dev", "lo", "nodad")
            # The tests compare routing dumps before and after a run: wait until the kernel has
            # put the link-local address (and its local route) in place, so only we change them.
            wait_for(lambda: "fe80::" in self.c.run("ip", "-6", "route", "show", "table",
                                                     "local").stdout
                     and not self.c.run("ip", "-6", "addr", "show", "tentative").stdout.strip(),
                     "the link-local address of va", timeout=10)
        except Exception:
            self.close()
            raise

    def wait_listen(self, port, proc, what, proto="t"):
        wait_for(lambda: listening(self.s, port, proto), what, proc=proc)

    def start_origin(self):
        www = self.tmp / "www"
        www.mkdir(exist_ok=True)
        (www / "hello.txt").write_text("hello through the auto route\n")
        script = self.tmp / "origin.py"
        script.write_text(E2E_ORIGIN_PY)
        p = self.s.start([PYTHON, str(script), str(www), str(HTTP_PORT)], self.tmp / "origin.log")
        self.wait_listen(HTTP_PORT, p, "the HTTP origin")

    def start_dante(self, internal=PROXY4, external="vb"):
        start_dante(self.s, self.tmp, [internal], SOCKS_PORT, external=external)

    def start_dns(self):
        p = self.s.start(["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                          f"--listen-address={DNS4}", "--bind-interfaces",
                          f"--pid-file={self.tmp / 'dnsmasq.pid'}", "--user=root",
                          "--address=/t2s.test/192.0.2.80", "--log-queries"],
                         self.tmp / "dnsmasq.log")
        self.wait_listen(53, p, "dnsmasq (udp)", proto="u")

    def start_iperf(self):
        p = self.s.start(["iperf3", "-s", "-B", ORIGIN4, "-p", "5201"], self.tmp / "iperf3s.log")
        self.wait_listen(5201, p, "iperf3 -s")

    def start_tun2sock(self, binary, proxy_url, *extra, log="tun2sock.log"):
        self.t2s = start_tun2sock(
            self.c, binary, self.tmp / log,
            ["--device", "t2s0", "--proxy", proxy_url, "--address", "198.18.0.1/15",
             "--address", "fd00:18::1/64", "--metrics", self.metrics, "--auto-route", *extra],
            ready_addr="fd00:18::1")
        wait_for(lambda: "9003:" in self.c.run("ip", "rule", check=False).stdout,
                 "the auto-route rules", proc=self.t2s)
        return self.t2s

    def stats(self) -> dict:
        r = self.c.run("curl", "-sf", "--max-time", "5", f"http://{self.metrics}/stats")
        return json.loads(r.stdout)

    def loop_guard(self) -> int:
        return int(self.stats()["packets_dropped"]["loop_guard"])

    def curl(self, url, *extra, timeout=30):
        return self.c.run("curl", "-sS", "--max-time", "15", "--connect-timeout", "8", *extra,
                          url, check=False, timeout=timeout)

    def dumps(self) -> str:
        """ip rule and every routing table, both families."""
        out = []
        for cmd in (["ip", "-4", "rule"], ["ip", "-6", "rule"],
                    ["ip", "-4", "route", "show", "table", "all"],
                    ["ip", "-6", "route", "show", "table", "all"]):
            out.append("$ " + " ".join(cmd) + "\n" + self.c.run(*cmd).stdout)
        return "\n".join(out)

    def log(self) -> str:
        return "" if self.t2s is None else self.t2s.output()[-6000:]

    def close(self):
        self.c.close()
        self.s.close()


def wait_dumps_equal(world, before: str, what: str, timeout: float):
    """Waits (bounded) until world.dumps() equals before; on timeout shows what differs."""
    deadline = time.monotonic() + timeout
    now = world.dumps()
    while now != before and time.monotonic() < deadline:
        time.sleep(0.05)
        now = world.dumps()
    diff = "\n".join(difflib.unified_diff(before.splitlines(), now.splitlines(), "before", "now",
                                          lineterm=""))
    assert now == before, f"{what}: still different after {timeout}s:\n{diff}"


@pytest.fixture
def world(tmp_path):
    _need("danted", "curl", "ss")
    w = World(tmp_path, "m")
    yield w
    w.close()


# ---------------------------------------------------------------------------------------------
# Options (no root needed)

@pytest.mark.parametrize("args,msg", [
    (["--route-exclude", "10.0.0.0/8"], "needs --auto-route"),
    (["--exclude-uid", "1000"], "needs --auto-route"),
    (["--auto-route", "--route-table", "254"], "--route-table"),
    (["--auto-route", "--route-priority", "40000"], "--route-priority"),
    (["--auto-route", "--exclude-uid", "9-1"], "--exclude-uid"),
    (["--auto-route", "--route-exclude", "10.0.0.0/33"], "--route-exclude"),
    (["--auto-route", "--fwmark", "0"], "nonzero"),
    (["--dns-hijack=not-an-ip"], "--dns-hijack"),
])
def test_bad_auto_route_options_exit_2(tun2sock_bin, args, msg):
    p = subprocess.run([str(tun2sock_bin), "--device", "t2s9", "--proxy",
                        "socks5://192.0.2.1:1080", *args], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 2, p.stderr
    assert msg in p.stderr


# ---------------------------------------------------------------------------------------------
# Everything through the tunnel

# What a capture may show besides the proxy's traffic: ARP, IPv6 neighbour discovery and router
# solicitation (ICMPv6 133-137), MLD (130-132, 143; MLDv2 reports carry a hop-by-hop header).
LINK_NOISE = ("arp or (icmp6 and ip6[40] >= 130 and ip6[40] <= 143) or "
              "(ip6 and ip6[6] == 0 and ip6[40] == 58 and ip6[48] >= 130 and ip6[48] <= 143)")


def _read(pcap: Path, bpf: str, count: int = 0) -> List[str]:
    """The packets of pcap that match bpf, one summary line each (tcpdump -r, fast)."""
    cmd = ["tcpdump", "-r", str(pcap), "-n", "-q"] + (["-c", str(count)] if count else [])
    p = run(cmd + [bpf], timeout=60)
    return [x for x in p.stdout.splitlines() if x.strip()]


def _hosts(proxies) -> str:
    return " or ".join(f"host {a}" for a in proxies)


def _escaped(pcap: Path, proxies) -> List[str]:
    """Packets on the capture that are neither link noise nor to or from the proxy."""
    return _read(pcap, f"not ({LINK_NOISE}) and not ({_hosts(proxies)})", count=50)


def _proxy_packets(pcap: Path, proxies) -> int:
    return len(_read(pcap, _hosts(proxies), count=10))


def _port53_on_wire(pcap: Path) -> List[str]:
    return _read(pcap, "port 53", count=20)


def start_capture(ns: Netns, dev: str, pcap: Path, tmp: Path) -> Process:
    cap = ns.start(["tcpdump", "-i", dev, "-n", "-U", "-s", "128", "-w", str(pcap)],
                   tmp / f"tcpdump-{dev}.log")
    wait_for(lambda: "listening on" in cap.output(), f"tcpdump on {dev}", proc=cap)
    return cap


def test_curl_dig_ping_iperf3_only_through_the_tunnel(world, tun2sock_bin, tmp_path):
    _need("tcpdump", "dig", "iperf3", "dnsmasq", "ping")
    world.start_origin()
    world.start_dante()
    world.start_dns()
    world.start_iperf()
    # Control: without tun2sock the client reaches everything directly (so a leak would work),
    # and the capture check sees such flows.
    control = tmp_path / "control.pcap"
    cap = start_capture(world.c, "va", control, tmp_path)
    assert world.curl(f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt").returncode == 0
    world.c.run("dig", "+short", "+time=2", "+tries=1", f"@{DNS4}", "www.t2s.test", check=False)
    wait_for(lambda: _escaped(control, {PROXY4, PROXY6}) and _port53_on_wire(control),
             "the leak detector to see the direct flow and the direct DNS", timeout=5)
    cap.stop()
    pcap = tmp_path / "va.pcap"
    cap = start_capture(world.c, "va", pcap, tmp_path)
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}",
                             "--dns-hijack", DNS4, "--log-level", "debug")
    try:
        r = world.curl(f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt")
        assert r.returncode == 0 and r.stdout == "hello through the auto route\n", \
            r.stderr + world.log()
        r = world.curl(f"http://[{ORIGIN6}]:{HTTP_PORT}/hello.txt")
        assert r.returncode == 0, r.stderr + world.log()
        # DNS over TCP, to the real server and to one that does not exist (hijacked).
        for server in (DNS4, NOWHERE_DNS):
            r = world.c.run("dig", "+tcp", "+short", "+time=3", "+tries=2", f"@{server}",
                            "www.t2s.test", "A", check=False)
            assert r.stdout.strip() == ORIGIN4, f"dig +tcp @{server}: {r.stdout}{r.stderr}"
        # DNS over UDP: through dante's UDP ASSOCIATE.
        for server in (DNS4, NOWHERE_DNS):
            r = world.c.run("dig", "+short", "+time=3", "+tries=2", f"@{server}",
                            "www.t2s.test", "A", check=False)
            assert r.stdout.strip() == ORIGIN4, f"dig @{server}: {r.stdout}{r.stderr}"
        r = world.c.run("ping", "-c", "3", "-i", "0.2", "-W", "2", ORIGIN4, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        r = world.c.run("ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", ORIGIN6, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        r = world.c.run("iperf3", "-c", ORIGIN4, "-p", "5201", "-t", "3", "--connect-timeout",
                        "5000", check=False, timeout=40)
        assert r.returncode == 0, r.stdout + r.stderr + world.log()
        st = world.stats()
        assert st["packets_dropped"]["loop_guard"] == 0
        assert st["tcp_flows_total"] >= 5, st  # 2 curl, 2 dig +tcp, iperf3 control and data
        assert st["icmp_echo_replies"] >= 6, st
    finally:
        time.sleep(0.3)
        cap.stop()
    assert _proxy_packets(pcap, {PROXY4, PROXY6}) > 0, "the capture saw nothing at all"
    escaped = _escaped(pcap, {PROXY4, PROXY6})
    assert not escaped, "flows outside the tunnel on va:\n" + "\n".join(escaped[:20])
    assert not _port53_on_wire(pcap), "DNS on the wire"
    assert t.stop() == 0, world.log()


# ---------------------------------------------------------------------------------------------
# Loop guard

def test_loop_guard_counts_a_forced_loop_and_recovers(world, tun2sock_bin):
    world.start_origin()
    world.start_dante()
    world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}")
    url = f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt"
    assert world.curl(url).returncode == 0, world.log()
    assert world.loop_guard() == 0
    # Force the loop: a route in main sends the proxy's address into the TUN, and a client
    # connects to the proxy's own address and port: the flow would be carried to the proxy
    # through the proxy, forever.
    world.c.ip("route", "add", f"{PROXY4}/32", "dev", "t2s0")
    t0 = time.monotonic()
    r = world.curl(f"http://{PROXY4}:{SOCKS_PORT}/")
    assert r.returncode != 0, "a flow to the proxy itself through the TUN must be refused"
    assert time.monotonic() - t0 < 5, "a loop must be cut at once, not time out"
    n = world.loop_guard()
    assert n >= 1, world.log()
    # Our own upstream sockets are bound to the route's interface and marked: the same route
    # does not pull them into the TUN, so ordinary flows keep working meanwhile.
    r = world.curl(url)
    assert r.returncode == 0, r.stderr + world.log()
    assert world.loop_guard() == n, "ordinary flows never trip the guard"
    world.c.ip("route", "del", f"{PROXY4}/32", "dev", "t2s0")
    r = world.curl(url)
    assert r.returncode == 0, r.stderr + world.log()
    assert world.loop_guard() == n
    assert world.t2s.alive()


# ---------------------------------------------------------------------------------------------
# Include and exclude

def _route_dev(ns: Netns, dst: str) -> str:
    words = ns.run("ip", "route", "get", dst).stdout.split()
    return words[words.index("dev") + 1]


def test_route_include_and_exclude(world, tun2sock_bin):
    world.start_origin()
    world.start_dante()
    url = f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt"
    # Only 192.0.2.0/24 is tunnelled, except the origin itself.
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}",
                             "--route-include", "192.0.2.0/24", "--route-exclude",
                             f"{ORIGIN4}/32")
    assert _route_dev(world.c, "192.0.2.81") == "t2s0"
    assert _route_dev(world.c, ORIGIN4) == "va"       # excluded inside the included range
    assert _route_dev(world.c, "198.51.100.7") == "va"  # not included
    assert _route_dev(world.c, PROXY4) == "va"
    assert _route_dev(world.c, "127.0.0.1") == "lo"
    r = world.curl(url)
    assert r.returncode == 0, r.stderr + world.log()
    assert world.stats()["tcp_flows_total"] == 0, "the excluded origin is reached directly"
    assert t.stop() == 0
    # Everything (the default) but a range: the origin now goes through the tunnel.
    world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}", "--route-exclude",
                         "198.51.100.0/24", log="tun2sock-2.log")
    assert _route_dev(world.c, ORIGIN4) == "t2s0"
    assert _route_dev(world.c, "198.51.100.7") == "va"
    r = world.curl(url)
    assert r.returncode == 0, r.stderr + world.log()
    assert world.stats()["tcp_flows_total"] == 1


def test_ipv6_proxy_is_excluded_and_both_families_tunnel(world, tun2sock_bin):
    world.start_origin()
    world.start_dante(internal=PROXY6)
    world.start_tun2sock(tun2sock_bin, f"socks5://[{PROXY6}]:{SOCKS_PORT}")
    table6 = world.c.run("ip", "-6", "route", "show", "table", "2022").stdout
    assert f"throw {PROXY6}" in table6, table6
    words = world.c.run("ip", "-6", "route", "get", PROXY6).stdout.split()
    assert words[words.index("dev") + 1] == "va"
    for url in (f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt",
                f"http://[{ORIGIN6}]:{HTTP_PORT}/hello.txt"):
        r = world.curl(url)
        assert r.returncode == 0, r.stderr + world.log()
    assert world.stats()["tcp_flows_total"] == 2
    assert world.loop_guard() == 0


# ---------------------------------------------------------------------------------------------
# Restore on every way out

def test_rules_and_routes_restored_after_sigterm_and_after_sigkill(world, tun2sock_bin):
    world.start_origin()
    world.start_dante()
    before = world.dumps()
    url = f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt"

    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}",
                             "--route-exclude", "198.51.100.0/24", "--exclude-uid", "65534")
    during = world.dumps()
    assert "lookup 2022" in during and f"fwmark {MARK} lookup main" in during, during
    assert "throw 198.51.100.0/24" in during and "uidrange 65534-65534" in during, during
    assert world.curl(url).returncode == 0, world.log()
    assert t.stop() == 0, world.log()
    wait_dumps_equal(world, before, "the dumps after SIGTERM", timeout=15)

    # SIGKILL: nothing runs at exit; the next start finds the leftovers by table and priority.
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}",
                             log="tun2sock-killed.log")
    t.signal(signal.SIGKILL)
    t.p.wait(timeout=5)
    left = world.dumps()
    assert "lookup 2022" in left, "SIGKILL must leave the rules behind (or the test proves nothing)"
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}",
                             log="tun2sock-again.log")
    assert "stale" in t.output(), t.output()
    assert world.curl(url).returncode == 0, world.log()
    again = world.dumps()
    assert again.count("lookup 2022") == 2, again  # one per family, no duplicates
    t.signal(signal.SIGINT)
    assert t.p.wait(timeout=10) == 0, t.output()
    wait_dumps_equal(world, before, "the dumps after SIGKILL + start + SIGINT", timeout=15)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT],
                         ids=["SIGHUP-without-config", "SIGQUIT"])
def test_sighup_and_sigquit_stop_cleanly_and_restore_the_rules(world, tun2sock_bin, sig):
    # Their default action kills the process (SIGQUIT with a core dump) and leaves the rules
    # behind until the next start; tun2sock takes the SIGTERM path for them. (SIGHUP with
    # --config reloads instead: the next test.)
    world.start_dante()
    before = world.dumps()
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}")
    assert "lookup 2022" in world.dumps()
    t.signal(sig)
    assert t.p.wait(timeout=10) == 0, t.output()
    assert f"{sig.name}: stopping" in t.output(), t.output()
    wait_dumps_equal(world, before, f"the dumps after {sig.name}", timeout=15)


def test_sighup_with_config_reloads_and_keeps_the_rules(world, tun2sock_bin, tmp_path):
    # With --config, SIGHUP is a reload (docs/config.md): the process and its rules stay; a
    # route-table change in the file is named as needing a restart; SIGTERM still restores.
    world.start_origin()
    world.start_dante()
    before = world.dumps()
    conf = tmp_path / "tun2sock.yaml"
    conf.write_text("log-level: info\n")
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}", "--config", str(conf))
    rules = world.dumps()
    conf.write_text("log-level: debug\nroute-table: 2023\n")
    t.signal(signal.SIGHUP)
    wait_for(lambda: "reload: " in t.output() and "applied log-level" in t.output(),
             "the reload", proc=t)
    assert "route-table changed, which needs a restart" in t.output(), t.output()
    assert "SIGHUP: stopping" not in t.output() and t.alive()
    assert world.dumps() == rules, "the reload changed the rules"
    r = world.curl(f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt")
    assert r.returncode == 0, r.stderr + t.output()[-2000:]
    t.signal(signal.SIGTERM)
    assert t.p.wait(timeout=10) == 0, t.output()
    wait_dumps_equal(world, before, "the dumps after SIGTERM", timeout=15)


def test_a_second_instance_on_the_same_table_refuses_instead_of_removing_the_rules(
        world, tun2sock_bin, tmp_path):
    # The start-up cleanup finds an earlier run's leftovers by table and priority: a second
    # tun2sock in the same namespace with the same (default) ones would take the first one's
    # rules for leftovers. It must refuse to start and leave them; with its own table and
    # priorities it runs beside the first.
    world.start_origin()
    world.start_dante()
    url = f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt"
    world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}")
    first = world.dumps()
    second = [str(tun2sock_bin), "--device", "t2s1", "--proxy", f"socks5://{PROXY4}:{SOCKS_PORT}",
              "--address", "198.19.0.1/16", "--auto-route"]
    r = world.c.run(*second, check=False, timeout=20)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "another tun2sock" in r.stderr and "--route-table" in r.stderr, r.stderr
    assert world.dumps() == first, "the refused instance changed the rules and routes"
    assert world.curl(url).returncode == 0, world.log()
    third = start_tun2sock(world.c, tun2sock_bin, tmp_path / "third.log",
                           second[1:] + ["--route-table", "2023", "--route-priority", "9100"],
                           dev="t2s1")
    wait_for(lambda: "9103:" in world.c.run("ip", "rule").stdout, "the third's rules",
             proc=third)
    assert "lookup 2022" in world.dumps(), "the third instance removed the first's rules"
    third.signal(signal.SIGTERM)
    assert third.p.wait(timeout=10) == 0, third.output()
    wait_dumps_equal(world, first, "the first instance's rules after the third stopped",
                     timeout=15)
    assert world.curl(url).returncode == 0, world.log()


def test_routes_removed_by_a_link_flap_are_put_back(world, tun2sock_bin):
    world.start_origin()
    world.start_dante()
    world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}")
    # The kernel drops routes through a link that goes down; ours must come back with it.
    world.c.ip("link", "set", "t2s0", "down")
    world.c.ip("link", "set", "t2s0", "up")
    wait_for(lambda: "default dev t2s0" in world.c.run("ip", "route", "show", "table",
                                                        "2022").stdout,
             "the default route of table 2022 put back", proc=world.t2s)
    # Someone deletes our main rule: it comes back too.
    world.c.ip("rule", "del", "pref", "9003")
    wait_for(lambda: "9003:" in world.c.run("ip", "rule").stdout, "rule 9003 put back",
             proc=world.t2s)
    r = world.curl(f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt")
    assert r.returncode == 0, r.stderr + world.log()
    assert "re-applied" in world.log()


# ---------------------------------------------------------------------------------------------
# Default route switch between two uplinks

def test_default_route_switch_between_uplinks(tmp_path, tun2sock_bin):
    _need("danted", "curl", "tcpdump")
    w = World(tmp_path, "sw", proxy_on_lo=True)
    try:
        veth(w.c, "198.51.100.1/24", w.s, "198.51.100.2/24", a_dev="vc", b_dev="vd")
        w.start_origin()
        w.start_dante(internal="192.0.2.1", external="192.0.2.1")
        t = w.start_tun2sock(tun2sock_bin, f"socks5://192.0.2.1:{SOCKS_PORT}")
        url = f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt"
        assert w.curl(url).returncode == 0, w.log()
        rules_before = w.c.run("ip", "rule").stdout
        get = w.c.run("ip", "route", "get", "192.0.2.1", "mark", MARK).stdout
        assert "dev va" in get, get

        pcap = tmp_path / "vc.pcap"
        cap = start_capture(w.c, "vc", pcap, tmp_path)
        w.c.ip("route", "replace", "default", "via", "198.51.100.2", "dev", "vc")
        w.c.ip("link", "set", "va", "down")
        get = w.c.run("ip", "route", "get", "192.0.2.1", "mark", MARK).stdout
        assert "dev vc" in get, get
        # Unmarked traffic still goes into the TUN, marked traffic follows the new default.
        assert "dev t2s0" in w.c.run("ip", "route", "get", ORIGIN4).stdout
        # The network-change machine moves the upstream sockets to vc after its debounce.
        wait_for(lambda: w.curl(url, "--max-time", "3").returncode == 0,
                 "a flow through the tunnel after the switch", timeout=8, proc=t)
        for i in range(3):
            r = w.curl(url)
            assert r.returncode == 0, f"after the switch, try {i}: {r.stderr}\n{w.log()}"
        # New flows already follow the route while the engine settles; the decision (and its
        # log line) comes at the end of the debounce.
        wait_for(lambda: "leaves through vc" in w.log(), "the egress decision for vc",
                 timeout=5, proc=t)
        wait_for(lambda: _proxy_packets(pcap, {"192.0.2.1"}) > 0,
                 "the proxy's packets in the capture on vc", timeout=10)
        cap.stop()
        assert w.c.run("ip", "rule").stdout == rules_before
        table = w.c.run("ip", "route", "show", "table", "2022").stdout
        assert "default dev t2s0" in table and "throw 192.0.2.1" in table, table
        assert _proxy_packets(pcap, {"192.0.2.1"}) > 0, "the proxy is now reached through vc"
        escaped = _escaped(pcap, {"192.0.2.1"})
        assert not escaped, "\n".join(escaped[:20])
        assert w.loop_guard() == 0
        assert t.stop() == 0, w.log()
    finally:
        w.close()


# ---------------------------------------------------------------------------------------------
# A local proxy (ss-local) excluded by user

def test_ss_local_as_another_user_with_exclude_uid(tmp_path, tun2sock_bin):
    _need("ss-local", "ss-server", "setpriv", "curl")
    w = World(tmp_path, "ss")
    try:
        w.start_origin()
        srv = w.s.start(["ss-server", "-s", PROXY4, "-p", "18388", "-k", "pw", "-m",
                         "chacha20-ietf-poly1305", "-u"], tmp_path / "ss-server.log")
        w.wait_listen(18388, srv, "ss-server")
        loc = w.c.start(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                         "ss-local", "-s", PROXY4, "-p", "18388", "-b", "127.0.0.1", "-l",
                         "1081", "-k", "pw", "-m", "chacha20-ietf-poly1305", "-u"],
                        tmp_path / "ss-local.log")
        wait_for(lambda: listening(w.c, 1081), "ss-local", proc=loc)
        t = w.start_tun2sock(tun2sock_bin, "socks5://127.0.0.1:1081", "--exclude-uid", "65534")
        url = f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt"
        for _ in range(3):
            r = w.curl(url)
            assert r.returncode == 0 and r.stdout == "hello through the auto route\n", \
                r.stderr + w.log() + loc.output()
        st = w.stats()
        # Exactly the three curls entered the TUN: ss-local's own connections went direct.
        assert st["tcp_flows_total"] == 3, st
        assert st["packets_dropped"]["loop_guard"] == 0
        # And ss-local's traffic really is excluded by uid (the rule is there).
        assert "uidrange 65534-65534 lookup main" in w.c.run("ip", "rule").stdout
        assert t.stop() == 0, w.log()
    finally:
        w.close()


# ---------------------------------------------------------------------------------------------
# A local proxy excluded by cgroup (nftables socket cgroupv2 -> our fwmark)

def _cgroup2_mount() -> str:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.startswith("cgroup2 "):
            return left.split()[4]
    return ""


def test_exclude_cgroup_sends_that_cgroup_direct(world, tun2sock_bin, tmp_path):
    """`ip netns exec` remounts /sys (no cgroup2 inside), so tun2sock and the clients enter
    only the network namespace (nsenter --net), as a service on a host would run."""
    _need("nft", "nsenter", "tcpdump")
    mp = _cgroup2_mount()
    if not mp or not mp.startswith("/sys/fs/cgroup"):
        pytest.skip("no cgroup v2 mounted below /sys/fs/cgroup")
    cg = Path(mp) / f"t2sar-{os.getpid()}-cg"
    cg.mkdir()
    netns = ["nsenter", f"--net=/run/netns/{world.c.name}"]
    try:
        world.start_origin()
        world.start_dante()
        t = Process(netns + [str(tun2sock_bin), "--device", "t2s0", "--proxy",
                             f"socks5://{PROXY4}:{SOCKS_PORT}", "--address", "198.18.0.1/15",
                             "--metrics", world.metrics, "--auto-route", "--exclude-cgroup",
                             str(cg)], tmp_path / "tun2sock.log")
        world.t2s = t
        wait_for(lambda: "9003:" in world.c.run("ip", "rule", check=False).stdout,
                 "the auto-route rules", proc=t)
        wait_for(lambda: "t2s_autoroute_2022" in world.c.run("nft", "list", "tables").stdout,
                 "our nftables table", proc=t)
        url = f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt"
        pcap = tmp_path / "va.pcap"
        cap = start_capture(world.c, "va", pcap, tmp_path)
        inside = run(netns + ["sh", "-c", f"echo $$ > {cg}/cgroup.procs && exec curl -sS "
                              f"--max-time 10 {url}"], check=False)
        assert inside.returncode == 0, inside.stderr + world.log()
        assert world.stats()["tcp_flows_total"] == 0, "the cgroup's flow must not enter the TUN"
        outside = world.curl(url)
        assert outside.returncode == 0, outside.stderr + world.log()
        assert world.stats()["tcp_flows_total"] == 1
        # tcpdump -U writes each packet as it comes; on a loaded machine that can lag, so
        # wait (bounded) for the cgroup's direct flow to show up in the file.
        direct = wait_for(lambda: _read(pcap, f"host {ORIGIN4}", count=5),
                          "the cgroup's flow to show up directly on va", timeout=10)
        cap.stop()
        assert direct, "the cgroup's flow went out directly on va"
        assert t.stop() == 0, world.log()
        assert "t2s_autoroute" not in world.c.run("nft", "list", "tables").stdout
    finally:
        if world.t2s is not None:
            world.t2s.stop()
        for _ in range(50):
            try:
                cg.rmdir()
                break
            except OSError:
                time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# DNS hijack through a proxy without UDP (microsocks): the DNS-over-TCP fallback

def test_dns_hijack_through_a_proxy_without_udp(tmp_path, tun2sock_bin):
    _need("microsocks", "dig", "dnsmasq")
    w = World(tmp_path, "ms")
    try:
        w.start_dns()
        m = w.s.start(["microsocks", "-i", PROXY4, "-p", str(SOCKS_PORT)],
                      tmp_path / "microsocks.log")
        w.wait_listen(SOCKS_PORT, m, "microsocks")
        w.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}", "--dns-hijack", DNS4)
        # The first query waits in the association's queue, then goes over TCP when microsocks
        # says it has no UDP: its answer must also come from the address dig asked.
        for i in range(3):
            r = w.c.run("dig", "+short", "+time=3", "+tries=1", f"@{NOWHERE_DNS}",
                        "www.t2s.test", "A", check=False)
            assert r.stdout.strip() == ORIGIN4, f"query {i}: {r.stdout}{r.stderr}{w.log()}"
        m = w.c.run("curl", "-sf", "--max-time", "5", f"http://{w.metrics}/metrics").stdout
        q = [x for x in m.splitlines() if x.startswith("tun2sock_udp_dns_tcp_queries_total ")]
        assert q and int(q[0].split()[-1]) >= 3, m
        assert w.loop_guard() == 0
    finally:
        w.close()
