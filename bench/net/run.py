#!/usr/bin/python3
"""The real-network benchmark of tun2sock (scripts/bench --net; docs/benchmarks.md).

Two network namespaces joined by a veth pair:

    client ns tsbn-PID-c: va 203.0.113.1/24; the TUN (198.18.0.1/15) with 192.0.2.80/32
                          routed into it; 192.0.2.81/32 routed over the veth (kernel path);
                          the relay ceiling on 127.0.0.1:9000..9003
    server ns tsbn-PID-s: vb 203.0.113.2/24; lo 192.0.2.80 and 192.0.2.81; iperf3 -s,
                          nginx (8080: files, one request per connection; 8081: idle
                          connections held), dante on 203.0.113.2:1080, a UDP echo on :7

CPU 0 runs only the thing measured (tun2sock, or the relay); everything else (the load, the
servers) is pinned to CPU 1. Three paths are measured in the same run, interleaved run by run:

    kernel  the kernel path, no tunnel, no proxy (routed over the veth)
    relay   bench/net/relay.c: one SOCKS5 CONNECT through the same dante, then a copy loop
    tunnel  tun2sock on the TUN, through the same dante
    before  (with --before BINARY) the same with another tun2sock binary, restarted in place of
            the tunnel for each measurement: before/after figures interleaved in one run

--fastsocks builds /work/shared/tools/fastsocks.c (splice-based SOCKS5, CONNECT only; path
with --fastsocks SRC) and uses it instead of dante for TCP: dante caps a plain relay near
7 Gbit/s. The tunnel's upload figures include the TUN's packet counts (packets tun2sock wrote
to the TUN per packet it read), and the tests 'slow' (N connections each moving a little data
every second: RSS) and 'conn' (a fresh tunnel: peak RSS) measure memory under load.

Everything started is stopped by its PID, the namespaces are deleted, on any exit.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]
# Plain-stdlib helpers shared with the pytest harness (that module does not need pytest).
sys.path.insert(0, str(ROOT / "harness"))
from test_bin_util import dante_conf, proc_cpu_seconds  # noqa: E402
PY = "/usr/bin/python3"
C_ADDR, S_ADDR = "203.0.113.1", "203.0.113.2"
TUN_DST, KERNEL_DST = "192.0.2.80", "192.0.2.81"
SOCKS_PORT, IPERF_PORT, HTTP_PORT, IDLE_PORT, ECHO_PORT = 1080, 5201, 8080, 8081, 7
FASTSOCKS_PORT, SLOW_PORT = 1082, 7007
RELAY_IPERF, RELAY_HTTP, RELAY_IDLE = 9000, 9001, 9002
TUN = "t2sbn0"
LOAD_CPU, T2S_CPU = "1", "0"

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {tmp}/nginx-body;
  proxy_temp_path {tmp}/nginx-proxy;
  fastcgi_temp_path {tmp}/nginx-fcgi;
  uwsgi_temp_path {tmp}/nginx-uwsgi;
  scgi_temp_path {tmp}/nginx-scgi;
  types {{ application/octet-stream bin; text/plain txt; }}
  server {{ listen {http}; root {www}; keepalive_timeout 0; }}
  server {{ listen {idle}; root {www}; client_header_timeout 600s; keepalive_timeout 600s; }}
}}
"""

# A UDP echo server bound to each address it serves (a socket on 0.0.0.0 answers from the
# route's source address, which SOCKS relays and connected clients drop).
ECHO_PY = r"""
import select, socket, sys
socks = []
for a in sys.argv[2:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((a, int(sys.argv[1]))); socks.append(s)
while True:
    r, _, _ = select.select(socks, [], [])
    for s in r:
        for _ in range(64):
            try:
                d, peer = s.recvfrom(65535, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            s.sendto(d, peer)
"""

# Holds N idle TCP connections open to HOST:PORT, prints "ok N" once all are connected, then
# waits for stdin to close.
IDLE_PY = r"""
import resource, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 256, n + 256))
socks = []
deadline = time.monotonic() + 60
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(max(1.0, deadline - time.monotonic()))
    s.connect((host, port))
    socks.append(s)
print("ok", len(socks), flush=True)
sys.stdin.read()
"""

# A TCP echo server (the 'slow' test's far end), one thread, selectors.
ECHO_TCP_PY = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2]))); ls.listen(4096); ls.setblocking(False)
sel.register(ls, selectors.EVENT_READ)
while True:
    for k, _ in sel.select():
        if k.fileobj is ls:
            try:
                c, _ = ls.accept(); c.setblocking(False); sel.register(c, selectors.EVENT_READ)
            except OSError:
                pass
            continue
        try:
            d = k.fileobj.recv(65536)
        except OSError:
            d = b""
        if not d:
            sel.unregister(k.fileobj); k.fileobj.close(); continue
        try:
            k.fileobj.send(d)
        except OSError:
            pass
"""

# N connections to HOST:PORT, each sending B bytes every second and reading the echo, for D
# seconds; prints "ok N MOVED" at the end (then waits for stdin to close).
SLOW_PY = r"""
import resource, selectors, socket, sys, time
host, port, n, b, dur = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 256, n + 256))
socks = []
deadline = time.monotonic() + 60
for i in range(n):
    s = socket.socket(); s.settimeout(max(1.0, deadline - time.monotonic()))
    s.connect((host, port)); s.setblocking(False); socks.append(s)
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
moved = 0; payload = b"s" * b
end = time.monotonic() + dur; tick = time.monotonic()
while time.monotonic() < end:
    if time.monotonic() >= tick:
        for s in socks:
            try:
                s.send(payload)
            except OSError:
                pass
        tick += 1.0
    for k, _ in sel.select(0.05):
        try:
            moved += len(k.fileobj.recv(65536))
        except OSError:
            pass
print("ok", len(socks), moved, flush=True)
sys.stdin.read()
"""

# UDP ping-pong for D seconds: one 64-byte datagram, wait for its echo (100 ms), repeat.
# Direct (a plain UDP socket to HOST:PORT) or through a SOCKS5 UDP ASSOCIATE at PROXY:PPORT.
UDP_PY = r"""
import json, socket, struct, sys, time
mode, host, port, dur = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(0.1)
hdr = b""
if mode == "associate":
    px, pport = sys.argv[5], int(sys.argv[6])
    t = socket.create_connection((px, pport), timeout=5)
    u.bind(("0.0.0.0", 0))
    t.sendall(b"\x05\x01\x00"); assert t.recv(2) == b"\x05\x00"
    me = socket.inet_aton(t.getsockname()[0]); uport = u.getsockname()[1]
    t.sendall(b"\x05\x03\x00\x01" + me + struct.pack("!H", uport))
    r = t.recv(10); assert r[1] == 0, r
    rh, rp = socket.inet_ntoa(r[4:8]), struct.unpack("!H", r[8:10])[0]
    if rh == "0.0.0.0": rh = px
    u.connect((rh, rp))
    hdr = b"\x00\x00\x00\x01" + socket.inet_aton(host) + struct.pack("!H", port)
else:
    u.connect((host, port))
payload = b"x" * 64
sent = got = 0
rtts = []
end = time.monotonic() + dur
while time.monotonic() < end:
    t0 = time.monotonic()
    u.send(hdr + payload); sent += 1
    try:
        d = u.recv(2048)
        if d.endswith(payload): got += 1; rtts.append(time.monotonic() - t0)
    except socket.timeout:
        pass
rtts.sort()
p99 = rtts[int(len(rtts) * 0.99)] * 1e6 if rtts else None
print(json.dumps({"sent": sent, "received": got, "seconds": dur, "p99_us": p99}))
"""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: List[str], check: bool = True, timeout: float = 120, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"$ {' '.join(cmd)}\nexit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


class World:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        tag = f"tsbn-{os.getpid()}"
        self.c, self.s = f"{tag}-c", f"{tag}-s"
        self.procs: List[subprocess.Popen] = []
        self.files = []

    def ns(self, which: str, *args: str) -> List[str]:
        return ["ip", "netns", "exec", which, *args]

    def sh(self, which: str, script: str, check: bool = True):
        return run(self.ns(which, "sh", "-c", script), check=check)

    def start(self, which: str, args: List[str], name: str, **kw) -> subprocess.Popen:
        f = open(self.tmp / f"{name}.log", "w")
        self.files.append(f)
        p = subprocess.Popen(self.ns(which, *args), stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True, **kw)
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p: subprocess.Popen, timeout: float = 5) -> None:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=timeout)

    def wait(self, pred, what: str, timeout: float = 10, proc=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what}: the process exited ({proc.returncode})")
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}")

    def listening(self, port: int, proto: str = "t", which: Optional[str] = None) -> bool:
        r = run(self.ns(which or self.s, "ss", f"-l{proto}nH", f"sport = :{port}"), check=False)
        return r.returncode == 0 and r.stdout.strip() != ""

    def setup(self) -> None:
        for n in (self.c, self.s):
            run(["ip", "netns", "add", n])
            self.sh(n, "ip link set lo up; sysctl -qw net.ipv4.conf.all.rp_filter=0; "
                       "sysctl -qw net.ipv4.conf.default.rp_filter=0")
        va, vb = f"tsbc{os.getpid() % 100000}", f"tsbs{os.getpid() % 100000}"
        run(["ip", "link", "add", va, "type", "veth", "peer", "name", vb])
        run(["ip", "link", "set", va, "netns", self.c])
        run(["ip", "link", "set", vb, "netns", self.s])
        self.sh(self.c, f"ip link set {va} name va && ip addr add {C_ADDR}/24 dev va && "
                        f"ip link set va up && ip route add {KERNEL_DST}/32 via {S_ADDR}")
        self.sh(self.s, f"ip link set {vb} name vb && ip addr add {S_ADDR}/24 dev vb && "
                        f"ip link set vb up && ip addr add {TUN_DST}/32 dev lo && "
                        f"ip addr add {KERNEL_DST}/32 dev lo && "
                        f"ip route add 198.18.0.0/15 via {C_ADDR}")

    def close(self) -> None:
        for p in reversed(self.procs):
            try:
                self.stop(p)
            except Exception as e:  # keep cleaning up
                log(f"stopping {p.args}: {e}")
        for f in self.files:
            f.close()
        for n in (self.c, self.s):
            run(["ip", "netns", "del", n], check=False)


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def summary(values: List[float]) -> Dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "runs": values}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": values}


class Bench:
    def __init__(self, args, tmp: Path):
        self.a = args
        self.tmp = tmp
        self.w = World(tmp)
        self.t2s: Optional[subprocess.Popen] = None
        self.relays: Dict[int, subprocess.Popen] = {}
        self.relay_bin = tmp / "relay"
        self.cur_bin = args.binary
        self.socks_port = FASTSOCKS_PORT if args.fastsocks else SOCKS_PORT

    # --- processes ---------------------------------------------------------------------

    def start_servers(self) -> None:
        w, tmp = self.w, self.tmp
        www = tmp / "www"
        www.mkdir()
        (www / "small.txt").write_text("hello from the origin\n" * 4)
        with open(www / "100m.bin", "wb") as f:
            for _ in range(100):
                f.write(os.urandom(1 << 20))
        pin = ["taskset", "-c", LOAD_CPU]
        big = ["prlimit", "--nofile=16384"]
        p = w.start(w.s, pin + ["iperf3", "-s", "-p", str(IPERF_PORT)], "iperf3-server")
        w.wait(lambda: w.listening(IPERF_PORT), "iperf3 -s", proc=p)
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, www=www, http=HTTP_PORT,
                                                          idle=IDLE_PORT))
        p = w.start(w.s, big + pin + ["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
                    "nginx")
        w.wait(lambda: w.listening(HTTP_PORT) and w.listening(IDLE_PORT), "nginx", proc=p)
        (tmp / "danted.conf").write_text(dante_conf([S_ADDR], SOCKS_PORT))
        p = w.start(w.s, big + pin + ["danted", "-f", str(tmp / "danted.conf"), "-N", "1",
                                      "-p", str(tmp / "danted.pid")], "danted")
        w.wait(lambda: w.listening(SOCKS_PORT), "dante", proc=p)
        if self.a.fastsocks:
            fs = tmp / "fastsocks"
            run(["cc", "-O2", "-pthread", "-o", str(fs), self.a.fastsocks])
            p = w.start(w.s, big + pin + [str(fs), S_ADDR, str(FASTSOCKS_PORT)], "fastsocks")
            w.wait(lambda: w.listening(FASTSOCKS_PORT), "fastsocks", proc=p)
        (tmp / "echo_tcp.py").write_text(ECHO_TCP_PY)
        p = w.start(w.s, big + pin + [PY, str(tmp / "echo_tcp.py"), TUN_DST, str(SLOW_PORT)],
                    "tcp-echo")
        w.wait(lambda: w.listening(SLOW_PORT), "the TCP echo", proc=p)
        (tmp / "echo.py").write_text(ECHO_PY)
        p = w.start(w.s, pin + [PY, str(tmp / "echo.py"), str(ECHO_PORT), TUN_DST, KERNEL_DST,
                                S_ADDR], "udp-echo")
        w.wait(lambda: w.listening(ECHO_PORT, "u"), "the UDP echo", proc=p)

    def build_relay(self) -> None:
        run(["cc", "-O2", "-Wall", "-Wextra", "-o", str(self.relay_bin),
             str(ROOT / "bench" / "net" / "relay.c")])

    def start_relays(self) -> None:
        w = self.w
        for port, tport in ((RELAY_IPERF, IPERF_PORT), (RELAY_HTTP, HTTP_PORT),
                            (RELAY_IDLE, IDLE_PORT)):
            p = w.start(w.c, ["prlimit", "--nofile=16384", "taskset", "-c", T2S_CPU,
                              str(self.relay_bin), "127.0.0.1", str(port), S_ADDR,
                              str(self.socks_port), TUN_DST, str(tport)], f"relay-{port}")
            w.wait(lambda: w.listening(port, which=w.c), f"relay on {port}", proc=p)
            self.relays[tport] = p

    def start_tunnel(self, name: str = "tun2sock", binary: Optional[str] = None,
                     more: Optional[List[str]] = None) -> subprocess.Popen:
        w = self.w
        self.cur_bin = binary or self.a.binary
        cmd = ["prlimit", "--nofile=16384", "taskset", "-c", T2S_CPU, str(self.cur_bin),
               "--device", TUN, "--proxy", f"socks5://{S_ADDR}:{self.socks_port}",
               "--address", "198.18.0.1/15", "--mtu", str(self.a.mtu), "--log-level", "warn",
               *self.a.extra, *(more or [])]
        p = w.start(w.c, cmd, name)

        def up():
            r = run(w.ns(w.c, "ip", "addr", "show", "dev", TUN), check=False)
            return r.returncode == 0 and ",UP" in r.stdout and "198.18.0.1" in r.stdout

        w.wait(up, "the TUN", proc=p)
        w.sh(w.c, f"ip route replace {TUN_DST}/32 dev {TUN}")
        comm = Path(f"/proc/{p.pid}/comm").read_text().strip()
        if comm != "tun2sock":
            raise RuntimeError(f"pid {p.pid} is {comm!r}, not tun2sock")
        self.t2s = p
        return p

    def stop_tunnel(self) -> None:
        if self.t2s is not None:
            self.w.stop(self.t2s)
            self.t2s = None

    def use(self, path: str, fresh: bool = False) -> None:
        """Makes the running tunnel the one path measures ('tunnel' or 'before'), restarting
        it with the other binary when needed (or always when fresh)."""
        if path not in ("tunnel", "before"):
            return
        want = self.a.before if path == "before" else self.a.binary
        if fresh or self.t2s is None or self.cur_bin != want:
            self.stop_tunnel()
            self.start_tunnel(f"tun2sock-{path}", want)

    def use_busy_poll(self, usec: int) -> None:
        """The UDP test's variant 'tunnel-bpN': the tunnel binary restarted with --busy-poll
        N; cur_bin is marked so that the next use() restarts the plain one."""
        self.stop_tunnel()
        self.start_tunnel(f"tun2sock-bp{usec}", self.a.binary, ["--busy-poll", str(usec)])
        self.cur_bin = f"{self.a.binary} --busy-poll {usec}"

    def tun_counts(self):
        r = run(self.w.ns(self.w.c, "ip", "-s", "-j", "link", "show", "dev", TUN), check=False)
        try:
            st = json.loads(r.stdout)[0]["stats64"]
            return st["tx"]["packets"], st["rx"]["packets"]  # to tun2sock, from tun2sock
        except (ValueError, KeyError, IndexError):
            return None

    def path_pid(self, path: str, port: int) -> Optional[int]:
        if path in ("tunnel", "before"):
            return self.t2s.pid
        if path == "relay":
            return self.relays[port].pid
        return None

    def target(self, path: str, port: int):
        if path == "kernel":
            return KERNEL_DST, port
        if path == "relay":
            return "127.0.0.1", {IPERF_PORT: RELAY_IPERF, HTTP_PORT: RELAY_HTTP,
                                 IDLE_PORT: RELAY_IDLE}[port]
        return TUN_DST, port

    # --- measurements ------------------------------------------------------------------

    def iperf(self, path: str, streams: int, reverse: bool) -> Dict:
        host, port = self.target(path, IPERF_PORT)
        pid = self.path_pid(path, IPERF_PORT)
        cmd = ["taskset", "-c", LOAD_CPU, "iperf3", "-c", host, "-p", str(port), "-t",
               str(self.a.duration), "-P", str(streams), "-J"] + (["-R"] if reverse else [])
        prof = None
        self.use(path)
        pid = self.path_pid(path, IPERF_PORT)
        tc0 = self.tun_counts() if path in ("tunnel", "before") else None
        if self.a.perf and path in ("tunnel", "before"):
            out = Path(self.a.perf) / f"perf-{path}-{'down' if reverse else 'up'}{streams}.data"
            out.parent.mkdir(parents=True, exist_ok=True)
            if self.a.perf_syscalls:
                evs = ",".join(f"syscalls:sys_enter_{n}" for n in (
                    "read", "readv", "write", "writev", "recvfrom", "sendto", "epoll_wait",
                    "epoll_ctl", "timerfd_settime", "io_uring_enter"))
                probes = run(["perf", "probe", "-l"], check=False).stdout
                if "probe_libc:malloc" in probes:  # perf probe -x LIBC -a malloc (counts calls)
                    evs += ",probe_libc:malloc"
                pcmd = ["perf", "stat", "-e", evs, "-p", str(pid), "-o",
                        str(out.with_suffix(".txt"))]
            else:
                pcmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-g", "-p",
                        str(pid), "-o", str(out)]
            prof = subprocess.Popen(pcmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c0 = proc_cpu_seconds(pid) if pid else 0.0
        r = run(self.w.ns(self.w.c, *cmd), check=False, timeout=self.a.duration + 60)
        c1 = proc_cpu_seconds(pid) if pid else 0.0
        tc1 = self.tun_counts() if tc0 else None
        if prof is not None:
            prof.send_signal(signal.SIGINT)
            prof.wait(timeout=30)
        try:
            j = json.loads(r.stdout)
            rcv = j["end"]["sum_received"]
            gbps, nbytes = rcv["bits_per_second"] / 1e9, rcv["bytes"]
            snd = j["end"]["sum_sent"]
            nbytes = max(nbytes, snd["bytes"])
        except (ValueError, KeyError) as e:
            log(f"iperf3 {path} P{streams}{' -R' if reverse else ''} failed: {e}: "
                f"{r.stdout[-300:]} {r.stderr[-300:]}")
            return {"gbps": None, "cpu_s_per_gb": None}
        cpu = (c1 - c0) / (nbytes / 1e9) if pid else None
        out = {"gbps": gbps, "cpu_s_per_gb": cpu, "cpu_s": (c1 - c0) if pid else None,
               "bytes": nbytes}
        if tc0 and tc1 and tc1[0] > tc0[0]:
            # Upload: packets tun2sock wrote to the TUN (ACKs) per packet it read (data).
            out["tun_written_per_read"] = (tc1[1] - tc0[1]) / (tc1[0] - tc0[0])
        return out

    def conn_rate(self, path: str) -> Dict:
        self.use(path, fresh=True)  # a fresh tunnel: its peak RSS is this test's
        host, port = self.target(path, HTTP_PORT)
        logf = self.tmp / f"h2load-{path}.log"
        cmd = ["taskset", "-c", LOAD_CPU, "h2load", "--h1", "-t", "1", "-c", "32",
               "-n", str(self.a.conn_requests),
               f"--log-file={logf}", f"http://{host}:{port}/small.txt"]
        r = run(self.w.ns(self.w.c, *cmd), check=False, timeout=120)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed", r.stdout)
        m2 = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", r.stdout)
        if not m or not m2:
            log(f"h2load {path} failed: {r.stdout[-400:]} {r.stderr[-300:]}")
            return {"conn_per_s": None, "p99_ms": None}
        durs = []
        for line in logf.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] == "200":
                durs.append(int(parts[2]))
        durs.sort()
        p99 = durs[min(len(durs) - 1, int(len(durs) * 0.99))] / 1000 if durs else None
        pid = self.path_pid(path, HTTP_PORT)
        return {"conn_per_s": float(m2.group(3)), "p99_ms": p99,
                "succeeded": int(m.group(4)), "failed": int(m.group(5)),
                "peak_rss_kb": status_kb(pid, "VmHWM") if pid else None}

    def http_download(self, path: str) -> Dict:
        self.use(path)
        host, port = self.target(path, HTTP_PORT)
        pid = self.path_pid(path, HTTP_PORT)
        c0 = proc_cpu_seconds(pid) if pid else 0.0
        r = run(self.w.ns(self.w.c, "taskset", "-c", LOAD_CPU, "curl", "-sS", "-o", "/dev/null",
                          "--max-time", "60", "-w", "%{speed_download} %{size_download}",
                          f"http://{host}:{port}/100m.bin"), check=False, timeout=90)
        c1 = proc_cpu_seconds(pid) if pid else 0.0
        try:
            speed, size = (float(x) for x in r.stdout.split())
        except ValueError:
            log(f"curl {path} failed: {r.stderr[-300:]}")
            return {"gbps": None}
        if size != 100 << 20:
            log(f"curl {path}: {size} bytes")
            return {"gbps": None}
        return {"gbps": speed * 8 / 1e9,
                "cpu_s_per_gb": (c1 - c0) / (size / 1e9) if pid else None}

    def idle_rss(self, path: str, n: int) -> Dict:
        """RSS of the relay or a fresh tun2sock with n idle connections held open."""
        self.use(path, fresh=True)
        host, port = self.target(path, IDLE_PORT)
        pid = self.path_pid(path, IDLE_PORT)
        base = status_kb(pid, "VmRSS")
        (self.tmp / "idle.py").write_text(IDLE_PY)
        p = subprocess.Popen(self.w.ns(self.w.c, PY, str(self.tmp / "idle.py"), host,
                                       str(port), str(n)),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
        try:
            line = ""
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and p.poll() is None:
                line = p.stdout.readline()
                if line.startswith("ok"):
                    break
            if not line.startswith("ok"):
                log(f"idle connections through {path}: client did not finish")
                return {"rss_kb": None}
            time.sleep(1)
            rss, hwm = status_kb(pid, "VmRSS"), status_kb(pid, "VmHWM")
        finally:
            p.stdin.close()
            self.w.stop(p)
        return {"connections": n, "rss_kb": rss, "peak_rss_kb": hwm, "rss_before_kb": base}

    def slow_rss(self, path: str, n: int) -> Dict:
        """RSS of a fresh tun2sock with n connections each moving 512 bytes a second both
        ways (an echo) for 10 s."""
        self.use(path, fresh=True)
        pid = self.path_pid(path, 0)
        (self.tmp / "slow.py").write_text(SLOW_PY)
        p = subprocess.Popen(self.w.ns(self.w.c, "taskset", "-c", LOAD_CPU, PY,
                                       str(self.tmp / "slow.py"), TUN_DST, str(SLOW_PORT),
                                       str(n), "512", "10"),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
        try:
            line = ""
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and p.poll() is None:
                line = p.stdout.readline()
                if line.startswith("ok"):
                    break
            if not line.startswith("ok"):
                log(f"slow connections through {path}: client did not finish")
                return {"rss_kb": None}
            rss, hwm = status_kb(pid, "VmRSS"), status_kb(pid, "VmHWM")
        finally:
            p.stdin.close()
            self.w.stop(p)
        return {"connections": n, "moved_bytes": int(line.split()[2]), "rss_kb": rss,
                "peak_rss_kb": hwm}

    def udp(self, path: str) -> Dict:
        if path.startswith("tunnel-bp"):  # --udp-busy-poll N
            self.use_busy_poll(int(path[len("tunnel-bp"):]))
        else:
            self.use(path)
        (self.tmp / "udp.py").write_text(UDP_PY)
        d = str(self.a.udp_duration)
        if path == "kernel":
            args = ["direct", KERNEL_DST, str(ECHO_PORT), d]
        elif path == "relay":  # a client speaking UDP ASSOCIATE to dante itself
            args = ["associate", TUN_DST, str(ECHO_PORT), d, S_ADDR, str(SOCKS_PORT)]
        else:
            args = ["direct", TUN_DST, str(ECHO_PORT), d]
        prof = None
        ours = path in ("tunnel", "before") or path.startswith("tunnel-bp")
        stat_out = None
        if self.a.perf and ours and self.a.perf_syscalls:
            # Every system call of tun2sock during the ping-pong, divided by the round trips.
            stat_out = Path(self.a.perf) / f"syscalls-udp-{path}.txt"
            stat_out.parent.mkdir(parents=True, exist_ok=True)
            prof = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "syscalls:sys_enter_*",
                                     "-p", str(self.t2s.pid), "-o", str(stat_out)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif self.a.perf and ours:
            out = Path(self.a.perf) / f"strace-udp-{path}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            prof = subprocess.Popen(["timeout", "2", "strace", "-tt", "-p", str(self.t2s.pid),
                                     "-o", str(out)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        # The direct UDP ASSOCIATE client stands where the relay does: on the tunnel's CPU.
        # --udp-colocate puts the tunnel's client there too (the application on the same CPU
        # in both cases: each round trip then crosses CPUs twice on either path, not 4 times
        # through the tunnel against 2 for the ASSOCIATE client).
        cpu = T2S_CPU if path == "relay" or (self.a.udp_colocate and path != "kernel") \
            else LOAD_CPU
        pid = self.t2s.pid if ours else None
        c0 = proc_cpu_seconds(pid) if pid else 0.0
        r = run(self.w.ns(self.w.c, "taskset", "-c", cpu, PY, str(self.tmp / "udp.py"),
                          *args), check=False, timeout=self.a.udp_duration + 30)
        c1 = proc_cpu_seconds(pid) if pid else 0.0
        if prof is not None:
            if stat_out is not None:
                prof.send_signal(signal.SIGINT)
            prof.wait(timeout=30)
        idle = None
        if pid and self.a.udp_idle:
            # tun2sock's CPU with no traffic right after the ping-pong (busy polling's price
            # at rest: a window after the last datagram, then nothing).
            time.sleep(self.a.udp_idle)
            idle = (proc_cpu_seconds(pid) - c1) * 1e3 / self.a.udp_idle
        try:
            j = json.loads(r.stdout)
        except ValueError:
            log(f"udp {path} failed: {r.stderr[-300:]}")
            return {"rate": None}
        if j["received"] == 0:
            return {"rate": None, "loss": 1.0, "note": "no echo came back"}
        out = {"rate": j["received"] / j["seconds"], "loss": 1 - j["received"] / j["sent"],
               "p99_us": j["p99_us"]}
        if pid and j["sent"]:
            # tun2sock's CPU time per round trip: its share of each round trip's latency.
            out["cpu_us_per_rtt"] = (c1 - c0) * 1e6 / j["sent"]
        if idle is not None:
            out["idle_cpu_ms_per_s"] = idle
        if stat_out is not None and j["sent"]:
            out["syscalls_per_rtt"] = syscalls_per(stat_out, j["sent"])
        return out


def syscalls_per(path: Path, n: int) -> Dict[str, float]:
    """perf stat -x, output of syscalls:sys_enter_*: each call made, per round trip (the
    ones made at least once per 20 round trips; the rest is setup and timers)."""
    out = {}
    try:
        for line in path.read_text().splitlines():
            f = line.split(",")
            if len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].isdigit():
                per = int(f[0]) / n
                if per >= 0.05:
                    out[f[2][len("syscalls:sys_enter_"):]] = round(per, 2)
    except OSError:
        pass
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def targets(res: Dict) -> Dict:
    """The issue's targets, as ratios of medians (tunnel / relay)."""
    out = {}

    def med(*keys):
        d = res
        for k in keys:
            d = d.get(k, {}) if isinstance(d, dict) else {}
        return d.get("median") if isinstance(d, dict) else None

    for cfg in ("up1", "down1", "up4", "down4"):
        t, r = med("tcp", cfg, "tunnel", "gbps"), med("tcp", cfg, "relay", "gbps")
        if t and r:
            out[f"throughput_{cfg}_vs_relay"] = t / r
        t, r = med("tcp", cfg, "tunnel", "cpu_s_per_gb"), med("tcp", cfg, "relay", "cpu_s_per_gb")
        if t and r:
            out[f"cpu_per_gb_{cfg}_vs_relay"] = t / r
    t, r = med("conn", "tunnel", "conn_per_s"), med("conn", "relay", "conn_per_s")
    if t and r:
        out["conn_rate_vs_relay"] = t / r
    t, r = med("conn", "tunnel", "p99_ms"), med("conn", "relay", "p99_ms")
    if t and r:
        out["conn_p99_vs_relay"] = t / r
    t, r = med("udp", "tunnel", "rate"), med("udp", "relay", "rate")
    if t and r:
        out["udp_rate_vs_associate"] = t / r
    for p in res.get("udp", {}):
        t = med("udp", p, "rate")
        if p.startswith("tunnel-bp") and t and r:
            out[f"udp_rate_vs_associate_{p[len('tunnel-'):]}"] = t / r
    # The same ratio run by run (each path against the ASSOCIATE client measured seconds
    # before it), then the median: steadier than a ratio of medians on a machine whose load
    # moves between runs.
    rel = res.get("udp", {}).get("relay", {}).get("rate", {}).get("runs") or []
    for p, v in res.get("udp", {}).items():
        runs = v.get("rate", {}).get("runs") or []
        pairs = [a / b for a, b in zip(runs, rel) if a and b]
        if p != "relay" and pairs:
            name = "" if p == "tunnel" else "_" + p.replace("tunnel-", "")
            out[f"udp_rate_vs_associate{name}_paired"] = statistics.median(pairs)
    rss = res.get("rss", {}).get("tunnel", {}).get("peak_rss_kb")
    if rss:
        out["idle_peak_rss_mb"] = rss / 1024
    return out


def git_commit() -> str:
    r = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False)
    d = run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            check=False)
    return r.stdout.strip() + ("+dirty" if d.stdout.strip() else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=str(ROOT / "build" / "tun2sock"))
    ap.add_argument("--label", default="net")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="iperf3 -t (seconds)")
    ap.add_argument("--conn-requests", type=int, default=5000,
                    help="h2load -n: requests, each on a new connection")
    ap.add_argument("--udp-duration", type=int, default=5)
    ap.add_argument("--udp-colocate", action="store_true",
                    help="UDP ping-pong: the tunnel's client on the tunnel's CPU (as the "
                         "ASSOCIATE client), not on the load CPU")
    ap.add_argument("--udp-busy-poll", default="", metavar="N,N",
                    help="UDP ping-pong: also measure the tunnel binary with --busy-poll N for "
                         "each N (paths tunnel-bpN, interleaved with the others)")
    ap.add_argument("--udp-idle", type=int, default=0, metavar="S",
                    help="UDP ping-pong: after each tunnel measurement, tun2sock's CPU over S "
                         "seconds without traffic (idle_cpu_ms_per_s)")
    ap.add_argument("--idle", type=int, default=1000, help="idle connections for the RSS test")
    ap.add_argument("--mtu", type=int, default=1500, help="tun2sock --mtu")
    ap.add_argument("--paths", default="kernel,relay,tunnel")
    ap.add_argument("--tests", default="tcp,http,conn,rss,udp")
    ap.add_argument("--tcp", default="up1,down1,up4,down4", help="which iperf3 configs")
    ap.add_argument("--quick", action="store_true", help="1 run, iperf3 -t 3, shorter tests")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--no-chart", action="store_true")
    ap.add_argument("--perf", metavar="DIR",
                    help="perf record -e cpu-clock -g the tunnel during each iperf3 run")
    ap.add_argument("--perf-syscalls", action="store_true",
                    help="with --perf: count the tunnel's system calls (perf stat) instead, "
                         "and its malloc calls when a probe_libc:malloc uprobe exists")
    ap.add_argument("--before", metavar="BINARY",
                    help="also measure this tun2sock binary (path 'before'), interleaved")
    ap.add_argument("--fastsocks", nargs="?", const="/work/shared/tools/fastsocks.c",
                    metavar="SRC", help="use fastsocks (built from SRC) instead of dante")
    ap.add_argument("--slow", type=int, default=1000,
                    help="connections for the 'slow' RSS test")
    ap.add_argument("extra", nargs="*", help="more tun2sock options (after --)")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.duration, a.conn_requests, a.udp_duration = 1, 3, 4000, 2
    if os.geteuid() != 0:
        print("bench: must run as root (network namespaces, a TUN)", file=sys.stderr)
        return 1
    a.binary = str(Path(a.binary).resolve())
    if a.before:
        a.before = str(Path(a.before).resolve())
        if "tunnel" in a.paths.split(","):
            a.paths += ",before"
    missing = [t for t in ("iperf3", "danted", "nginx", "h2load", "taskset", "prlimit", "cc")
               if not shutil.which(t)]
    if not Path(a.binary).exists():
        missing.append(a.binary)
    if missing:
        print(f"bench: missing {', '.join(missing)} (scripts/install-deps; build tun2sock)",
              file=sys.stderr)
        return 1
    if (os.cpu_count() or 1) < 2:
        print("bench: needs two CPUs (the tunnel on CPU 0, the load on CPU 1)", file=sys.stderr)
        return 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (16384, 16384))
    paths = a.paths.split(",")
    tests = a.tests.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="tsbench-"))
    b = Bench(a, tmp)
    res: Dict = {}
    started = time.time()
    load0 = os.getloadavg()
    try:
        b.build_relay()
        b.w.setup()
        b.start_servers()
        b.start_relays()
        b.start_tunnel()
        log(f"world up; binary {a.binary}; logs in {tmp}")
        if "tcp" in tests:
            raw: Dict = {}
            for r in range(a.runs):
                for cfg in a.tcp.split(","):
                    streams, rev = int(cfg[-1]), cfg.startswith("down")
                    for path in paths:
                        m = b.iperf(path, streams, rev)
                        raw.setdefault(cfg, {}).setdefault(path, []).append(m)
                        log(f"run {r + 1} tcp {cfg} {path}: {m.get('gbps') or 0:.2f} Gbit/s"
                            + (f", {m['cpu_s_per_gb']:.2f} CPU s/GB"
                               if m.get("cpu_s_per_gb") else "")
                            + (f", {m['tun_written_per_read']:.2f} TUN writes/read"
                               if m.get("tun_written_per_read") is not None else ""))
            res["tcp"] = {cfg: {p: {"gbps": summary([m["gbps"] for m in ms]),
                                    "cpu_s_per_gb": summary([m["cpu_s_per_gb"] for m in ms]),
                                    "tun_written_per_read": summary(
                                        [m.get("tun_written_per_read") for m in ms])}
                                for p, ms in d.items()} for cfg, d in raw.items()}
        if "http" in tests:
            raw = {}
            for r in range(a.runs):
                for path in paths:
                    m = b.http_download(path)
                    raw.setdefault(path, []).append(m)
                    log(f"run {r + 1} http 100 MB {path}: {m.get('gbps') or 0:.2f} Gbit/s")
            res["http100m"] = {p: {"gbps": summary([m["gbps"] for m in ms]),
                                   "cpu_s_per_gb": summary([m.get("cpu_s_per_gb")
                                                            for m in ms])}
                               for p, ms in raw.items()}
        if "conn" in tests:
            raw = {}
            for r in range(a.runs):
                for path in paths:
                    m = b.conn_rate(path)
                    raw.setdefault(path, []).append(m)
                    log(f"run {r + 1} conn {path}: {m.get('conn_per_s') or 0:.0f}/s, "
                        f"p99 {m.get('p99_ms')} ms, failed {m.get('failed')}")
            res["conn"] = {p: {"conn_per_s": summary([m["conn_per_s"] for m in ms]),
                               "peak_rss_kb": summary([m.get("peak_rss_kb") for m in ms]),
                               "p99_ms": summary([m["p99_ms"] for m in ms]),
                               "failed": [m.get("failed") for m in ms]}
                           for p, ms in raw.items()}
        if "udp" in tests:
            raw = {}
            upaths = list(paths)
            if "tunnel" in paths:
                upaths += [f"tunnel-bp{int(n)}" for n in a.udp_busy_poll.split(",") if n]
            for r in range(a.runs):
                for path in upaths:
                    m = b.udp(path)
                    raw.setdefault(path, []).append(m)
                    log(f"run {r + 1} udp {path}: {m}")
            res["udp"] = {p: {k: summary([m.get(k) for m in ms])
                              for k in ("rate", "loss", "p99_us", "cpu_us_per_rtt",
                                        "idle_cpu_ms_per_s")
                              if any(m.get(k) is not None for m in ms)}
                          for p, ms in raw.items()}
            for p, ms in raw.items():
                if any(m.get("syscalls_per_rtt") for m in ms):
                    res["udp"][p]["syscalls_per_rtt"] = [m.get("syscalls_per_rtt") for m in ms]
            if "tunnel" in raw and all(m.get("rate") is None for m in raw["tunnel"]):
                res["udp"]["tunnel"]["note"] = "not measured: no UDP echo came back through " \
                                               "the tunnel (UDP ASSOCIATE support missing?)"
        if "slow" in tests:
            res["slow"] = {}
            for path in [p for p in paths if p in ("tunnel", "before")]:
                m = b.slow_rss(path, a.slow)
                res["slow"][path] = m
                log(f"rss {path} with {a.slow} slow connections: {m}")
        if "rss" in tests:
            res["rss"] = {}
            for path in [p for p in paths if p != "kernel"]:
                m = b.idle_rss(path, a.idle)
                res["rss"][path] = m
                log(f"rss {path} with {a.idle} idle connections: {m}")
    finally:
        b.stop_tunnel()
        b.w.close()
    doc = {
        "label": a.label,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "binary": a.binary,
        "tun2sock_args": ["--mtu", str(a.mtu), *a.extra],
        "before_binary": a.before,
        "proxy": "fastsocks" if a.fastsocks else "dante",
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "runs": a.runs,
        "iperf3_seconds": a.duration,
        "pinning": {"measured": T2S_CPU, "load_and_servers": LOAD_CPU},
        "seconds": round(time.time() - started),
        "results": res,
    }
    doc["targets"] = targets(res)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    jf = out / f"{a.label}-{stamp}.json"
    jf.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"bench: wrote {jf}")
    if not a.no_chart:
        sys.path.insert(0, str(Path(__file__).parent))
        import chart
        png = jf.with_suffix(".png")
        chart.plot([jf], png)
        print(f"bench: wrote {png}")
    print(json.dumps(doc["targets"], indent=1))
    shutil.rmtree(tmp / "www", ignore_errors=True)
    print(f"bench: logs in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
