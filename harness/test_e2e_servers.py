"""The real binary against every real SOCKS5 server we support (layout: E2EWorld in
test_bin_util.py), and how failures of the proxy reach the client.

A 1 MB download (sha256 checked) through dante, microsocks without and with RFC 1929
(-u/-P), shadowsocks-libev (ss-local in the client namespace, ss-server in the server
namespace) and `ssh -D` (the ssh client in the client namespace, sshd in the server one).
Failures: a wrong password (the client is reset quickly and tun2sock does not keep retrying:
SYNs to the proxy counted by nftables), the proxy down (port closed: reset at once; blackholed:
reset within --tcp-connect-timeout) and dante refusing a destination with a `socks block` rule
(reset at once). harness/test_bin_socks.py has the hello-page, password-file, fwmark and
ECONNREFUSED-counter tests; harness/test_bin_ping.py has ping and ping -6 through the TUN.
"""
import hashlib
import json
import os
import time

import pytest

from test_bin_util import (E2E_HTTP_PORT, E2E_ORIGIN4, E2E_ORIGIN4_B, E2E_ORIGIN6, E2E_PROXY4,
                           E2E_SOCKS_PORT, PYTHON, E2EWorld, listening, need, wait_for)

pytestmark = [pytest.mark.root]

SIZE = 1_000_000
CONNECT_TIMEOUT_S = 2.0   # --tcp-connect-timeout in the proxy-down tests
FAST_S = 1.0              # "at once": well under the client's first SYN retransmission (1 s)

# Connects, sends a request and reads: reports how the attempt ended and how long it took.
PROBE = r"""
import json, socket, sys, time
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.settimeout(timeout)
t0 = time.monotonic()
try:
    s.connect((host, port))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    outcome = "data" if s.recv(100) else "eof"
except ConnectionRefusedError: outcome = "refused"
except ConnectionResetError: outcome = "reset"
except socket.timeout: outcome = "timeout"
except OSError as e: outcome = "error " + str(e)
print(json.dumps({"outcome": outcome, "elapsed": time.monotonic() - t0}))
"""


@pytest.fixture(scope="module")
def www(tmp_path_factory):
    d = tmp_path_factory.mktemp("www")
    data = os.urandom(SIZE)
    (d / "1MB.bin").write_bytes(data)
    return d, hashlib.sha256(data).hexdigest()


@pytest.fixture
def world(tmp_path, www):
    need("curl", "ss")
    w = E2EWorld(tmp_path, "srv")
    w.start_origin(www[0])
    yield w
    w.close()


def _download_ok(world, sha, family="v4"):
    host = E2E_ORIGIN4 if family == "v4" else f"[{E2E_ORIGIN6}]"
    r = world.c.run("sh", "-c", f"curl -sS --max-time 30 http://{host}:{E2E_HTTP_PORT}/1MB.bin"
                    " | sha256sum", check=False, timeout=40)
    assert r.returncode == 0 and r.stdout.split()[0] == sha, \
        f"{r.stdout}{r.stderr}\n{world.log_tail()}"
    s = world.stats()
    assert s["bytes_down"] >= SIZE, s


def _probe(world, host, port=E2E_HTTP_PORT, timeout=10.0):
    r = world.c.run(PYTHON, "-c", PROBE, host, str(port), str(timeout), timeout=timeout + 10)
    res = json.loads(r.stdout)
    print(f"\nprobe {host}:{port}: {res}")
    return res


def _wait_listen_client(world, port, proc, what):
    wait_for(lambda: listening(world.c, port), what, proc=proc)


# --- 1 MB through each server ----------------------------------------------------------------

@pytest.mark.parametrize("family", ["v4", "v6"])
def test_1mb_through_dante(world, tun2sock_bin, www, family):
    need("danted")
    world.start_dante()
    world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    _download_ok(world, www[1], family)


def test_1mb_through_microsocks_without_auth(world, tun2sock_bin, www):
    need("microsocks")
    world.start_microsocks()
    world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    _download_ok(world, www[1])
    _download_ok(world, www[1], "v6")


def test_1mb_through_microsocks_with_user_and_password(world, tun2sock_bin, www):
    need("microsocks")
    world.start_microsocks("alice", "s3cret")
    t = world.start_tun2sock(tun2sock_bin, f"socks5://alice:s3cret@{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    _download_ok(world, www[1])
    assert "s3cret" not in t.output()


def test_1mb_with_the_pipelined_socks5_handshake(world, tun2sock_bin, www):
    # --socks5-pipeline: greeting and CONNECT in one write. dante accepts it; microsocks does
    # not (it drops what arrives with the greeting), which is why pipelining is opt-in.
    need("danted")
    world.start_dante()
    world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}",
                         "--socks5-pipeline")
    _download_ok(world, www[1])


def test_1mb_through_shadowsocks_ss_local_and_ss_server(world, tun2sock_bin, www):
    need("ss-local", "ss-server")
    common = ["-k", "t2s-pw", "-m", "chacha20-ietf-poly1305"]
    srv = world.s.start(["ss-server", "-s", E2E_PROXY4, "-p", "18388", *common],
                        world.tmp / "ss-server.log")
    world.wait_listen(18388, srv, "ss-server")
    loc = world.c.start(["ss-local", "-s", E2E_PROXY4, "-p", "18388", "-b", "127.0.0.1", "-l",
                         "1081", *common], world.tmp / "ss-local.log")
    _wait_listen_client(world, 1081, loc, "ss-local")
    world.start_tun2sock(tun2sock_bin, "socks5://127.0.0.1:1081")
    _download_ok(world, www[1])
    _download_ok(world, www[1], "v6")


def test_1mb_through_ssh_dynamic_forwarding(world, tun2sock_bin, www):
    need("sshd", "ssh", "ssh-keygen")
    key = world.start_sshd(addr=E2E_PROXY4)
    ssh = world.c.start(["ssh", "-N", "-D", "127.0.0.1:1082", "-p", "12222",
                         *world.ssh_opts(key), "-o", "ExitOnForwardFailure=yes",
                         f"root@{E2E_PROXY4}"], world.tmp / "ssh-D.log")
    _wait_listen_client(world, 1082, ssh, "ssh -D")
    world.start_tun2sock(tun2sock_bin, "socks5://127.0.0.1:1082")
    _download_ok(world, www[1])
    _download_ok(world, www[1], "v6")


# --- failures --------------------------------------------------------------------------------

def _count_syns_to_proxy(world):
    """nftables counter of SYNs arriving at the proxy port in the server namespace."""
    world.s.sh("nft add table inet t2sc && "
               "nft add chain inet t2sc in '{ type filter hook input priority 0; }' && "
               f"nft add rule inet t2sc in tcp dport {E2E_SOCKS_PORT} "
               "'tcp flags & (syn | ack) == syn' counter")

    def read():
        out = world.s.run("nft", "list", "chain", "inet", "t2sc", "in").stdout
        return int(out.split("counter packets ")[1].split()[0])
    return read


def test_wrong_password_resets_quickly_without_a_retry_storm(world, tun2sock_bin):
    need("microsocks")
    world.start_microsocks("alice", "s3cret")
    syns = _count_syns_to_proxy(world)
    # A rejected authentication is a failure of the proxy's health (docs/proxies.md): it is
    # then probed, first after --proxy-probe-interval. Those probes are bounded and tested in
    # test_e2e_failover.py; a long interval keeps them out of the 3 s watched here, so what is
    # counted is only what the client's connection caused.
    t = world.start_tun2sock(tun2sock_bin, f"socks5://alice:wrong@{E2E_PROXY4}:{E2E_SOCKS_PORT}",
                             "--proxy-probe-interval", "30s")
    r = _probe(world, E2E_ORIGIN4)
    assert r["outcome"] in ("refused", "reset"), f"{r}\n{world.log_tail()}"
    assert r["elapsed"] < FAST_S, r
    n1 = syns()
    time.sleep(3)  # a retry storm would show here
    n2 = syns()
    assert 1 <= n1 <= 2, f"{n1} connections to the proxy for one client connection"
    assert n2 == n1, f"tun2sock kept connecting to the proxy: {n1} -> {n2} SYNs in 3 s"
    assert t.alive()


def test_proxy_port_closed_resets_the_client_at_once(world, tun2sock_bin):
    world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}",
                         "--tcp-connect-timeout", f"{CONNECT_TIMEOUT_S}s")
    for host in (E2E_ORIGIN4, E2E_ORIGIN6):
        r = _probe(world, host)
        assert r["outcome"] in ("refused", "reset"), f"{host}: {r}\n{world.log_tail()}"
        assert r["elapsed"] < FAST_S, r


def test_proxy_blackholed_resets_the_client_within_the_connect_timeout(world, tun2sock_bin):
    need("danted", "nft")
    world.start_dante()
    # The server is there but unreachable: its host drops every packet to the SOCKS port.
    world.s.sh("nft add table inet t2sb && "
               "nft add chain inet t2sb in '{ type filter hook input priority 0; }' && "
               f"nft add rule inet t2sb in tcp dport {E2E_SOCKS_PORT} drop")
    world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}",
                         "--tcp-connect-timeout", f"{CONNECT_TIMEOUT_S}s")
    r = _probe(world, E2E_ORIGIN4)
    assert r["outcome"] in ("refused", "reset"), f"{r}\n{world.log_tail()}"
    assert CONNECT_TIMEOUT_S - 0.3 <= r["elapsed"] <= CONNECT_TIMEOUT_S + 1.5, r


def test_dante_block_rule_resets_the_client_at_once(world, tun2sock_bin, www):
    need("danted")
    world.start_dante(blocks=f"socks block {{ from: 0/0 to: {E2E_ORIGIN4_B}/32 log: error }}")
    world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    r = _probe(world, E2E_ORIGIN4_B)
    assert r["outcome"] in ("refused", "reset"), f"{r}\n{world.log_tail()}"
    assert r["elapsed"] < FAST_S, r
    _download_ok(world, www[1])  # the destination dante allows still works
