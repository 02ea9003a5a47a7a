"""Multipath TCP to the proxy (issue 18, docs/mptcp.md): the real binary in real namespaces.

    client ns: up1 198.51.100.2/24 --- srv dn1 198.51.100.1/24   default via up1, metric 100
               up2 203.0.113.2/24  --- srv dn2 203.0.113.1/24    default via up2, metric 200
               t2s0 198.18.0.1/15 (tun2sock); 192.0.2.80/32 (the origin) routed into t2s0
               MPTCP: `ip mptcp limits set subflows 2 add_addr_accepted 2` and a `subflow`
               endpoint on up2's address (dev up2), as NetworkManager or mptcpd would add
    server ns: lo 192.0.2.1 (dante, port 1080; under `mptcpize run` or plain) and 192.0.2.80
               (HTTP origin, port 8080, serving a 40 MB random file)

Two uplinks each with its own default route, with different metrics, as NetworkManager sets
them. A 40 MB download through the TUN (curl --limit-rate, so it lasts several seconds) runs
while the primary uplink goes down, or the default route moves; the test checks the sha256 of
what curl got and tun2sock's /stats.

Namespaces t2sb-<pid>-<n>-<tag> (test_bin_util.py), removed; every process stopped by its PID.
"""
import hashlib
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from test_bin_util import (Netns, Process, dante_conf, need, start_tun2sock, tun2sock_stats, veth,
                           wait_for, write_random, E2E_ORIGIN_PY, PYTHON)

pytestmark = [pytest.mark.root]

PROXY, ORIGIN, SOCKS_PORT, HTTP_PORT = "192.0.2.1", "192.0.2.80", 1080, 8080
GW1, ME1, GW2, ME2 = "198.51.100.1", "198.51.100.2", "203.0.113.1", "203.0.113.2"
METRICS = "127.0.0.1:9473"
SIZE = 40 << 20
RATE = "4M"  # curl --limit-rate: 40 MB in about 10 s


def mptcp_available() -> bool:
    try:
        return Path("/proc/sys/net/mptcp/enabled").read_text().strip() == "1"
    except OSError:
        return False


class World:
    def __init__(self, tmp: Path, tun2sock_bin: Path, mptcp_proxy: bool,
                 manual_endpoint: bool = True):
        need("danted", "curl", "ss", "mptcpize")
        if not mptcp_available():
            pytest.skip("the kernel has no MPTCP (net.mptcp.enabled != 1)")
        self.tmp = tmp
        self.bin = tun2sock_bin
        self.t = None
        self.procs = []
        self.c = Netns("mpc")
        self.s = Netns("mps")
        try:
            self._build(mptcp_proxy, manual_endpoint)
        except Exception:
            self.close()
            raise

    def _build(self, mptcp_proxy: bool, manual_endpoint: bool):
        veth(self.c, f"{ME1}/24", self.s, f"{GW1}/24", a_dev="up1", b_dev="dn1")
        veth(self.c, f"{ME2}/24", self.s, f"{GW2}/24", a_dev="up2", b_dev="dn2")
        self.s.ip("addr", "add", f"{PROXY}/32", "dev", "lo")
        self.s.ip("addr", "add", f"{ORIGIN}/32", "dev", "lo")
        for ns in (self.c, self.s):
            ns.sh("sysctl -qw net.mptcp.enabled=1")
            ns.ip("mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "2")
        # The client's second uplink may carry a subflow (what NetworkManager or mptcpd add;
        # without it, tun2sock adds its own).
        if manual_endpoint:
            self.c.ip("mptcp", "endpoint", "add", ME2, "dev", "up2", "subflow")
        self.c.ip("route", "add", "default", "via", GW1, "dev", "up1", "metric", "100")
        self.c.ip("route", "add", "default", "via", GW2, "dev", "up2", "metric", "200")
        www = self.tmp / "www"
        www.mkdir()
        self.sha = write_random(www / "big.bin", SIZE)
        script = self.tmp / "origin.py"
        script.write_text(E2E_ORIGIN_PY)
        o = self.s.start([PYTHON, str(script), str(www), str(HTTP_PORT)], self.tmp / "origin.log")
        wait_for(lambda: f":{HTTP_PORT}" in self.s.run("ss", "-ltnH", check=False).stdout,
                 "the origin", proc=o)
        # dante, under mptcpize for an MPTCP proxy: its LD_PRELOAD turns dante's TCP sockets
        # into MPTCP ones (Debian's mptcpize package).
        conf = self.tmp / "danted.conf"
        conf.write_text(dante_conf([PROXY], SOCKS_PORT, external="lo", commands="connect"))
        cmd = ["danted", "-f", str(conf), "-N", "1", "-p", str(self.tmp / "d.pid")]
        self.dante = self.s.start((["mptcpize", "run"] if mptcp_proxy else []) + cmd,
                                  self.tmp / "danted.log")
        wait_for(lambda: f"{PROXY}:{SOCKS_PORT}" in
                 self.s.run("ss", "-ltnH", check=False).stdout, "dante", proc=self.dante)
        mptcp_listener = f"{PROXY}:{SOCKS_PORT}" in self.s.run("ss", "-lMnH", check=False).stdout
        assert mptcp_listener == mptcp_proxy, "dante's listener is MPTCP only under mptcpize"

    def endpoints(self) -> dict:
        """`ip mptcp endpoint show` in the client namespace: {address: (id, line)}."""
        out = self.c.ip("mptcp", "endpoint", "show").stdout
        eps = {}
        for line in out.splitlines():
            m = re.match(r"^(\S+) id (\d+)", line.strip())
            if m:
                eps[m.group(1)] = (int(m.group(2)), line.strip())
        return eps

    def start(self, *extra: str) -> Process:
        args = ["--device", "t2s0", "--proxy", f"socks5://{PROXY}:{SOCKS_PORT}",
                "--address", "198.18.0.1/15", "--metrics", METRICS, "--log-level", "debug",
                *extra]
        self.t = start_tun2sock(self.c, self.bin, self.tmp / "tun2sock.log", args,
                                ready_addr="198.18.0.1")
        self.c.ip("route", "add", f"{ORIGIN}/32", "dev", "t2s0")
        wait_for(lambda: self.stats_or_none() is not None, "the metrics", proc=self.t)
        return self.t

    def stats_or_none(self):
        try:
            return tun2sock_stats(self.c, METRICS)
        except Exception:
            return None

    def stats(self) -> dict:
        return tun2sock_stats(self.c, METRICS)

    def download(self, rate: str = RATE) -> subprocess.Popen:
        out = self.tmp / "got.bin"
        log = open(self.tmp / "curl.log", "w")
        p = subprocess.Popen(self.c.cmd("curl", "-sS", "--limit-rate", rate, "--max-time", "60",
                                        "-o", str(out), "-w", "%{http_code} %{size_download}\n",
                                        f"http://{ORIGIN}:{HTTP_PORT}/big.bin"),
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        wait_for(lambda: out.exists() and out.stat().st_size > (2 << 20), "2 MB downloaded",
                 timeout=15, proc=self.t)
        return p

    def got_sha(self) -> str:
        return hashlib.sha256((self.tmp / "got.bin").read_bytes()).hexdigest()

    def upstream_sockets(self) -> str:
        """ss lines of tun2sock's established sockets to the proxy (LOCAL%DEV when bound)."""
        return self.c.run("ss", "-tnH", "state", "established", "dst", f"{PROXY}:{SOCKS_PORT}",
                          check=False).stdout

    def subflows(self) -> str:
        """The TCP subflows toward the proxy (ss -t lists them beside the MPTCP socket)."""
        return self.c.run("ss", "-tniH", "dst", f"{PROXY}:{SOCKS_PORT}", check=False).stdout

    def log(self, n: int = 4000) -> str:
        return self.t.output()[-n:] if self.t else ""

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait(timeout=5)
        if self.t is not None:
            self.t.stop()
        self.c.close()
        self.s.close()


@pytest.fixture
def world_mp(tmp_path, tun2sock_bin):
    w = World(tmp_path, tun2sock_bin, mptcp_proxy=True)
    yield w
    w.close()


@pytest.fixture
def world_plain(tmp_path, tun2sock_bin):
    w = World(tmp_path, tun2sock_bin, mptcp_proxy=False)
    yield w
    w.close()


def finish(world, dl, timeout=60):
    dl.wait(timeout=timeout)
    return (world.tmp / "curl.log").read_text()


# ---- step 1: --mptcp opens MPTCP streams and learns what each became ----

def test_mptcp_streams_are_multipath_with_an_mptcp_proxy_and_not_bound(world_mp):
    world_mp.start("--mptcp")
    dl = world_mp.download(rate="20M")
    # The kernel adds the subflow of the up2 endpoint; the connector sees it within a second.
    wait_for(lambda: world_mp.stats()["mptcp"]["subflows_added"] >= 1, "a subflow added",
             timeout=5, proc=world_mp.t)
    socks = world_mp.upstream_sockets()
    st = world_mp.stats()
    finish(world_mp, dl)
    assert world_mp.got_sha() == world_mp.sha
    assert st["mptcp"]["multipath"] >= 1 and st["mptcp"]["fallback"] == 0, st
    # Not pinned to up1 (no SO_BINDTODEVICE): ss shows no LOCAL%DEV.
    assert socks.strip() and "%up1" not in socks, socks
    assert "multipath, 2 subflows" in world_mp.t.output(), world_mp.log()


def test_mptcp_streams_fall_back_with_a_plain_proxy(world_plain):
    world_plain.start("--mptcp")
    dl = world_plain.download(rate="20M")
    finish(world_plain, dl)
    assert world_plain.got_sha() == world_plain.sha
    st = world_plain.stats()
    assert st["mptcp"]["fallback"] >= 1 and st["mptcp"]["multipath"] == 0, st
    assert "fell back to TCP" in world_plain.t.output()


def test_without_mptcp_nothing_is_multipath_and_sockets_are_bound(world_mp):
    world_mp.start()
    dl = world_mp.download(rate="20M")
    socks = world_mp.upstream_sockets()
    finish(world_mp, dl)
    st = world_mp.stats()
    assert set(st["mptcp"].values()) == {0}, st["mptcp"]
    assert "%up1" in socks, socks


# ---- step 4: a download survives the loss of the primary uplink ----

def change_during_download(world, change, what: str):
    """A 40 MB download (about 10 s); change() after 2 s; returns (curl log, stats, seconds)."""
    dl = world.download()
    time.sleep(2.0)  # the kernel joins the up2 subflow; the connector re-reads once a second
    assert dl.poll() is None, f"{what}: the download ended before the change"
    t0 = time.monotonic()
    change()
    out = finish(world, dl, timeout=90)
    took = time.monotonic() - t0
    st = world.stats()
    print(f"\n{what}: curl '{out.strip()}' {took:.1f} s after the change; flows_reset "
          f"{st['flows_reset']}, flows_survived {st['flows_survived']}, mptcp {st['mptcp']}, "
          f"network_changes {st['network_changes']}")
    return dl.returncode, out, st


def test_download_survives_the_primary_link_going_down(world_mp):
    world_mp.start("--mptcp")
    rc, out, st = change_during_download(
        world_mp, lambda: world_mp.c.ip("link", "set", "up1", "down"), "up1 down")
    assert rc == 0 and out.startswith("200 "), world_mp.log()
    assert world_mp.got_sha() == world_mp.sha
    assert st["flows_reset"] == 0, world_mp.log()
    assert st["flows_survived"] >= 1, world_mp.log()
    assert st["network_changes"] >= 1
    assert st["mptcp"]["multipath"] == 1 and st["mptcp"]["subflows_added"] >= 1, st
    # The up1 subflow is not closed by the link going down (its address stays; the kernel
    # retransmits on it until it gives up), so subflows_removed is not asserted here.


def test_download_survives_moving_the_default_route(world_mp):
    world_mp.start("--mptcp")
    rc, out, st = change_during_download(
        world_mp, lambda: world_mp.c.ip("route", "replace", "default", "via", GW2, "dev", "up2",
                                         "metric", "50"), "default route to up2")
    assert rc == 0 and out.startswith("200 "), world_mp.log()
    assert world_mp.got_sha() == world_mp.sha
    assert st["flows_reset"] == 0 and st["flows_survived"] >= 1, world_mp.log()


def test_plain_proxy_falls_back_and_the_download_is_reset(world_plain):
    world_plain.start("--mptcp")
    rc, out, st = change_during_download(
        world_plain, lambda: world_plain.c.ip("link", "set", "up1", "down"), "up1 down, plain")
    assert rc != 0, f"the download was not reset: {out}"
    assert st["flows_reset"] >= 1 and st["flows_survived"] == 0, st
    assert st["mptcp"]["fallback"] >= 1


def test_without_mptcp_the_download_is_reset_as_today(world_mp):
    world_mp.start()
    rc, out, st = change_during_download(
        world_mp, lambda: world_mp.c.ip("link", "set", "up1", "down"), "up1 down, no --mptcp")
    assert rc != 0, f"the download was not reset: {out}"
    assert st["flows_reset"] >= 1 and st["flows_survived"] == 0, st
    assert st["mptcp"]["multipath"] == 0


# ---- step 5: tun2sock's own subflow endpoints (generic netlink), restored on exit ----

@pytest.fixture
def world_own(tmp_path, tun2sock_bin):
    w = World(tmp_path, tun2sock_bin, mptcp_proxy=True, manual_endpoint=False)
    yield w
    w.close()


OURS = range(200, 232)  # tun2sock's endpoint ids (mptcp_pm_linux.h)


def test_endpoints_added_for_every_uplink_and_removed_at_exit(world_own):
    w = world_own
    # Someone else's endpoint (NetworkManager, an operator): never touched.
    w.c.ip("addr", "add", "203.0.113.3/24", "dev", "up2")
    w.c.ip("mptcp", "endpoint", "add", "203.0.113.3", "id", "7", "dev", "up2", "subflow")
    w.start("--mptcp")
    eps = w.endpoints()
    assert eps.get(ME1, (0,))[0] in OURS and eps.get(ME2, (0,))[0] in OURS, eps
    assert "subflow" in eps[ME1][1] and "dev up1" in eps[ME1][1], eps
    assert eps["203.0.113.3"][0] == 7, eps
    assert "198.18.0.1" not in eps, eps  # never the TUN's
    # An address goes: its endpoint goes with it; it comes back: so does the endpoint.
    w.c.ip("addr", "del", f"{ME2}/24", "dev", "up2")
    wait_for(lambda: ME2 not in w.endpoints(), "the endpoint of the removed address to go",
             timeout=3, proc=w.t)
    w.c.ip("addr", "add", f"{ME2}/24", "dev", "up2")
    wait_for(lambda: ME2 in w.endpoints(), "the endpoint back", timeout=3, proc=w.t)
    rc = w.t.stop()
    assert rc == 0, w.log()
    eps = w.endpoints()
    assert set(eps) == {"203.0.113.3"}, eps  # ours gone, the other one left alone


def test_endpoints_left_by_sigkill_are_cleaned_by_the_next_run(world_own):
    w = world_own
    w.start("--mptcp")
    before = w.endpoints()
    assert {ME1, ME2} <= set(before), before
    w.t.signal(9)
    w.t.p.wait(timeout=5)
    assert w.endpoints() == before  # a killed run cannot clean up
    w.c.ip("link", "del", "t2s0", check=False)
    w.c.ip("route", "del", f"{ORIGIN}/32", check=False)
    w.start("--mptcp")
    after = w.endpoints()
    assert sorted(after) == sorted(before) and all(v[0] in OURS for v in after.values()), after
    assert "left by an earlier run" in w.t.output()
    assert w.t.stop() == 0
    assert w.endpoints() == {}


def test_download_survives_with_tun2sock_s_own_endpoints(world_own):
    world_own.start("--mptcp")
    assert ME2 in world_own.endpoints()
    rc, out, st = change_during_download(
        world_own, lambda: world_own.c.ip("link", "set", "up1", "down"), "up1 down, own endpoints")
    assert rc == 0 and out.startswith("200 "), world_own.log()
    assert world_own.got_sha() == world_own.sha
    assert st["flows_reset"] == 0 and st["flows_survived"] >= 1, world_own.log()
