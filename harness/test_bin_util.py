"""Helpers for the tests of the real tun2sock binary (harness/test_bin_*.py); no tests here.

Every namespace is named t2sb-<pid>-<n>-<tag> and deleted by the test that made it; every
process is started by the test and stopped by its PID (SIGTERM, then SIGKILL after a bounded
wait). Traffic stays in documentation and private ranges (192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24, 198.18.0.0/15, 2001:db8::/32, fd00::/8) and loopback.
"""
import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

_counter = itertools.count()
WAIT_S = 10.0  # the longest any helper waits for something to appear


def have(cmd: str) -> bool:
    return shutil.which(cmd) is not None


def need(*tools: str) -> None:
    """Skips the calling test unless every tool is on PATH. pytest is imported here, not at the
    top, so that scripts outside the harness (bench/net/run.py) can import this module."""
    import pytest
    for t in tools:
        if not have(t):
            pytest.skip(f"{t} not installed (scripts/install-deps)")


def run(cmd: List[str], check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"$ {' '.join(cmd)}\nexit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


class Process:
    """A process the test started; stop() ends it by its PID."""

    def __init__(self, cmd: List[str], log: Path, **kw):
        self.cmd = cmd
        self.log = log
        self._f = open(log, "w")
        self.p = subprocess.Popen(cmd, stdout=self._f, stderr=subprocess.STDOUT,
                                  start_new_session=True, **kw)

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.p.pid, sig)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit status."""
        if self.alive():
            os.kill(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=timeout)
        # The process leads its own session (start_new_session): end what it forked too
        # (dante's io-children outlive their parent otherwise). By our own group id only.
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if not self._f.closed:
            self._f.close()
        return self.p.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Netns:
    """A network namespace t2sb-<pid>-<n>-<tag> with lo up and rp_filter off."""

    def __init__(self, tag: str):
        self.name = f"t2sb-{os.getpid()}-{next(_counter)}-{tag}"[:40]
        self.procs: List[Process] = []
        run(["ip", "netns", "add", self.name])
        self.ip("link", "set", "lo", "up")
        for key in ("all", "default"):
            self.sh(f"sysctl -qw net.ipv4.conf.{key}.rp_filter=0", check=False)

    def cmd(self, *args: str) -> List[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str, check: bool = True, timeout: float = 30, **kw):
        return run(self.cmd(*args), check=check, timeout=timeout, **kw)

    def ip(self, *args: str, check: bool = True):
        return self.run("ip", *args, check=check)

    def sh(self, script: str, check: bool = True, timeout: float = 30):
        return self.run("sh", "-c", script, check=check, timeout=timeout)

    def start(self, args: List[str], log: Path, **kw) -> Process:
        p = Process(self.cmd(*args), log, **kw)
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()
        run(["ip", "netns", "del", self.name], check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def veth(a: Netns, a_addr: str, b: Netns, b_addr: str, a_addr6: str = "", b_addr6: str = "",
         a_dev: str = "va", b_dev: str = "vb") -> None:
    """Joins a and b with a veth pair (a side: a_dev, b side: b_dev) and addresses them."""
    tmp_a = f"t2sa{os.getpid() % 100000}{next(_counter)}"[:15]
    tmp_b = f"t2sb{os.getpid() % 100000}{next(_counter)}"[:15]
    run(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b])
    run(["ip", "link", "set", tmp_a, "netns", a.name])
    run(["ip", "link", "set", tmp_b, "netns", b.name])
    a.ip("link", "set", tmp_a, "name", a_dev)
    b.ip("link", "set", tmp_b, "name", b_dev)
    for ns, dev, addr, addr6 in ((a, a_dev, a_addr, a_addr6), (b, b_dev, b_addr, b_addr6)):
        ns.ip("addr", "add", addr, "dev", dev)
        if addr6:
            ns.ip("addr", "add", addr6, "dev", dev, "nodad")
        # The link-local address too: no DAD, so it does not turn up seconds later in a
        # routing dump a test compares.
        ns.sh(f"sysctl -qw net.ipv6.conf.{dev}.accept_dad=0", check=False)
        ns.ip("link", "set", dev, "up")


def wait_for(pred, what: str, timeout: float = WAIT_S, proc: Optional[Process] = None):
    """Polls pred() every 50 ms until it is true (bounded); fails saying what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        if proc is not None and not proc.alive():
            raise AssertionError(f"process exited ({proc.p.returncode}) while waiting for "
                                 f"{what}:\n{proc.output()}")
        time.sleep(0.05)
    out = f"\n--- log ---\n{proc.output()}" if proc is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{out}")


def link_exists(ns: Netns, dev: str) -> bool:
    return ns.ip("link", "show", "dev", dev, check=False).returncode == 0


def addrs_of(ns: Netns, dev: str) -> str:
    return ns.ip("addr", "show", "dev", dev, check=False).stdout


def start_tun2sock(ns: Netns, binary: Path, log: Path, args: List[str], dev: str = "t2s0",
                   ready_addr: Optional[str] = None) -> Process:
    """Starts the binary in ns and waits until dev is up (and ready_addr is on it)."""
    p = ns.start([str(binary), *args], log)

    def ready():
        if not link_exists(ns, dev):
            return False
        out = addrs_of(ns, dev)
        return ",UP" in out and (ready_addr is None or ready_addr in out)

    wait_for(ready, f"{dev} up in {ns.name}", proc=p)
    return p


# --- End-to-end worlds (harness/test_e2e_*.py) ---------------------------------------------
# Two namespaces joined by a veth pair:
#   client ns "cli": va 203.0.113.1/24 fd00:1::1/64; tun2sock on t2s0 (198.18.0.1/15,
#                    fd00:18::1/64) with 192.0.2.0/24 and 2001:db8:80::/48 routed into t2s0
#   server ns "srv": vb 203.0.113.2/24 fd00:1::2/64; on lo the origins 192.0.2.80, 192.0.2.81
#                    and 2001:db8:80::80; the SOCKS server(s) listen on vb's addresses
E2E_ORIGIN4, E2E_ORIGIN4_B, E2E_ORIGIN6 = "192.0.2.80", "192.0.2.81", "2001:db8:80::80"
E2E_PROXY4, E2E_PROXY6 = "203.0.113.2", "fd00:1::2"
E2E_SOCKS_PORT, E2E_HTTP_PORT = 1080, 8080
PYTHON = "/usr/bin/python3"

DANTE_ALL_COMMANDS = "connect udpassociate udpreply bindreply"

# The template test_e2e_autoroute.py still formats (internals, blocks); elsewhere dante_conf().
def dante_conf(internals: Sequence[str], port: int = E2E_SOCKS_PORT, external: str = "vb",
               blocks: str = "", commands: str = DANTE_ALL_COMMANDS) -> str:
    """A danted.conf: no authentication, listening on each address of internals at port,
    connecting out through external; the `socks block` rules in blocks come before the one
    `socks pass` rule, which allows commands."""
    return "".join([
        "logoutput: stderr\n",
        *(f"internal: {a} port = {port}\n" for a in internals),
        f"external: {external}\n",
        "clientmethod: none\n",
        "socksmethod: none\n",
        "user.privileged: root\n",
        "user.unprivileged: nobody\n",
        "client pass { from: 0/0 to: 0/0 }\n",
        f"{blocks}\n" if blocks else "",
        f"socks pass {{ from: 0/0 to: 0/0 command: {commands} }}\n",
    ])

# The HTTP origin: GET serves the directory (SimpleHTTPRequestHandler, threaded); PUT and POST
# read Content-Length bytes and answer "LENGTH SHA256\n" (uploads are checked by the origin).
E2E_ORIGIN_PY = r"""
import hashlib, http.server, socket, sys
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_PUT(self):
        n = int(self.headers.get("Content-Length", "0")); h = hashlib.sha256(); got = 0
        while got < n:
            b = self.rfile.read(min(1 << 20, n - got))
            if not b: break
            h.update(b); got += len(b)
        body = f"{got} {h.hexdigest()}\n".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    do_POST = do_PUT
class S(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    request_queue_size = 512
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
import os
os.chdir(sys.argv[1])
S(("::", int(sys.argv[2])), H).serve_forever()
"""


# A paced HTTP origin (argv: ADDRESS PORT [HELLO]): /hello.txt answers HELLO ("hello through a
# proxy" by default); any other path is 64 MiB paced by the server (32 KiB every 20 ms), so the
# client's socket never holds a backlog and curl sees a reset as soon as it arrives (a client
# reading slowly would first drain megabytes queued before the RST).
PACED_ORIGIN_PY = r"""
import http.server, sys, time
HELLO = (sys.argv[3] if len(sys.argv) > 3 else "hello through a proxy").encode() + b"\n"
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/hello.txt":
            self.send_response(200)
            self.send_header("Content-Length", str(len(HELLO)))
            self.end_headers()
            self.wfile.write(HELLO)
            return
        total, chunk = 64 << 20, b"x" * 32768
        self.send_response(200)
        self.send_header("Content-Length", str(total))
        self.end_headers()
        sent = 0
        try:
            while sent < total:
                self.wfile.write(chunk)
                sent += len(chunk)
                time.sleep(0.02)
        except OSError:
            pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""


def listening(ns: Netns, port: int, proto: str = "t") -> bool:
    r = ns.run("ss", f"-l{proto}nH", f"sport = :{port}", check=False)
    return r.returncode == 0 and r.stdout.strip() != ""


def start_dante(ns: Netns, tmp: Path, internals: Sequence[str], port: int = E2E_SOCKS_PORT,
                **conf) -> Process:
    """Writes tmp/danted.conf (dante_conf(internals, port, **conf)), starts danted in ns (log:
    tmp/danted.log) and waits until it listens on port."""
    path = tmp / "danted.conf"
    path.write_text(dante_conf(internals, port, **conf))
    d = ns.start(["danted", "-f", str(path), "-N", "1", "-p", str(tmp / "d.pid")],
                 tmp / "danted.log")
    wait_for(lambda: listening(ns, port), "dante", proc=d)
    return d


def write_random(path: Path, size: int, randbytes: Callable[[int], bytes] = os.urandom) -> str:
    """Writes size bytes from randbytes (1 MiB at a time) to path; returns their sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            b = randbytes(min(left, 1 << 20))
            h.update(b)
            f.write(b)
            left -= len(b)
    return h.hexdigest()


def tun2sock_stats(ns: Netns, metrics: str) -> dict:
    """tun2sock's /stats (JSON) from its --metrics address (HOST:PORT) in ns."""
    r = ns.run("curl", "-sf", "--max-time", "5", f"http://{metrics}/stats")
    return json.loads(r.stdout)


def check_clean_exit(t2s: Process, rc: int) -> None:
    """Fails if tun2sock (stopped with status rc; an ASan/UBSan build) reported an error or
    did not exit cleanly on SIGTERM."""
    out = t2s.output()
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        if marker in out:
            i = out.index(marker)
            raise AssertionError(f"tun2sock: {marker}\n{out[max(0, i - 200):i + 4000]}")
    assert rc == 0, f"tun2sock exited {rc} on SIGTERM:\n{out[-3000:]}"


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class E2EWorld:
    """The client and server namespaces of an end-to-end test, and the servers in them."""

    def __init__(self, tmp: Path, tag: str = "e2e"):
        self.tmp = tmp
        self.c = Netns(f"{tag}c")
        self.s = Netns(f"{tag}s")
        self.t2s: Optional[Process] = None
        self.metrics = ""
        try:
            veth(self.c, "203.0.113.1/24", self.s, "203.0.113.2/24", "fd00:1::1/64",
                 "fd00:1::2/64")
            for a in (E2E_ORIGIN4, E2E_ORIGIN4_B):
                self.s.ip("addr", "add", f"{a}/32", "dev", "lo")
            self.s.ip("addr", "add", f"{E2E_ORIGIN6}/128", "dev", "lo", "nodad")
        except Exception:
            self.close()
            raise

    # servers, in the server namespace
    def wait_listen(self, port: int, proc: Process, what: str, proto: str = "t") -> None:
        wait_for(lambda: listening(self.s, port, proto), what, proc=proc)

    def start_origin(self, www: Path, port: int = E2E_HTTP_PORT) -> Process:
        script = self.tmp / "origin.py"
        script.write_text(E2E_ORIGIN_PY)
        p = self.s.start([PYTHON, str(script), str(www), str(port)], self.tmp / "origin.log")
        self.wait_listen(port, p, "the HTTP origin")
        return p

    def start_dante(self, internals=(E2E_PROXY4,), blocks: str = "") -> Process:
        return start_dante(self.s, self.tmp, internals, blocks=blocks)

    def start_microsocks(self, user: str = "", password: str = "") -> Process:
        auth = ["-u", user, "-P", password] if user else []
        m = self.s.start(["microsocks", "-i", E2E_PROXY4, "-p", str(E2E_SOCKS_PORT), *auth],
                         self.tmp / "microsocks.log")
        self.wait_listen(E2E_SOCKS_PORT, m, "microsocks")
        return m

    def start_sshd(self, port: int = 12222, addr: str = E2E_ORIGIN4) -> Path:
        """sshd in the server namespace accepting root with a fresh key; returns the key."""
        Path("/run/sshd").mkdir(exist_ok=True)
        d = self.tmp / "ssh"
        d.mkdir(exist_ok=True)
        hostkey, key = d / "hostkey", d / "id"
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)])
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
            (d / "authorized_keys").write_text((d / "id.pub").read_text())
        p = self.s.start(["/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null", "-p", str(port),
                          "-o", f"ListenAddress={addr}", "-h", str(hostkey),
                          "-o", f"AuthorizedKeysFile={d / 'authorized_keys'}",
                          "-o", "StrictModes=no", "-o", "PermitRootLogin=yes",
                          "-o", "Subsystem=sftp internal-sftp", "-o", "UsePAM=no"],
                         self.tmp / f"sshd-{port}.log")
        self.wait_listen(port, p, "sshd")
        return key

    @staticmethod
    def ssh_opts(key: Path) -> List[str]:
        return ["-i", str(key), "-o", "StrictHostKeyChecking=no", "-o",
                "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]

    # tun2sock, in the client namespace
    def start_tun2sock(self, binary: Path, proxy_url: str, *extra: str,
                       metrics_port: int = 19180, routes: bool = True) -> Process:
        self.metrics = f"127.0.0.1:{metrics_port}"
        self.t2s = start_tun2sock(
            self.c, binary, self.tmp / "tun2sock.log",
            ["--device", "t2s0", "--proxy", proxy_url, "--address", "198.18.0.1/15",
             "--address", "fd00:18::1/64", "--metrics", self.metrics, *extra],
            ready_addr="fd00:18::1")
        if routes:
            self.c.ip("route", "add", "192.0.2.0/24", "dev", "t2s0")
            self.c.ip("-6", "route", "add", "2001:db8:80::/48", "dev", "t2s0")
        return self.t2s

    def stats(self) -> dict:
        return tun2sock_stats(self.c, self.metrics)

    def log_tail(self, n: int = 4000) -> str:
        return "" if self.t2s is None else self.t2s.output()[-n:]

    def close(self) -> None:
        """Stops everything; then fails if tun2sock (an ASan/UBSan build) reported an error or
        did not exit cleanly on SIGTERM."""
        rc = self.t2s.stop() if self.t2s is not None else 0
        self.c.close()
        self.s.close()
        if self.t2s is not None:
            check_clean_exit(self.t2s, rc)
