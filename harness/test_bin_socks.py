"""TCP through the real binary and a real SOCKS5 server: curl in a client namespace, tun2sock
on a TUN there, the proxy (dante, or microsocks for RFC 1929) and an HTTP origin in a second
namespace joined by a veth pair.

    client ns: va 203.0.113.1/24 fd00:1::1/64   t2s0 198.18.0.1/15 fd00:18::1/64
               routes 192.0.2.0/24 and 2001:db8:80::/48 into t2s0
    proxy ns:  vb 203.0.113.2/24 fd00:1::2/64   lo 192.0.2.80 2001:db8:80::80 (the origin)
"""
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from test_bin_util import (Netns, listening, need, start_dante, start_tun2sock, veth,
                           wait_for)

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ORIGIN4, ORIGIN6, HTTP_PORT = "192.0.2.80", "2001:db8:80::80", 8080
PROXY4, PROXY6, SOCKS_PORT = "203.0.113.2", "fd00:1::2", 1080


def _engine_has_tcp() -> bool:
    """TCP + SOCKS5 landed: src/core/tcp.c exists and the engine speaks SOCKS5."""
    core = ROOT / "src" / "core"
    if not (core / "tcp.c").exists():
        return False
    text = "".join(p.read_text(errors="replace").lower() for p in core.glob("engine*.c"))
    return "socks5" in text


class World:
    """The two namespaces, the origin with its files, and a place to start tun2sock."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.c = Netns("cli")
        self.p = Netns("prx")
        veth(self.c, "203.0.113.1/24", self.p, "203.0.113.2/24", "fd00:1::1/64", "fd00:1::2/64")
        self.p.ip("addr", "add", f"{ORIGIN4}/32", "dev", "lo")
        self.p.ip("addr", "add", f"{ORIGIN6}/128", "dev", "lo", "nodad")
        www = tmp / "www"
        www.mkdir()
        (www / "hello.txt").write_text("hello through tun2sock\n")
        big = os.urandom(4 << 20)
        (www / "big.bin").write_bytes(big)
        self.big_sha = hashlib.sha256(big).hexdigest()
        self.http = self.p.start(["/usr/bin/python3", "-m", "http.server", "--bind", "::",
                                  "--directory", str(www), str(HTTP_PORT)], tmp / "http.log")
        wait_for(lambda: listening(self.p, HTTP_PORT), "the HTTP origin", proc=self.http)

    def start_dante(self, internal=PROXY4):
        return start_dante(self.p, self.tmp, [internal], SOCKS_PORT)

    def start_microsocks(self, user, password):
        m = self.p.start(["microsocks", "-i", PROXY4, "-p", str(SOCKS_PORT), "-u", user, "-P",
                          password], self.tmp / "microsocks.log")
        wait_for(lambda: listening(self.p, SOCKS_PORT), "the SOCKS5 server", proc=m)
        return m

    def start_server(self, script, port, log, what):
        """Runs a Python script in the proxy namespace; waits until it listens on TCP port."""
        p = self.p.start(["/usr/bin/python3", "-c", script], log)
        wait_for(lambda: listening(self.p, port), what, proc=p)
        return p

    def start_tun2sock(self, binary, proxy_url, *extra, env=None):
        t = start_tun2sock(self.c, binary, self.tmp / "tun2sock.log",
                           ["--device", "t2s0", "--proxy", proxy_url, "--address",
                            "198.18.0.1/15", "--address", "fd00:18::1/64", "--log-level",
                            "debug", *extra], ready_addr="fd00:18::1")
        self.c.ip("route", "add", "192.0.2.0/24", "dev", "t2s0")
        self.c.ip("-6", "route", "add", "2001:db8:80::/48", "dev", "t2s0")
        return t

    def curl(self, url, *extra, timeout=30):
        return self.c.run("curl", "-sS", "--max-time", "20", "--connect-timeout", "10", *extra,
                          url, check=False, timeout=timeout)

    def get_hello(self, t, host=ORIGIN4):
        """curl gets /hello.txt from host (an address as it goes in a URL) through t, whole."""
        r = self.curl(f"http://{host}:{HTTP_PORT}/hello.txt")
        assert r.returncode == 0, r.stderr + t.output()
        assert r.stdout == "hello through tun2sock\n"

    def close(self):
        self.c.close()
        self.p.close()


@pytest.fixture
def world(tmp_path):
    if not _engine_has_tcp():
        pytest.skip("the engine has no TCP + SOCKS5 yet (src/core/tcp.c, SOCKS5 in the engine)")
    need("curl", "ss")
    w = World(tmp_path)
    yield w
    w.close()


def test_curl_v4_through_dante_gets_the_page(world, tun2sock_bin):
    need("danted")
    world.start_dante()
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}")
    world.get_hello(t)
    assert "bound to va" in t.output(), "the egress must be the veth (route to the proxy)"


def test_curl_v6_destination_through_dante_over_v6_proxy(world, tun2sock_bin):
    need("danted")
    world.start_dante(internal=PROXY6)
    t = world.start_tun2sock(tun2sock_bin, f"socks5://[{PROXY6}]:{SOCKS_PORT}")
    world.get_hello(t, f"[{ORIGIN6}]")


def test_download_4mib_through_dante_is_byte_exact(world, tun2sock_bin, tmp_path):
    need("danted")
    world.start_dante()
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}")
    out = tmp_path / "big.out"
    r = world.curl(f"http://{ORIGIN4}:{HTTP_PORT}/big.bin", "-o", str(out), timeout=60)
    assert r.returncode == 0, r.stderr + t.output()[-4000:]
    assert hashlib.sha256(out.read_bytes()).hexdigest() == world.big_sha


def test_upload_through_dante_arrives_whole(world, tun2sock_bin, tmp_path):
    """Client -> proxy direction: POST 2 MiB; http.server answers 501 to POST, after reading
    nothing, so use a tiny echo origin that reports the length and hash of what it got."""
    need("danted")
    world.start_dante()
    script = (
        "import hashlib, socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('{ORIGIN4}', 9090)); s.listen(1)\n"
        "c, _ = s.accept(); h = hashlib.sha256(); n = 0\n"
        "while True:\n"
        "    b = c.recv(65536)\n"
        "    if not b: break\n"
        "    h.update(b); n += len(b)\n"
        "c.sendall(f'{n} {h.hexdigest()}\\n'.encode()); c.close()\n")
    world.start_server(script, 9090, tmp_path / "sink.log", "the sink")
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}")
    data = os.urandom(2 << 20)
    client = (
        "import socket, sys\n"
        f"s = socket.create_connection(('{ORIGIN4}', 9090), timeout=20)\n"
        "s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)\n"
        "print(s.makefile().readline().strip())\n")
    r = subprocess.run(world.c.cmd("/usr/bin/python3", "-c", client), input=data,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode() + t.output()[-4000:]
    assert r.stdout.decode().strip() == f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def test_rfc1929_password_from_file_and_env_with_microsocks(world, tun2sock_bin, tmp_path):
    need("microsocks")
    world.start_microsocks("alice", "s3cret")
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    t = world.start_tun2sock(tun2sock_bin, f"socks5://alice@{PROXY4}:{SOCKS_PORT}",
                             "--proxy-password-file", str(pw))
    world.get_hello(t)
    assert "s3cret" not in t.output(), "the password must never be logged"
    assert t.stop() == 0


def test_wrong_password_fails_the_connection_quickly(world, tun2sock_bin):
    need("microsocks")
    world.start_microsocks("alice", "s3cret")
    t = world.start_tun2sock(tun2sock_bin, f"socks5://alice:wrong@{PROXY4}:{SOCKS_PORT}")
    r = world.curl(f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt")
    assert r.returncode != 0, r.stdout
    assert r.returncode != 28, "curl timed out: a refused flow must fail fast\n" + t.output()


def test_no_proxy_listening_refuses_fast_and_counts_econnrefused(world, tun2sock_bin):
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}", "--metrics",
                             "127.0.0.1:19101")
    r = world.curl(f"http://{ORIGIN4}:{HTTP_PORT}/hello.txt")
    assert r.returncode not in (0, 28), f"curl exit {r.returncode}\n{t.output()}"
    m = world.c.run("curl", "-sf", "--max-time", "5", "http://127.0.0.1:19101/metrics")
    line = [x for x in m.stdout.splitlines()
            if x.startswith('tun2sock_upstream_errors_total{error="ECONNREFUSED"}')]
    assert line and int(line[0].split()[-1]) >= 1, m.stdout


def test_fwmark_marks_upstream_sockets_for_policy_routing(world, tun2sock_bin):
    """The proxy's network is only in table 100, for marked packets: the flow works only if
    every upstream socket carries the mark."""
    need("danted")
    world.start_dante()
    world.c.ip("route", "del", "203.0.113.0/24", "dev", "va")
    world.c.ip("route", "add", "203.0.113.0/24", "dev", "va", "table", "100")
    world.c.ip("rule", "add", "fwmark", "0x162", "lookup", "100", "pref", "100")
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}", "--fwmark",
                             "0x162")
    world.get_hello(t)


def test_sigterm_closes_every_open_flow_upstream(world, tun2sock_bin, tmp_path):
    need("danted")
    world.start_dante()
    script = (
        "import socket, sys\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('{ORIGIN4}', 9091)); s.listen(1)\n"
        "c, _ = s.accept(); print('accepted', flush=True)\n"
        "try:\n"
        "    while c.recv(65536): pass\n"
        "except OSError: pass\n"
        "print('closed', flush=True)\n")
    server = world.start_server(script, 9091, tmp_path / "server.log", "the server")
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{PROXY4}:{SOCKS_PORT}")
    client = world.c.start(["/usr/bin/python3", "-c",
                            "import socket, time\n"
                            f"s = socket.create_connection(('{ORIGIN4}', 9091), timeout=10)\n"
                            "s.sendall(b'x'); time.sleep(30)\n"], tmp_path / "client.log")
    wait_for(lambda: "accepted" in server.output(), "the flow through the proxy", proc=server)
    assert t.stop() == 0, t.output()
    wait_for(lambda: "closed" in server.output(), "the upstream side closed after SIGTERM")
    client.stop()
