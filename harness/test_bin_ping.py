"""The real binary on a real TUN in a network namespace: ICMP echo answered by the engine
(IPv4 and IPv6, payload intact), the TUN's life cycle (created and deleted, attached and
restored, handed in as fd://N), SIGUSR1 counters and the --metrics endpoint."""
import json
import signal
import time

import pytest

from test_bin_util import Netns, have, start_tun2sock, link_exists, addrs_of, wait_for

pytestmark = pytest.mark.root

PROXY = "socks5://127.0.0.1:1080"  # nothing listens: ICMP never reaches the proxy


def _need_ping():
    if not have("ping"):
        pytest.skip("ping not installed (Debian package iputils-ping)")


@pytest.fixture
def ns():
    n = Netns("ping")
    yield n
    n.close()


def _start(ns, tun2sock_bin, tmp_path, *extra, ready_addr="198.18.0.1"):
    return start_tun2sock(ns, tun2sock_bin, tmp_path / "tun2sock.log",
                          ["--device", "t2s0", "--proxy", PROXY, "--address", "198.18.0.1/15",
                           "--address", "fd00:18::1/64", "--log-level", "debug", *extra],
                          ready_addr=ready_addr)


def _ping(ns, *args, count=3):
    return ns.run("ping", "-c", str(count), "-i", "0.2", "-W", "2", *args, check=False,
                  timeout=20)


def test_ping_v4_through_the_tun_is_answered_with_payload_intact(ns, tun2sock_bin, tmp_path):
    _need_ping()
    t = _start(ns, tun2sock_bin, tmp_path)
    # Two destinations routed into the TUN: inside its prefix and a documentation range.
    ns.ip("route", "add", "192.0.2.0/24", "dev", "t2s0")
    for dst in ("198.18.77.1", "192.0.2.9"):
        p = _ping(ns, "-p", "5a17c3e1", "-s", "1200", dst)
        assert "3 received" in p.stdout, p.stdout + p.stderr + t.output()
        assert "wrong data byte" not in p.stdout, p.stdout  # ping compares the payload
        assert "DUP" not in p.stdout
    assert "icmp_echo" in t.output()


def test_ping_v6_through_the_tun_is_answered_with_payload_intact(ns, tun2sock_bin, tmp_path):
    _need_ping()
    t = _start(ns, tun2sock_bin, tmp_path, ready_addr="fd00:18::1")
    ns.ip("-6", "route", "add", "2001:db8:77::/48", "dev", "t2s0")
    for dst in ("fd00:18::77", "2001:db8:77::1"):
        p = _ping(ns, "-6", "-p", "a5c3", "-s", "1000", dst)
        assert "3 received" in p.stdout, p.stdout + p.stderr + t.output()
        assert "wrong data byte" not in p.stdout, p.stdout


def test_sigterm_stops_cleanly_and_deletes_the_created_tun(ns, tun2sock_bin, tmp_path):
    t = _start(ns, tun2sock_bin, tmp_path)
    assert "created" in t.output()
    assert t.stop() == 0, t.output()
    assert not link_exists(ns, "t2s0")
    assert "deleted the TUN t2s0" in t.output()


def test_sigint_stops_cleanly(ns, tun2sock_bin, tmp_path):
    t = _start(ns, tun2sock_bin, tmp_path)
    t.signal(signal.SIGINT)
    t.p.wait(timeout=5)
    assert t.p.returncode == 0, t.output()
    assert "SIGINT" in t.output()


def test_attached_persistent_tun_gets_its_addresses_back_on_exit(ns, tun2sock_bin, tmp_path):
    _need_ping()
    ns.ip("tuntap", "add", "dev", "t2s0", "mode", "tun")
    ns.ip("addr", "add", "198.51.100.1/24", "dev", "t2s0")  # the operator's own address
    t = _start(ns, tun2sock_bin, tmp_path, "--mtu", "1400")
    assert "attached" in t.output()
    assert "mtu 1400" in ns.ip("link", "show", "dev", "t2s0").stdout
    p = _ping(ns, "198.18.9.9", count=2)
    assert "2 received" in p.stdout, p.stdout + t.output()
    assert t.stop() == 0, t.output()
    out = addrs_of(ns, "t2s0")
    assert link_exists(ns, "t2s0"), "a persistent TUN must outlive us"
    assert "198.18.0.1" not in out and "fd00:18::1" not in out, out
    assert "198.51.100.1/24" in out, "an address we did not add must stay"


def _txqueuelen(ns, dev="t2s0") -> int:
    return int(ns.run("cat", f"/sys/class/net/{dev}/tx_queue_len").stdout)


def test_created_tun_gets_a_longer_txqueuelen_than_the_kernels_500(ns, tun2sock_bin, tmp_path):
    # The kernel gives a new TUN 500; a SYN flood on a loaded machine overruns that.
    t = _start(ns, tun2sock_bin, tmp_path)
    assert _txqueuelen(ns) == 10000, t.output()
    assert "txqueuelen 10000" in t.output()


@pytest.mark.parametrize("value,expect", [("2048", 2048), ("0", 500)])
def test_txqueuelen_option_sets_the_tuns_queue(ns, tun2sock_bin, tmp_path, value, expect):
    t = _start(ns, tun2sock_bin, tmp_path, "--txqueuelen", value)
    assert _txqueuelen(ns) == expect, t.output()


def test_attached_tun_with_a_longer_queue_keeps_it(ns, tun2sock_bin, tmp_path):
    ns.ip("tuntap", "add", "dev", "t2s0", "mode", "tun")
    ns.ip("link", "set", "t2s0", "txqueuelen", "20000")  # the operator's choice: not lowered
    t = _start(ns, tun2sock_bin, tmp_path)
    assert "attached" in t.output()
    assert _txqueuelen(ns) == 20000, t.output()
    assert t.stop() == 0, t.output()


def test_device_fd_uses_the_tun_the_parent_opened(ns, tun2sock_bin, tmp_path):
    _need_ping()
    # A parent that opens the TUN itself and hands the fd over (as an embedding app would).
    script = (
        "import fcntl, os, struct, sys\n"
        "fd = os.open('/dev/net/tun', os.O_RDWR)\n"
        "fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', b't2s0', 0x0001 | 0x1000))\n"
        "os.set_inheritable(fd, True)\n"
        "os.execv(sys.argv[1], [sys.argv[1], '--device', 'fd://%d' % fd] + sys.argv[2:])\n")
    t = ns.start(["/usr/bin/python3", "-c", script, str(tun2sock_bin), "--proxy", PROXY,
                  "--address", "198.18.0.1/15"], tmp_path / "fd.log")
    wait_for(lambda: "198.18.0.1" in addrs_of(ns, "t2s0") and ",UP" in addrs_of(ns, "t2s0"),
             "t2s0 configured through fd://", proc=t)
    p = _ping(ns, "198.18.3.3", count=2)
    assert "2 received" in p.stdout, p.stdout + t.output()
    assert _txqueuelen(ns) == 500, "an fd:// TUN is not ours to configure: " + t.output()
    assert t.stop() == 0, t.output()


def test_sigusr1_logs_the_counters(ns, tun2sock_bin, tmp_path):
    _need_ping()
    t = _start(ns, tun2sock_bin, tmp_path)
    _ping(ns, "198.18.1.1", count=2)
    t.signal(signal.SIGUSR1)
    wait_for(lambda: "icmp echo replies 2" in t.output(), "stats line after SIGUSR1", proc=t)


def test_metrics_endpoint_serves_prometheus_and_json(ns, tun2sock_bin, tmp_path):
    _need_ping()
    if not have("curl"):
        pytest.skip("curl not installed")
    t = _start(ns, tun2sock_bin, tmp_path, "--metrics", "127.0.0.1:19100")
    p = _ping(ns, "198.18.1.1", count=2)
    assert "2 received" in p.stdout

    def fetch(path):
        r = ns.run("curl", "-sf", "--max-time", "5", f"http://127.0.0.1:19100{path}",
                   check=False)
        return r.stdout if r.returncode == 0 else None

    text = wait_for(lambda: fetch("/metrics"), "/metrics", proc=t)
    for name in ("tun2sock_tcp_flows_active", "tun2sock_udp_sessions_active",
                 'tun2sock_bytes_total{direction="up"}', 'tun2sock_bytes_total{direction="down"}',
                 'tun2sock_packets_dropped_total{reason="tcp_bad_checksum"}',
                 'tun2sock_upstream_errors_total{error="ECONNREFUSED"}',
                 "tun2sock_network_changes_total", "tun2sock_route_updates_total",
                 "tun2sock_flows_reset_total", "tun2sock_icmp_echo_replies_total 2",
                 'tun2sock_packets_total{direction="in"}'):
        assert name in text, f"{name} missing from /metrics:\n{text}"
    stats = json.loads(wait_for(lambda: fetch("/stats"), "/stats", proc=t))
    assert stats["icmp_echo_replies"] == 2
    assert "tcp_bad_checksum" in stats["packets_dropped"]
    r = ns.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
               "http://127.0.0.1:19100/nope", check=False)
    assert r.stdout == "404"
