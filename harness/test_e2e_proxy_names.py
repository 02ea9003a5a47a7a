"""A proxy given by name, resolved when it matters (docs/proxies.md, "Proxies by name"), with
the real binary in real namespaces and a real resolver.

    client ns "ncli": up1 198.51.100.2/24 --- srv dn1 198.51.100.1/24 (the default route first)
                      up2 203.0.113.2/24  --- srv dn2 203.0.113.1/24 (the default route later)
                      lo: dnsmasq on 127.0.0.1:53, the namespace's resolver
                      (/etc/netns/NAME/resolv.conf, which `ip netns exec` mounts on
                      /etc/resolv.conf; removed after)
                      t2s0 198.18.0.1/15 (tun2sock); 192.0.2.80/32 (the origin) routed into t2s0
    server ns "nsrv": lo 192.0.2.1 (dante A) and 192.0.2.2 (dante B), both port 1080;
                      192.0.2.80 (HTTP origin, port 8080)

dnsmasq answers proxy.test from a hosts file (re-read on SIGHUP) and NXDOMAIN for any other
.test name. tun2sock runs at the default log level with --proxy socks5://proxy.test:1080.
Namespaces are named t2sb-<pid>-<n>-<tag> (test_bin_util.py) and removed; every process is
stopped by its PID.
"""
import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_bin_util import PACED_ORIGIN_PY, Netns, Process, need, start_dante, start_tun2sock, veth, wait_for

pytestmark = [pytest.mark.root]

PA, PB, ORIGIN = "192.0.2.1", "192.0.2.2", "192.0.2.80"
PORT, HTTP_PORT, METRICS_PORT = 1080, 8080, 9475
NAME = "proxy.test"
REFUSED_WITHIN_S = 1.0



class World:
    def __init__(self, tmp: Path, tun2sock_bin: Path, resolves_to: str = ""):
        need("danted", "dnsmasq", "curl", "ss")
        self.tmp = tmp
        self.procs = []
        self.c = Netns("ncli")
        self.s = Netns("nsrv")
        self.netns_etc = Path("/etc/netns") / self.c.name
        self.t = None
        try:
            self._build(tun2sock_bin, resolves_to)
        except BaseException:
            self.close()
            raise

    def _build(self, tun2sock_bin: Path, resolves_to: str) -> None:
        veth(self.c, "198.51.100.2/24", self.s, "198.51.100.1/24", a_dev="up1", b_dev="dn1")
        veth(self.c, "203.0.113.2/24", self.s, "203.0.113.1/24", a_dev="up2", b_dev="dn2")
        for a in (PA, PB, ORIGIN):
            self.s.ip("addr", "add", f"{a}/32", "dev", "lo")
        origin = self.tmp / "origin.py"
        origin.write_text(PACED_ORIGIN_PY)
        self.s.start(["/usr/bin/python3", str(origin), ORIGIN, str(HTTP_PORT)],
                     self.tmp / "http.log")
        self.dante = {}
        for addr in (PA, PB):
            d = self.tmp / f"dante-{addr}"
            d.mkdir()
            p = start_dante(self.s, d, [addr], PORT, external="lo", commands="connect")
            self.dante[addr] = p
            wait_for(lambda: f"{addr}:{PORT}" in self.s.run("ss", "-ltnH", check=False).stdout,
                     f"dante on {addr}", proc=p)
        wait_for(lambda: f"{ORIGIN}:{HTTP_PORT}" in self.s.run("ss", "-ltnH", check=False).stdout,
                 "the origin")
        self.c.ip("route", "add", "default", "via", "198.51.100.1", "dev", "up1")
        # The resolver: dnsmasq on the client namespace's loopback, answering .test from a file.
        self.hosts = self.tmp / "hosts"
        self.set_name(resolves_to)
        self.netns_etc.mkdir(parents=True, exist_ok=True)
        (self.netns_etc / "resolv.conf").write_text(
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        self.dns = self.c.start(["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv",
                                 "--no-hosts", f"--addn-hosts={self.hosts}", "--local=/test/",
                                 "--listen-address=127.0.0.1", "--bind-interfaces",
                                 "--user=root", "--group=root", "--no-negcache",
                                 "--log-queries", "--log-facility=-",
                                 f"--pid-file={self.tmp / 'dnsmasq.pid'}"],
                                self.tmp / "dnsmasq.log")
        wait_for(lambda: "127.0.0.1:53" in self.c.run("ss", "-lunH", check=False).stdout,
                 "dnsmasq", proc=self.dns)
        args = ["--device", "t2s0", "--proxy", f"socks5://{NAME}:{PORT}",
                "--proxy-probe-interval", "500ms", "--address", "198.18.0.1/15",
                "--metrics", f"127.0.0.1:{METRICS_PORT}"]
        self.t = start_tun2sock(self.c, tun2sock_bin, self.tmp / "tun2sock.log", args,
                                ready_addr="198.18.0.1")
        self.c.ip("route", "add", f"{ORIGIN}/32", "dev", "t2s0")

    def set_name(self, addr: str) -> None:
        """proxy.test resolves to addr ("" = nowhere: NXDOMAIN) from now on."""
        self.hosts.write_text(f"{addr} {NAME}\n" if addr else "")
        if getattr(self, "dns", None) is not None:
            self.dns.signal(signal.SIGHUP)  # dnsmasq re-reads its hosts file, clears its cache

    def resolves(self) -> str:
        r = self.c.run("getent", "ahostsv4", NAME, check=False)
        return r.stdout.split()[0] if r.returncode == 0 and r.stdout else ""

    def log(self) -> str:
        return self.t.output() if self.t else ""

    def stats(self) -> dict:
        p = self.c.run("curl", "-s", "--max-time", "2", f"http://127.0.0.1:{METRICS_PORT}/stats",
                       check=False)
        return json.loads(p.stdout)

    def proxy_stats(self) -> dict:
        return self.stats()["proxies"][0]

    def curl(self, max_time: float = 2.0) -> subprocess.CompletedProcess:
        return self.c.run("curl", "-s", "--max-time", str(max_time),
                          f"http://{ORIGIN}:{HTTP_PORT}/hello.txt", check=False, timeout=10)

    def curl_ok(self) -> bool:
        p = self.curl()
        return p.returncode == 0 and "hello through a proxy" in p.stdout

    def upstreams(self):
        out = self.c.run("ss", "-tnH", "state", "established", check=False).stdout
        return sorted(set(re.findall(rf"(192\.0\.2\.[12]:{PORT})", out)))

    def download(self) -> subprocess.Popen:
        log = open(self.tmp / f"download-{len(self.procs)}.log", "w")
        p = subprocess.Popen(self.c.cmd("curl", "-s", "-o", "/dev/null",
                                        f"http://{ORIGIN}:{HTTP_PORT}/slow"),
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def stop_download(self, p: subprocess.Popen) -> None:
        import os
        if p.poll() is None:
            os.killpg(p.pid, 9)
        p.wait(timeout=5)

    def close(self) -> None:
        for p in self.procs:
            self.stop_download(p)
        self.c.close()
        self.s.close()
        shutil.rmtree(self.netns_etc, ignore_errors=True)


def test_a_name_that_does_not_resolve_at_start_is_refused_at_once_then_carried_without_restart(
        tmp_path, tun2sock_bin):
    w = World(tmp_path, tun2sock_bin, resolves_to="")
    try:
        assert w.resolves() == "", "the name resolves already: the test proves nothing"
        assert w.t.alive(), w.log()
        assert f"cannot resolve '{NAME}'" in w.log(), w.log()
        # The documented state: UNRESOLVED, no address; new flows refused at once.
        px = w.proxy_stats()
        assert px["proxy"] == f"{NAME}:{PORT}" and px["state"] == "UNRESOLVED", px
        assert px["address"] is None
        t0 = time.monotonic()
        p = w.curl(max_time=5)
        took = time.monotonic() - t0
        print(f"\nunresolved: a curl refused after {took * 1000:.0f} ms (exit {p.returncode})")
        assert p.returncode == 7, p  # curl: failed to connect (RST)
        assert took < REFUSED_WITHIN_S
        assert w.stats()["network"]["syn_refused_offline"] >= 1
        time.sleep(1.0)  # a few lookups fail (with backoff) while the process keeps running
        assert w.t.alive()
        # The name resolves now: traffic flows without a restart.
        t1 = time.monotonic()
        w.set_name(PA)
        assert w.resolves() == PA
        wait_for(lambda: f"{NAME} resolved to {PA}:{PORT}" in w.log(), "the name resolved",
                 timeout=20, proc=w.t)
        resolved_s = time.monotonic() - t1
        assert w.curl_ok(), w.log()[-3000:]
        print(f"the name resolves: picked up after {resolved_s * 1000:.0f} ms (the next lookup of "
              f"the backoff), a curl succeeded")
        px = w.proxy_stats()
        assert px["state"] == "UP" and px["address"] == f"{PA}:{PORT}", px
        assert px["lookups"] >= 2
        assert px["bytes_down"] > 0 and px["flows"] >= 1
        assert w.t.alive()
    finally:
        w.close()


def test_a_new_address_and_a_new_default_route_send_new_flows_to_the_new_address(
        tmp_path, tun2sock_bin):
    w = World(tmp_path, tun2sock_bin, resolves_to=PA)
    try:
        assert f"--proxy: {NAME} resolved to {PA}" in w.log(), w.log()
        dl = w.download()
        wait_for(lambda: w.upstreams() == [f"{PA}:{PORT}"], "a download through A", proc=w.t)
        w.stop_download(dl)
        # The name moves; nothing happens until the network changes (no polling of the name).
        w.set_name(PB)
        assert w.resolves() == PB
        time.sleep(1.0)
        dl = w.download()
        wait_for(lambda: w.upstreams() == [f"{PA}:{PORT}"], "a download still through A",
                 proc=w.t)
        w.stop_download(dl)
        # The network changes: the default route moves to up2. The name is resolved again.
        t0 = time.monotonic()
        w.c.ip("route", "replace", "default", "via", "203.0.113.1", "dev", "up2")
        wait_for(lambda: f"{NAME} now resolves to {PB}:{PORT} (was {PA}:{PORT})" in w.log(),
                 "the name resolved again after the network change", timeout=10, proc=w.t)
        print(f"\nroute switched: the new address in use after "
              f"{(time.monotonic() - t0) * 1000:.0f} ms")
        dl = w.download()
        wait_for(lambda: w.upstreams() == [f"{PB}:{PORT}"], "a new download through B",
                 proc=w.t)
        assert dl.poll() is None
        out = w.c.run("ss", "-tnH", "state", "established", "dst", f"{PB}:{PORT}",
                      check=False).stdout
        assert "203.0.113.2" in out, out  # it left through the new default route
        px = w.proxy_stats()
        assert px["address"] == f"{PB}:{PORT}" and px["state"] == "UP", px
    finally:
        w.close()


def test_a_proxy_declared_down_has_its_name_resolved_again(tmp_path, tun2sock_bin):
    """The name moved (dynamic DNS) and the old address stopped answering: when the proxy is
    declared down its name is looked up again, the new address makes it UP, new flows go there;
    no network change, no restart."""
    w = World(tmp_path, tun2sock_bin, resolves_to=PA)
    try:
        assert w.curl_ok()
        w.set_name(PB)
        w.dante[PA].stop(timeout=2)
        t0 = time.monotonic()
        w.curl()  # refused by A: the first failure; the probes take A down
        wait_for(lambda: f"{NAME} now resolves to {PB}:{PORT} (was {PA}:{PORT})" in w.log(),
                 "the name resolved again once the proxy was down", timeout=15, proc=w.t)
        took = time.monotonic() - t0
        log = w.log()
        assert f"proxy {NAME}:{PORT} ({PA}:{PORT}): down (connection refused)" in log, log
        assert w.curl_ok(), w.log()[-3000:]
        print(f"\nA down, the name looked up again: carried through {PB} {took * 1000:.0f} ms "
              f"after the first refused curl")
        px = w.proxy_stats()
        assert px["address"] == f"{PB}:{PORT}" and px["state"] == "UP", px
        assert px["downs"] == 1
    finally:
        w.close()
