"""Several proxies with the real binary in real namespaces (docs/proxies.md): two dante
instances, failover, comeback, and every proxy down.

    client ns "fcli": up1 198.51.100.2/24 --- srv dn1 198.51.100.1/24 (the default route)
                      t2s0 198.18.0.1/15 (tun2sock); 192.0.2.80/32 (the origin) routed into t2s0
    server ns "fsrv": lo 192.0.2.1 (dante A, port 1080), 192.0.2.2 (dante B, port 1081),
                      192.0.2.80 (HTTP origin, port 8080)

tun2sock runs at the default log level with --proxy A --proxy B (A preferred) and
--proxy-probe-interval 500ms. The measured times are printed (pytest -s shows them).

Namespaces are named t2sb-<pid>-<n>-<tag> (test_bin_util.py) and removed; every process is
stopped by its PID (dante with its process group: its io-children serve open sessions).
"""
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from test_bin_util import PACED_ORIGIN_PY, Netns, Process, need, start_dante, start_tun2sock, veth, wait_for

pytestmark = [pytest.mark.root]

PA, PB, ORIGIN = "192.0.2.1", "192.0.2.2", "192.0.2.80"
PORT_A, PORT_B, HTTP_PORT = 1080, 1081, 8080
GW, ME = "198.51.100.1", "198.51.100.2"
METRICS_PORT = 9473
RESET_WITHIN_S, NEW_FLOW_WITHIN_S, REFUSED_WITHIN_S = 2.0, 3.0, 1.0



# A SOCKS5 server that answers the greeting ("no authentication") and then never answers the
# request: the proxy that hangs after the greeting.
HANG_PY = r"""
import socket, sys, threading
def serve(c):
    try:
        c.recv(3)
        c.sendall(bytes([5, 0]))
        while c.recv(4096):
            pass
    except OSError:
        pass
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


class World:
    def __init__(self, tmp: Path, tun2sock_bin: Path, hang_first: bool = False,
                 extra: tuple = (), single: bool = False):
        need("danted", "curl", "ss")
        self.tmp = tmp
        self.c = Netns("fcli")
        self.s = Netns("fsrv")
        self.procs = []
        veth(self.c, f"{ME}/24", self.s, f"{GW}/24", a_dev="up1", b_dev="dn1")
        for a in (PA, PB, ORIGIN):
            self.s.ip("addr", "add", f"{a}/32", "dev", "lo")
        origin = tmp / "origin.py"
        origin.write_text(PACED_ORIGIN_PY)
        self.s.start(["/usr/bin/python3", str(origin), ORIGIN, str(HTTP_PORT)], tmp / "http.log")
        if hang_first:
            hang = tmp / "hang.py"
            hang.write_text(HANG_PY)
            self.hang = self.s.start(["/usr/bin/python3", str(hang), PA, str(PORT_A)],
                                     tmp / "hang.log")
            wait_for(lambda: self.listening(f"{PA}:{PORT_A}"), "the hanging proxy")
            self.dante = {PB: self.start_dante(PB)}
        else:
            self.dante = {PA: self.start_dante(PA), PB: self.start_dante(PB)}
        wait_for(lambda: self.listening(f"{ORIGIN}:{HTTP_PORT}"), "the origin")
        self.c.ip("route", "add", "default", "via", GW, "dev", "up1")
        second = [] if single else ["--proxy", f"socks5://{PB}:{PORT_B}"]
        args = ["--device", "t2s0", "--proxy", f"socks5://{PA}:{PORT_A}",
                *second, "--proxy-probe-interval", "500ms",
                "--address", "198.18.0.1/15", "--metrics", f"127.0.0.1:{METRICS_PORT}", *extra]
        self.t = start_tun2sock(self.c, tun2sock_bin, tmp / "tun2sock.log", args,
                                ready_addr="198.18.0.1")
        self.c.ip("route", "add", f"{ORIGIN}/32", "dev", "t2s0")

    def start_dante(self, addr: str) -> Process:
        port = PORT_A if addr == PA else PORT_B
        d = self.tmp / f"dante-{port}"
        d.mkdir(exist_ok=True)
        p = start_dante(self.s, d, [addr], port, external="lo", commands="connect")
        wait_for(lambda: self.listening(f"{addr}:{port}"), f"dante on {addr}:{port}", proc=p)
        return p

    def kill_dante(self, addr: str) -> None:
        self.dante[addr].stop(timeout=2)

    def listening(self, hostport: str) -> bool:
        return hostport in self.s.run("ss", "-ltnH", check=False).stdout

    def upstreams(self):
        """The proxies tun2sock has established sockets to (ip:port)."""
        out = self.c.run("ss", "-tnH", "state", "established", check=False).stdout
        return re.findall(r"(192\.0\.2\.[12]:108[01])", out)

    def log(self) -> str:
        return self.t.output()

    def metric(self, name: str) -> float:
        p = self.c.run("curl", "-s", "--max-time", "2", f"http://127.0.0.1:{METRICS_PORT}/metrics",
                       check=False)
        m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", p.stdout, re.M)
        return float(m.group(1)) if m else -1.0

    def stats(self) -> dict:
        p = self.c.run("curl", "-s", "--max-time", "2", f"http://127.0.0.1:{METRICS_PORT}/stats",
                       check=False)
        return json.loads(p.stdout)

    def download(self) -> subprocess.Popen:
        log = open(self.tmp / f"download-{len(self.procs)}.log", "w")
        p = subprocess.Popen(self.c.cmd("curl", "-s", "-o", "/dev/null",
                                        f"http://{ORIGIN}:{HTTP_PORT}/slow"),
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def curl(self, max_time: float = 1.0) -> subprocess.CompletedProcess:
        return self.c.run("curl", "-s", "--max-time", str(max_time),
                          f"http://{ORIGIN}:{HTTP_PORT}/hello.txt", check=False, timeout=10)

    def curl_ok(self) -> bool:
        p = self.curl()
        return p.returncode == 0 and "hello through a proxy" in p.stdout

    def close(self):
        import os
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait(timeout=5)
        self.c.close()
        self.s.close()


@pytest.fixture
def world(tmp_path, tun2sock_bin):
    w = World(tmp_path, tun2sock_bin)
    yield w
    w.close()


def _ends_within(p: subprocess.Popen, seconds: float) -> float:
    t0 = time.monotonic()
    try:
        p.wait(timeout=seconds + 3)
    except subprocess.TimeoutExpired:
        pass
    return time.monotonic() - t0


def test_first_proxy_dies_traffic_moves_to_the_second_and_comes_back(world):
    dl = world.download()
    wait_for(lambda: world.upstreams() == [f"{PA}:{PORT_A}"], "the download through A",
             proc=world.t)
    time.sleep(0.5)
    assert dl.poll() is None, "the download ended early"
    t0 = time.monotonic()
    world.kill_dante(PA)
    ended_s = _ends_within(dl, RESET_WITHIN_S)
    assert dl.poll() is not None and dl.returncode != 0, \
        f"the download through the dead proxy did not end\n{world.log()[-3000:]}"
    # The very first new curl succeeds: its SYN is held while A refuses, then carried by B.
    assert world.curl_ok(), f"the first curl after A died failed\n{world.log()[-3000:]}"
    recovered = time.monotonic()
    print(f"\nA killed: download ended after {ended_s * 1000:.0f} ms, a new curl succeeded "
          f"after {(recovered - t0) * 1000:.0f} ms")
    assert ended_s <= RESET_WITHIN_S
    assert recovered - t0 <= NEW_FLOW_WITHIN_S
    # A long download on B, then A comes back: new flows use A, the one on B continues.
    dl_b = world.download()
    wait_for(lambda: world.upstreams() == [f"{PB}:{PORT_B}"], "the download through B",
             proc=world.t)
    wait_for(lambda: f"proxy {PA}:{PORT_A}: down" in world.log(), "A declared down",
             timeout=10, proc=world.t)
    world.dante[PA] = world.start_dante(PA)
    t1 = time.monotonic()
    wait_for(lambda: f"proxy {PA}:{PORT_A}: up again" in world.log(), "A up again",
             timeout=20, proc=world.t)
    print(f"A restarted: up again after {(time.monotonic() - t1) * 1000:.0f} ms")
    dl_a = world.download()
    wait_for(lambda: sorted(world.upstreams()) == [f"{PA}:{PORT_A}", f"{PB}:{PORT_B}"],
             "a new download through A beside the one through B", proc=world.t)
    assert dl_b.poll() is None, "the download through B was interrupted by A's comeback"
    assert dl_a.poll() is None


def test_every_proxy_down_refuses_at_once_and_the_log_says_why(world):
    assert world.curl_ok()
    world.kill_dante(PA)
    world.kill_dante(PB)
    # Two attempts give each proxy its first failure; the probes then take both down.
    for _ in range(2):
        world.curl()
    wait_for(lambda: "every proxy is down" in world.log(), "both proxies declared down",
             timeout=10, proc=world.t)
    before = world.metric("tun2sock_syn_refused_offline_total")
    t0 = time.monotonic()
    p = world.curl(max_time=5)
    took = time.monotonic() - t0
    print(f"\nboth down: a new curl refused after {took * 1000:.0f} ms (exit {p.returncode})")
    assert p.returncode == 7, p  # curl: failed to connect (RST)
    assert took < REFUSED_WITHIN_S
    assert world.metric("tun2sock_syn_refused_offline_total") == before + 1
    log = world.log()
    # The default log level says why: the failure, each proxy down, the refusal.
    assert f"proxy {PA}:{PORT_A}: connection refused" in log, log[-3000:]
    assert f"proxy {PA}:{PORT_A}: down (connection refused)" in log, log[-3000:]
    assert f"proxy {PB}:{PORT_B}: down (connection refused)" in log, log[-3000:]
    # A DNS query through the tunnel gets SERVFAIL at once instead of silence.
    script = ("import socket,time;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
              "s.settimeout(2);t=time.monotonic();"
              f"s.sendto(bytes.fromhex('123401000001000000000000016100000100 01'.replace(' ','')),"
              f"('{ORIGIN}',53));d=s.recv(512);"
              "print(d[3]&15, round(time.monotonic()-t,3))")
    r = world.c.run("/usr/bin/python3", "-c", script, check=False, timeout=10)
    assert r.returncode == 0, r
    rcode, took_dns = r.stdout.split()
    print(f"both down: a DNS query answered {rcode} (2 = SERVFAIL) after {float(took_dns) * 1000:.0f} ms")
    assert rcode == "2" and float(took_dns) < REFUSED_WITHIN_S
    # /stats: each proxy's state, last error and last success.
    proxies = world.stats()["proxies"]
    assert [p["proxy"] for p in proxies] == [f"{PA}:{PORT_A}", f"{PB}:{PORT_B}"]
    assert [p["state"] for p in proxies] == ["DOWN", "DOWN"]
    assert [p["last_error"] for p in proxies] == ["refused", "refused"]
    assert proxies[0]["last_success_seconds_ago"] is not None  # the first curl went through A
    assert proxies[0]["failures"]["refused"] >= 3


def test_a_proxy_that_hangs_after_the_greeting_is_declared_down_and_traffic_moves_on(
        tmp_path, tun2sock_bin):
    """A answers the greeting and never the CONNECT. With a probe target (a greeting alone
    would pass) and a 2 s connect timeout: the first curl is refused after the timeout, the
    next goes through B at once; A's CONNECT probes time out and A is declared down."""
    w = World(tmp_path, tun2sock_bin, hang_first=True,
              extra=("--tcp-connect-timeout", "2s", "--proxy-probe-target",
                     f"{ORIGIN}:{HTTP_PORT}"))
    try:
        t0 = time.monotonic()
        first = w.curl(max_time=5)
        took = time.monotonic() - t0
        assert first.returncode != 0, "the hanging proxy carried a flow"
        assert 1.5 <= took <= 4, f"the first curl ended after {took:.2f} s"
        t1 = time.monotonic()
        assert w.curl_ok(), f"the next curl did not go through B\n{w.log()[-3000:]}"
        print(f"\nhanging A: first curl refused after {took * 1000:.0f} ms (the connect timeout), "
              f"the next through B in {(time.monotonic() - t1) * 1000:.0f} ms")
        wait_for(lambda: f"proxy {PA}:{PORT_A}: down (timed out)" in w.log(), "A declared down",
                 timeout=15, proc=w.t)
        assert f"proxy {PA}:{PORT_A}: timed out" in w.log()
        assert w.curl_ok()
        proxies = w.stats()["proxies"]
        assert proxies[0]["state"] == "DOWN" and proxies[0]["last_error"] == "timeout"
        assert proxies[0]["failures"]["timeout"] >= 3
        # The handshake timeout is in the global failure metrics too, by cause.
        assert w.metric('tun2sock_upstream_proxy_failures_total{cause="timeout"}') >= 1
        assert w.metric("tun2sock_upstream_failures_total") >= 1
        assert w.stats()["upstream_failures_by_cause"]["timeout"] >= 1
    finally:
        w.close()


def test_a_single_proxy_gets_the_same_health_log_and_metrics(tmp_path, tun2sock_bin):
    """One --proxy (issue 20: it had no health): declared down at the default log level,
    new flows refused at once while it is down, up again after a probe, and its per-proxy
    metrics (flows, bytes, failures by cause, state, time in it) in /stats and /metrics."""
    w = World(tmp_path, tun2sock_bin, single=True)
    try:
        assert w.curl_ok()
        px = w.stats()["proxies"]
        assert len(px) == 1 and px[0]["proxy"] == f"{PA}:{PORT_A}" and px[0]["state"] == "UP"
        assert px[0]["flows"] >= 1 and px[0]["bytes_down"] > 0 and px[0]["bytes_up"] > 0
        assert px[0]["address"] == f"{PA}:{PORT_A}"
        w.kill_dante(PA)
        w.curl()  # its first failure; the probes take it down
        wait_for(lambda: f"proxy {PA}:{PORT_A}: down (connection refused)" in w.log(),
                 "the single proxy declared down", timeout=10, proc=w.t)
        assert "every proxy is down: new flows are refused at once" in w.log()
        t0 = time.monotonic()
        p = w.curl(max_time=5)
        took = time.monotonic() - t0
        print(f"\nsingle proxy down: a new curl refused after {took * 1000:.0f} ms")
        assert p.returncode == 7 and took < REFUSED_WITHIN_S, p
        px = w.stats()["proxies"][0]
        assert px["state"] == "DOWN" and px["last_error"] == "refused" and px["downs"] == 1
        assert px["failures"]["refused"] >= 3 and px["state_seconds"] >= 0
        assert w.metric(f'tun2sock_proxy_state{{proxy="{PA}:{PORT_A}",state="DOWN"}}') == 1
        assert w.metric('tun2sock_upstream_proxy_failures_total{cause="refused"}') >= 1
        w.dante[PA] = w.start_dante(PA)
        wait_for(lambda: f"proxy {PA}:{PORT_A}: up again" in w.log(), "the proxy up again",
                 timeout=40, proc=w.t)
        assert w.curl_ok()
        assert w.stats()["proxies"][0]["state"] == "UP"
    finally:
        w.close()
