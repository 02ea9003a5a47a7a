"""The config file and its reload on SIGHUP with the real binary in real namespaces
(docs/config.md): the password of a proxy changed in the file reaches new flows without a
restart while a download through another proxy goes on intact; a broken file changes nothing.

    client ns "rcli": up1 198.51.100.2/24 --- srv dn1 198.51.100.1/24 (the default route)
                      t2s0 198.18.0.1/15 (tun2sock); 192.0.2.80/32 (the origin) routed into t2s0
    server ns "rsrv": lo 192.0.2.1 (microsocks A, user/password, port 1080), 192.0.2.2 (dante B,
                      no authentication, port 1081), 192.0.2.80 (HTTP origin, port 8080)

tun2sock runs at the default log level with --config FILE: the proxies A (preferred, with
credentials) and B. A is given by address, or by the name proxy-a.test (the client namespace's
/etc/netns/NAME/hosts, which `ip netns exec` mounts on /etc/hosts; removed after).
Namespaces are named t2sb-<pid>-<n>-<tag> (test_bin_util.py) and removed; every process is
stopped by its PID.
"""
import hashlib
import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_bin_util import Netns, need, start_dante, start_tun2sock, veth, wait_for

pytestmark = [pytest.mark.root]

PA, PB, ORIGIN = "192.0.2.1", "192.0.2.2", "192.0.2.80"
PORT_A, PORT_B, HTTP_PORT = 1080, 1081, 8080
GW, ME = "198.51.100.1", "198.51.100.2"
METRICS_PORT = 9475
USER, OLD, NEW = "alice", "old-secret", "new:s3cr@t"
BIG_CHUNKS = 480  # /big: 480 chunks of 32 KiB (15 MiB), one every 25 ms: about 12 s

# /hello.txt, and /big: a known body paced by the server.
ORIGIN_PY = r"""
import hashlib, http.server, sys, time
N = int(sys.argv[3])
def chunk(i):
    return hashlib.sha256(str(i).encode()).digest() * 1024
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/hello.txt":
            body = b"hello through a proxy\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(N * 32768))
        self.end_headers()
        try:
            for i in range(N):
                self.wfile.write(chunk(i))
                time.sleep(0.025)
        except OSError:
            pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""


def big_sha256() -> str:
    h = hashlib.sha256()
    for i in range(BIG_CHUNKS):
        h.update(hashlib.sha256(str(i).encode()).digest() * 1024)
    return h.hexdigest()


A_NAME = "proxy-a.test"


def config_text(password: str, extra: str = "", a_host: str = PA) -> str:
    return (f"device: t2s0\n"
            f"address: 198.18.0.1/15\n"
            f"metrics: 127.0.0.1:{METRICS_PORT}\n"
            f"proxy-probe-interval: 500ms\n"
            f"proxy:\n"
            f"  - url: socks5://{a_host}:{PORT_A}\n"
            f"    username: {USER}\n"
            f"    password: {json.dumps(password)}\n"
            f"  - socks5://{PB}:{PORT_B}\n" + extra)


class World:
    def __init__(self, tmp: Path, tun2sock_bin: Path, a_host: str = PA):
        need("danted", "microsocks", "curl", "ss")
        self.tmp = tmp
        self.a_host = a_host
        self.c = Netns("rcli")
        self.netns_etc = Path("/etc/netns") / self.c.name
        if a_host != PA:
            self.netns_etc.mkdir(parents=True, exist_ok=True)
            (self.netns_etc / "hosts").write_text(f"127.0.0.1 localhost\n{PA} {a_host}\n")
        self.s = Netns("rsrv")
        self.procs = []
        self.micro = None
        veth(self.c, f"{ME}/24", self.s, f"{GW}/24", a_dev="up1", b_dev="dn1")
        for a in (PA, PB, ORIGIN):
            self.s.ip("addr", "add", f"{a}/32", "dev", "lo")
        origin = tmp / "origin.py"
        origin.write_text(ORIGIN_PY)
        self.s.start(["/usr/bin/python3", str(origin), ORIGIN, str(HTTP_PORT), str(BIG_CHUNKS)],
                     tmp / "http.log")
        d = tmp / "dante"
        d.mkdir()
        self.dante = start_dante(self.s, d, [PB], PORT_B, external="lo", commands="connect")
        wait_for(lambda: self.listening(f"{PB}:{PORT_B}"), "dante B", proc=self.dante)
        wait_for(lambda: self.listening(f"{ORIGIN}:{HTTP_PORT}"), "the origin")
        self.c.ip("route", "add", "default", "via", GW, "dev", "up1")
        self.config = tmp / "tun2sock.yaml"
        self.config.write_text(config_text(OLD, a_host=a_host))
        self.t = start_tun2sock(self.c, tun2sock_bin, tmp / "tun2sock.log",
                                ["--config", str(self.config)], ready_addr="198.18.0.1")
        self.c.ip("route", "add", f"{ORIGIN}/32", "dev", "t2s0")

    def start_microsocks(self, password: str) -> None:
        if self.micro is not None:
            self.micro.stop(timeout=2)
        self.micro = self.s.start(["microsocks", "-i", PA, "-p", str(PORT_A), "-u", USER,
                                   "-P", password], self.tmp / f"microsocks-{password[:3]}.log")
        wait_for(lambda: self.listening(f"{PA}:{PORT_A}"), "microsocks A", proc=self.micro)

    def listening(self, hostport: str) -> bool:
        return hostport in self.s.run("ss", "-ltnH", check=False).stdout

    def upstreams(self):
        out = self.c.run("ss", "-tnH", "state", "established", check=False).stdout
        return re.findall(r"(192\.0\.2\.[12]:108[01])", out)

    def proxy_stats(self, addr: str) -> dict:
        p = self.c.run("curl", "-s", "--max-time", "2", f"http://127.0.0.1:{METRICS_PORT}/stats",
                       check=False)
        for px in json.loads(p.stdout).get("proxies", []):
            if px["proxy"].startswith(addr + ":") or (px.get("address") or "").startswith(addr + ":"):
                return px
        raise AssertionError(f"no proxy {addr} in /stats: {p.stdout[:2000]}")

    def metric(self, name: str) -> float:
        p = self.c.run("curl", "-s", "--max-time", "2", f"http://127.0.0.1:{METRICS_PORT}/metrics",
                       check=False)
        m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", p.stdout, re.M)
        return float(m.group(1)) if m else -1.0

    def download(self, name: str = "big") -> subprocess.Popen:
        """curl /big | sha256sum into tmp/NAME.sha256; the exit status is curl's."""
        out = open(self.tmp / f"{name}.sha256", "w")
        p = subprocess.Popen(["/bin/bash", "-o", "pipefail", "-c", " ".join(self.c.cmd(
            "curl", "-s", "--max-time", "60", f"http://{ORIGIN}:{HTTP_PORT}/big")) +
            " | sha256sum"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def curl_ok(self) -> bool:
        p = self.c.run("curl", "-s", "--max-time", "3", f"http://{ORIGIN}:{HTTP_PORT}/hello.txt",
                       check=False, timeout=10)
        return p.returncode == 0 and "hello through a proxy" in p.stdout

    def sighup(self, text: str) -> int:
        """Writes the config file, sends SIGHUP, and returns where the log was before."""
        mark = len(self.t.output())
        self.config.write_text(text)
        self.t.signal(signal.SIGHUP)
        return mark

    def close(self):
        import os
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait(timeout=5)
        rc = self.t.stop()
        self.c.close()
        self.s.close()
        shutil.rmtree(self.netns_etc, ignore_errors=True)
        assert rc == 0, self.t.output()[-3000:]


@pytest.fixture
def world(tmp_path, tun2sock_bin, request):
    w = World(tmp_path, tun2sock_bin, getattr(request, "param", PA))
    yield w
    w.close()


@pytest.mark.parametrize("world", [PA, A_NAME], ids=["by-address", "by-name"], indirect=True)
def test_a_password_changed_in_the_file_reaches_new_flows_and_spares_the_other_proxy(world):
    # A is not there yet: the download's SYN is refused by A and carried by B.
    dl = world.download()
    wait_for(lambda: world.upstreams() == [f"{PA}:{PORT_A}"] or
             f"{PB}:{PORT_B}" in world.upstreams(), "the download through B", proc=world.t)
    assert world.upstreams() == [f"{PB}:{PORT_B}"], world.upstreams()
    # A comes up with the password of the file: a probe finds it, new flows use it.
    world.start_microsocks(OLD)
    wait_for(lambda: world.proxy_stats(PA)["state"] == "UP", "A up again", timeout=10)
    before = world.proxy_stats(PA)["flows"]
    assert world.curl_ok(), world.t.output()[-2000:]
    assert world.proxy_stats(PA)["flows"] == before + 1, "the curl did not go through A"
    # A's password changes on the server: A refuses the old credentials.
    world.start_microsocks(NEW)
    auth_before = world.proxy_stats(PA)["failures"].get("auth", 0)
    world.curl_ok()  # through B after A's refusal (the SYN is retried on the next proxy)
    assert world.proxy_stats(PA)["failures"].get("auth", 0) > auth_before, \
        "the old password was not refused: the test would prove nothing"
    # The new password in the file and SIGHUP: new flows go through A with it.
    t0 = time.monotonic()
    mark = world.sighup(config_text(NEW, a_host=world.a_host))
    wait_for(lambda: "reload: " in world.t.output()[mark:] and
             "applied" in world.t.output()[mark:], "the reload", proc=world.t)
    log = world.t.output()[mark:]
    assert "1 flows reset" not in log and re.search(r"reload: 0 flows reset", log), log
    if world.a_host != PA:
        # The name keeps the address it resolved to: A carries new flows at once.
        assert f"reload: proxy 1 of 2: {A_NAME}:{PORT_A} at {PA}:{PORT_A}" in log, log
    flows, auth = world.proxy_stats(PA)["flows"], world.proxy_stats(PA)["failures"].get("auth", 0)
    assert world.curl_ok(), world.t.output()[-2000:]
    print(f"\nreload: first curl through A with the new password "
          f"{(time.monotonic() - t0) * 1000:.0f} ms after SIGHUP")
    assert world.proxy_stats(PA)["flows"] == flows + 1, "the curl did not go through A"
    assert world.proxy_stats(PA)["failures"].get("auth", 0) == auth, "A refused the new password"
    assert NEW not in world.t.output() and OLD not in world.t.output(), "a password was logged"
    # The download through B went on through the reload and ends intact.
    assert dl.poll() is None, "the download through B ended at the reload"
    assert dl.wait(timeout=40) == 0
    got = (world.tmp / "big.sha256").read_text().split()[0]
    assert got == big_sha256(), "the download through B was damaged"


def test_a_broken_file_changes_nothing_and_says_so(world):
    world.start_microsocks(OLD)
    wait_for(lambda: world.curl_ok(), "a curl through A", proc=world.t, timeout=10)
    dl = world.download()
    wait_for(lambda: f"{PA}:{PORT_A}" in world.upstreams(), "the download through A",
             proc=world.t)
    # Not YAML.
    mark = world.sighup(config_text(OLD) + "mtu: [1500\n")
    wait_for(lambda: "nothing changed" in world.t.output()[mark:], "the reload's refusal",
             proc=world.t)
    line = [l for l in world.t.output()[mark:].splitlines() if "nothing changed" in l][0]
    assert "tun2sock.yaml:" in line and "YAML" in line, line
    # A bad value: named with its line and key; and still nothing changes.
    mark = world.sighup(config_text(NEW, "udp-timeout: 10x\n"))
    wait_for(lambda: "nothing changed" in world.t.output()[mark:], "the reload's refusal",
             proc=world.t)
    assert re.search(r"tun2sock\.yaml:10: udp-timeout: '10x'", world.t.output()[mark:]), \
        world.t.output()[mark:]
    assert world.t.alive(), "tun2sock stopped on SIGHUP with --config"
    assert world.metric('tun2sock_config_reloads_total{result="failed"}') == 2
    assert world.metric("tun2sock_config_last_reload_successful") == 0
    assert world.curl_ok(), "a new flow fails after a refused reload (the old password holds)"
    # An option that cannot change at run time: reported, left alone; the rest applies.
    mark = world.sighup(config_text(OLD, "mtu: 1400\nlog-level: debug\n"))
    wait_for(lambda: "applied" in world.t.output()[mark:], "the reload", proc=world.t)
    log = world.t.output()[mark:]
    assert re.search(r"reload: .*mtu changed, which needs a restart", log), log
    assert "applied log-level" in log, log
    assert world.metric('tun2sock_config_reloads_total{result="applied"}') == 1
    assert world.metric("tun2sock_config_last_reload_successful") == 1
    assert "mtu 1500" in world.c.run("ip", "link", "show", "t2s0").stdout
    assert world.curl_ok()
    assert dl.poll() is None, "the download through A ended at a reload that left A alone"
    assert dl.wait(timeout=40) == 0
    assert (world.tmp / "big.sha256").read_text().split()[0] == big_sha256()


def test_a_proxy_removed_from_the_file_has_its_flows_reset_and_only_those(world):
    # A download through B (A is not there yet), then one through A (A comes up).
    dl_b = world.download("via-b")
    wait_for(lambda: f"{PB}:{PORT_B}" in world.upstreams(), "the download through B",
             proc=world.t)
    world.start_microsocks(OLD)
    wait_for(lambda: world.proxy_stats(PA)["state"] == "UP", "A up again", timeout=10)
    dl_a = world.download("via-a")
    wait_for(lambda: f"{PA}:{PORT_A}" in world.upstreams(), "the download through A",
             proc=world.t)
    # B removed from the file: its flow is reset at once, A's runs on.
    text = config_text(OLD).replace(f"  - socks5://{PB}:{PORT_B}\n", "")
    assert PB not in text
    t0 = time.monotonic()
    mark = world.sighup(text)
    dl_b.wait(timeout=5)
    print(f"\nreload: the download through the removed proxy ended "
          f"{(time.monotonic() - t0) * 1000:.0f} ms after SIGHUP")
    assert dl_b.returncode != 0, "the download through the removed proxy was not reset"
    wait_for(lambda: "applied" in world.t.output()[mark:], "the reload", proc=world.t)
    assert "reload: 1 flows reset" in world.t.output()[mark:], world.t.output()[mark:]
    assert f"{PB}:{PORT_B}" not in world.upstreams()
    assert dl_a.poll() is None, "the download through A ended at the reload"
    assert dl_a.wait(timeout=40) == 0
    assert (world.tmp / "via-a.sha256").read_text().split()[0] == big_sha256()
    # New flows: only A now.
    assert world.curl_ok()
