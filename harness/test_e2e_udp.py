"""UDP, DNS, ICMP and fragments end to end through a real TUN: the client namespace's own
programs (dig, kdig, ping, iperf3, gtlsclient) talk through tun2sock to servers in the server
namespace (E2EWorld in test_bin_util.py: origins 192.0.2.80/.81 and 2001:db8:80::80 on the
server's lo, SOCKS servers on 203.0.113.2 / fd00:1::2).

- dante carries UDP through UDP ASSOCIATE: dig (v4 and v6 resolver addresses) answered by a
  dnsmasq bound to the origin addresses; a DNS answer over 1500 bytes (fragmented by the relay
  path and by tun2sock toward the TUN); iperf3 -u at a modest rate with the loss reported;
  a QUIC download (gtlsclient/gtlsserver) checked by sha256.
- microsocks (REP 7) and ssh -D (a close) have no UDP: dig still works, carried as DNS over
  TCP through CONNECT; other UDP gets an ICMP port unreachable at once.
- the QUIC download also through shadowsocks-libev's ss-local (UDP relay on 127.0.0.1).
- kdig +tcp: DNS over TCP from the client itself.
- ping -s 3000 and ping -6 -s 3000: fragments reassembled by tun2sock, replies fragmented.
"""
import hashlib
import json
import os
import re
import time
from pathlib import Path

import pytest

from test_bin_util import (E2E_ORIGIN4, E2E_ORIGIN4_B, E2E_ORIGIN6, E2E_PROXY4, E2E_PROXY6,
                           E2E_SOCKS_PORT, PYTHON, E2EWorld, have, listening, wait_for)

pytestmark = [pytest.mark.root]

BIG_RECORDS = 120  # A records of big.test: an answer of about 2 KB


def _need(*tools):
    for t in tools:
        if not have(t):
            pytest.skip(f"{t} not installed (scripts/install-deps)")


@pytest.fixture
def world(tmp_path):
    _need("danted", "dnsmasq", "dig", "ss")
    w = E2EWorld(tmp_path, "udp")
    yield w
    w.close()


def start_dnsmasq(w: E2EWorld):
    hosts = [f"--host-record=big.test,10.{i // 250}.{i % 250}.{1 + i % 200}"
             for i in range(BIG_RECORDS)]
    d = w.s.start(["dnsmasq", "--keep-in-foreground", "--log-facility=-", "--no-resolv", "--no-hosts", "--bind-interfaces",
                   f"--listen-address={E2E_ORIGIN4}", f"--listen-address={E2E_ORIGIN6}",
                   "--except-interface=vb", "--port=53", "--user=root", "--group=root",
                   f"--pid-file={w.tmp / 'dnsmasq.pid'}", "--edns-packet-max=4096",
                   f"--host-record=a.test,{E2E_ORIGIN4_B},2001:db8:80::81",
                   "--txt-record=t.test,hello-from-dnsmasq", *hosts],
                  w.tmp / "dnsmasq.log")
    w.wait_listen(53, d, "dnsmasq (udp)", proto="u")
    w.wait_listen(53, d, "dnsmasq (tcp)", proto="t")
    return d


def dig(w: E2EWorld, server: str, *args: str, timeout: float = 20):
    r = w.c.run("dig", f"@{server}", "+tries=1", "+time=5", *args, check=False,
                timeout=timeout)
    return r


def udp_stats(w: E2EWorld) -> dict:
    return w.stats()["udp"]


def test_dig_over_udp_through_dante_v4_and_v6(world, tun2sock_bin):
    start_dnsmasq(world)
    world.start_dante(internals=(E2E_PROXY4, E2E_PROXY6))
    world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    r = dig(world, E2E_ORIGIN4, "a.test", "A", "+short")
    assert r.returncode == 0 and r.stdout.split() == [E2E_ORIGIN4_B], r.stdout + r.stderr
    r = dig(world, E2E_ORIGIN6, "a.test", "AAAA", "+short")
    assert r.returncode == 0 and r.stdout.split() == ["2001:db8:80::81"], r.stdout + r.stderr
    r = dig(world, E2E_ORIGIN4, "t.test", "TXT", "+short")
    assert r.stdout.strip() == '"hello-from-dnsmasq"', r.stdout + r.stderr
    st = world.stats()
    assert st["udp"]["sessions_total"] >= 3
    assert st["udp"]["datagrams_down"] >= 3
    assert st["udp"]["dns_tcp_queries"] == 0  # dante relays UDP: no fallback
    assert st["udp_sessions_active"] >= 1


def test_dig_through_a_v6_proxy(world, tun2sock_bin):
    """The control connection over IPv6; dante answers with a relay address (any family)."""
    start_dnsmasq(world)
    world.start_dante(internals=(E2E_PROXY4, E2E_PROXY6))
    world.start_tun2sock(tun2sock_bin, f"socks5://[{E2E_PROXY6}]:{E2E_SOCKS_PORT}")
    for server, rtype, want in ((E2E_ORIGIN4, "A", E2E_ORIGIN4_B),
                                (E2E_ORIGIN6, "AAAA", "2001:db8:80::81")):
        r = dig(world, server, "a.test", rtype, "+short")
        assert r.stdout.split() == [want], r.stdout + r.stderr


def test_dns_answer_over_1500_bytes_arrives_whole(world, tun2sock_bin):
    start_dnsmasq(world)
    world.start_dante(internals=(E2E_PROXY4,))
    world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    for server in (E2E_ORIGIN4, E2E_ORIGIN6):
        r = dig(world, server, "big.test", "A", "+bufsize=4096", "+ignore")
        assert r.returncode == 0, r.stdout + r.stderr
        size = re.search(r"MSG SIZE\s+rcvd: (\d+)", r.stdout)
        assert size and int(size.group(1)) > 1500, r.stdout
        assert " tc" not in r.stdout.split("flags:")[1].split(";")[0], r.stdout
        answers = re.findall(r"^big\.test\.\s+\d+\s+IN\s+A\s+(\S+)", r.stdout, re.M)
        assert len(answers) == BIG_RECORDS
    assert udp_stats(world)["frag_sent"] >= 4  # each answer left in at least 2 fragments


def start_ssh_d(world, port=1082):
    """ssh -D in the client namespace (sshd in the server one); returns the proxy URL."""
    _need("sshd", "ssh", "ssh-keygen")
    key = world.start_sshd(addr=E2E_PROXY4)
    ssh = world.c.start(["ssh", "-N", "-D", f"127.0.0.1:{port}", "-p", "12222",
                         *world.ssh_opts(key), "-o", "ExitOnForwardFailure=yes",
                         f"root@{E2E_PROXY4}"], world.tmp / "ssh-D.log")
    wait_for(lambda: listening(world.c, port), "ssh -D", proc=ssh)
    return f"socks5://127.0.0.1:{port}"


def start_ss_local(world, port=1081):
    """shadowsocks-libev ss-local (client namespace) + ss-server, both with UDP (-u)."""
    _need("ss-server", "ss-local")
    common = ["-k", "t2s-pw", "-m", "chacha20-ietf-poly1305", "-u"]
    srv = world.s.start(["ss-server", "-s", E2E_PROXY4, "-p", "18388", *common],
                        world.tmp / "ss-server.log")
    world.wait_listen(18388, srv, "ss-server")
    loc = world.c.start(["ss-local", "-s", E2E_PROXY4, "-p", "18388", "-b", "127.0.0.1", "-l",
                         str(port), *common], world.tmp / "ss-local.log")
    wait_for(lambda: listening(world.c, port), "ss-local", proc=loc)
    return f"socks5://127.0.0.1:{port}"


@pytest.mark.parametrize("server", ["microsocks", "ssh-D"])
def test_dig_through_a_proxy_without_udp_uses_dns_over_tcp_and_other_udp_is_refused(
        world, tun2sock_bin, server):
    start_dnsmasq(world)
    if server == "microsocks":
        _need("microsocks")
        world.start_microsocks()
        url = f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}"
    else:
        url = start_ssh_d(world)  # closes the connection on UDP ASSOCIATE
    world.start_tun2sock(tun2sock_bin, url)
    for server, rtype, want in ((E2E_ORIGIN4, "A", E2E_ORIGIN4_B),
                                (E2E_ORIGIN6, "AAAA", "2001:db8:80::81"),
                                (E2E_ORIGIN4, "A", E2E_ORIGIN4_B)):
        r = dig(world, server, "a.test", rtype, "+short")
        assert r.returncode == 0 and r.stdout.split() == [want], r.stdout + r.stderr
    # A big answer comes back over TCP whole, then as UDP in fragments.
    r = dig(world, E2E_ORIGIN4, "big.test", "A", "+bufsize=4096", "+ignore")
    assert len(re.findall(r"^big\.test\.\s+\d+\s+IN\s+A\s", r.stdout, re.M)) == BIG_RECORDS
    st = udp_stats(world)
    assert st["no_udp_verdicts"] == 1 and st["proxy_no_udp"] == 1
    assert st["dns_tcp_queries"] >= 3 and st["dns_tcp_answers"] >= 3
    # Other UDP fails fast: a connected socket sees ECONNREFUSED from the ICMP port unreachable.
    script = ("import socket,sys,time\n"
              "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(3)\n"
              f"s.connect(('{E2E_ORIGIN4}', 9)); t=time.monotonic(); s.send(b'x')\n"
              "try:\n s.recv(100); print('data')\n"
              "except ConnectionRefusedError: print('refused %.3f' % (time.monotonic()-t))\n"
              "except socket.timeout: print('timeout')\n")
    r = world.c.run(PYTHON, "-c", script, check=False)
    assert r.stdout.startswith("refused"), r.stdout + r.stderr
    assert float(r.stdout.split()[1]) < 1.0
    assert udp_stats(world)["port_unreach_sent"] >= 1


def test_kdig_over_tcp(world, tun2sock_bin):
    _need("kdig")
    start_dnsmasq(world)
    world.start_dante(internals=(E2E_PROXY4,))
    world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    for server in (E2E_ORIGIN4, E2E_ORIGIN6):
        r = world.c.run("kdig", "+tcp", "+short", "+timeout=5", f"@{server}", "a.test", "A",
                        check=False, timeout=20)
        assert r.stdout.split() == [E2E_ORIGIN4_B], r.stdout + r.stderr
    r = world.c.run("kdig", "+tcp", "+timeout=5", f"@{E2E_ORIGIN4}", "big.test", "A",
                    check=False, timeout=20)
    assert len(re.findall(r"^big\.test\.\s+\d+\s+IN\s+A\s", r.stdout, re.M)) == BIG_RECORDS


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_ping_s_3000_fragmented_both_ways(world, tun2sock_bin, family):
    _need("ping")
    world.start_dante(internals=(E2E_PROXY4,))
    world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    dst = E2E_ORIGIN4 if family == "v4" else E2E_ORIGIN6
    args = ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-s", "3000"]
    if family == "v6":
        args.insert(1, "-6")
    r = world.c.run(*args, dst, check=False, timeout=30)
    assert " 0% packet loss" in r.stdout, r.stdout + r.stderr
    assert re.search(r"3008 bytes from", r.stdout), r.stdout
    st = udp_stats(world)
    assert st["frag_reassembled"] >= 3
    assert st["frag_sent"] >= 6


def test_iperf3_udp_through_dante_reports_loss(world, tun2sock_bin, record_property):
    _need("iperf3")
    world.start_dante(internals=(E2E_PROXY4,))
    srv = world.s.start(["iperf3", "-s", "-B", E2E_ORIGIN4, "-p", "5201"],
                        world.tmp / "iperf3-s.log")
    world.wait_listen(5201, srv, "iperf3 server")
    world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}")
    r = world.c.run("iperf3", "-c", E2E_ORIGIN4, "-p", "5201", "-u", "-b", "20M", "-l", "1200",
                    "-t", "3", "--json", check=False, timeout=60)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    res = json.loads(r.stdout)
    s = res["end"]["sum"]
    lost, packets = s["lost_percent"], s["packets"]
    print(f"\niperf3 -u 20 Mbit/s through dante: {packets} datagrams, {lost:.2f}% lost, "
          f"jitter {s['jitter_ms']:.3f} ms")
    record_property("iperf3_udp_lost_percent", lost)
    record_property("iperf3_udp_packets", packets)
    assert packets > 1000
    assert lost < 10.0
    assert udp_stats(world)["datagrams_up"] >= packets * 0.9


@pytest.mark.parametrize("server", ["dante", "ss-local"])
def test_quic_download(world, tun2sock_bin, tmp_path, server):
    _need("gtlsserver", "gtlsclient", "openssl")
    if server == "dante":
        world.start_dante(internals=(E2E_PROXY4,))
        url = f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}"
    else:
        url = start_ss_local(world)
    www = tmp_path / "htdocs"
    www.mkdir()
    data = os.urandom(2 * 1000 * 1000)
    (www / "blob.bin").write_bytes(data)
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    world.s.run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                "-days", "2", "-subj", "/CN=quic.test")
    srv = world.s.start(["gtlsserver", "-q", "-d", str(www), E2E_ORIGIN4, "4433", str(key),
                         str(cert)], world.tmp / "gtlsserver.log")
    world.wait_listen(4433, srv, "gtlsserver", proto="u")
    world.start_tun2sock(tun2sock_bin, url)
    out = tmp_path / "dl"
    out.mkdir()
    r = world.c.run("gtlsclient", "-q", "--exit-on-all-streams-close", f"--download={out}",
                    "--timeout=10s", E2E_ORIGIN4, "4433",
                    f"https://{E2E_ORIGIN4}:4433/blob.bin", check=False, timeout=60)
    got = out / "blob.bin"
    assert got.exists(), r.stdout[-2000:] + r.stderr[-2000:]
    assert hashlib.sha256(got.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert udp_stats(world)["datagrams_down"] > 1000
