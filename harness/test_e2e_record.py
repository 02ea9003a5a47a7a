"""The flight recorder end to end (docs/recording.md): tun2sock --record in real namespaces,
then tun2sock-sim --replay-record on the file.

    client ns "rc": up1 198.51.100.2/24 --- server dn1 198.51.100.1/24
                    up2 203.0.113.2/24  --- server dn2 203.0.113.1/24
                    t2s0 198.18.0.1/15, fd00:18::1/64 (tun2sock); 192.0.2.80/32 and
                    2001:db8:80::/48 routed into t2s0; the default route via up1 or up2
    server ns "rs": lo 192.0.2.1 (dante, port 1080), 192.0.2.80 and 2001:db8:80::80 (HTTP
                    origin, port 8080; dnsmasq, port 53)

test_recorded_session_replays_identically: one run recording curl downloads over IPv4 and
IPv6, a DNS query through UDP ASSOCIATE, a default-route switch from up1 to up2, an injected
sleep (CLOCK_BOOTTIME pushed 30 s ahead through the test hook) and a SIGTERM; the replay is
identical (twice, the same summary and events), a copy with one byte of one recorded client
packet flipped reports the first difference at that packet (exit 1), a truncated copy exits 2.
The pcap of the same run opens as LINKTYPE_RAW.

test_recorded_session_with_device_faults_replays_identically: microsocks (no UDP: the DNS
query goes over TCP, the fallback) and --device-fault loss=2%: the injected losses happen
(logged) and the recording replays identically.

test_recorded_fake_dns_session_replays_identically: --fake-dns with a state file filled by a
first run; the recording of a second run (the name answered from the loaded state, a new name,
a download by name through dante) holds the table's configuration and its entries at the
start, and replays identically; the answers and the CONNECT by name come out the same.

test_recorded_failover_replays_identically: two proxies, the preferred one refusing (nothing
listens on its port): the engine's proxy list, the failures that take it down, its probes'
results and the flows carried by the second proxy are recorded, and the replay is identical.

test_replay_is_the_same_on_a_second_build: tun2sock-sim built a second time from the same
sources in another directory replays the first test's recording with the same output.

test_replay_record_verdicts_and_exit_codes (no root): hand-made recordings through the
command line: an empty one is identical (0), an output nobody made is a difference (1),
truncated, other-version, corrupt, unreadable files and bad options exit 2.

Namespaces are named t2sb-<pid>-<n>-<tag> (test_bin_util.py) and removed; every process is
stopped by its PID.
"""
import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from test_bin_util import Netns, Process, need, start_dante, start_tun2sock, veth, wait_for

PROXY, ORIGIN, ORIGIN6, SOCKS_PORT, HTTP_PORT = "192.0.2.1", "192.0.2.80", "2001:db8:80::80", \
    1080, 8080
GW1, ME1, GW2, ME2 = "198.51.100.1", "198.51.100.2", "203.0.113.1", "203.0.113.2"
METRICS_PORT = 9473
REPO = Path(__file__).resolve().parent.parent
SIZE = 300 * 1024  # each download


class World:
    def __init__(self, tmp: Path, binary: Path, udp: bool, names: bool = False):
        need("danted", "curl", "dig", "dnsmasq", "ss")
        self.tmp, self.bin = tmp, binary
        self.t = None
        self.c = Netns("rc")
        self.s = Netns("rs")
        self.netns_etc = None
        try:
            if names:  # the proxy resolves names with the dnsmasq beside it
                self.netns_etc = Path("/etc/netns") / self.s.name
                self.netns_etc.mkdir(parents=True, exist_ok=True)
                (self.netns_etc / "resolv.conf").write_text(f"nameserver {ORIGIN}\n")
                (self.netns_etc / "hosts").write_text("127.0.0.1 localhost\n")
            veth(self.c, f"{ME1}/24", self.s, f"{GW1}/24", a_dev="up1", b_dev="dn1")
            veth(self.c, f"{ME2}/24", self.s, f"{GW2}/24", a_dev="up2", b_dev="dn2")
            for a in (PROXY, ORIGIN):
                self.s.ip("addr", "add", f"{a}/32", "dev", "lo")
            self.s.ip("addr", "add", f"{ORIGIN6}/128", "dev", "lo", "nodad")
            www = tmp / "www"
            www.mkdir()
            (www / "file").write_bytes(os.urandom(SIZE))
            self.s.start(["/usr/bin/python3", "-m", "http.server", "--bind", "::", "-d",
                          str(www), str(HTTP_PORT)], tmp / "http.log")
            self.dns = self.s.start(
                ["dnsmasq", "--keep-in-foreground", "--log-facility=-", "--no-resolv",
                 "--no-hosts", "--bind-interfaces", f"--listen-address={ORIGIN}", "--port=53",
                 "--user=root", "--group=root", f"--pid-file={tmp / 'dnsmasq.pid'}",
                 f"--host-record=a.test,{ORIGIN}"], tmp / "dnsmasq.log")
            if udp:
                self.proxy = start_dante(self.s, tmp, [PROXY], SOCKS_PORT, external="lo")
            else:  # microsocks answers UDP ASSOCIATE with REP 7: DNS goes over TCP
                need("microsocks")
                self.proxy = self.s.start(["microsocks", "-i", PROXY, "-p", str(SOCKS_PORT)],
                                          tmp / "microsocks.log")
            wait_for(lambda: self._listening(f":{HTTP_PORT}") and self._listening(f"{ORIGIN}:53")
                     and self._listening(f"{PROXY}:{SOCKS_PORT}"), "the servers", proc=self.proxy)
            self.c.ip("route", "add", "default", "via", GW1, "dev", "up1")
        except Exception:
            self.close()
            raise

    def _listening(self, hostport: str) -> bool:
        return hostport in self.s.run("ss", "-ltnH", check=False).stdout

    def start(self, *extra: str, env=None, first_proxy=None) -> Process:
        pre = ["--proxy", first_proxy] if first_proxy else []
        args = ["--device", "t2s0", *pre, "--proxy", f"socks5://{PROXY}:{SOCKS_PORT}",
                "--address", "198.18.0.1/15", "--address", "fd00:18::1/64",
                "--metrics", f"127.0.0.1:{METRICS_PORT}", "--log-level", "debug", *extra]
        old = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            self.t = start_tun2sock(self.c, self.bin, self.tmp / "tun2sock.log", args,
                                    ready_addr="fd00:18::1")
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.c.ip("route", "add", f"{ORIGIN}/32", "dev", "t2s0")
        self.c.ip("-6", "route", "add", "2001:db8:80::/48", "dev", "t2s0")
        wait_for(lambda: "tun2sock_network_changes_total" in self.metrics(), "the metrics",
                 proc=self.t)
        return self.t

    def metrics(self) -> str:
        return self.c.run("curl", "-s", "--max-time", "2",
                          f"http://127.0.0.1:{METRICS_PORT}/metrics", check=False).stdout

    def metric(self, name: str) -> float:
        m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", self.metrics(), re.M)
        return float(m.group(1)) if m else -1.0

    def curl(self, url: str) -> int:
        r = self.c.run("curl", "-sg", "--max-time", "20", "-o", "/dev/null", "-w",
                       "%{size_download}", url, check=False, timeout=30)
        assert r.returncode == 0, f"curl {url}: {r.returncode} {r.stderr}\n" + \
            self.t.output()[-3000:]
        return int(r.stdout)

    def dig(self, name: str = "a.test") -> str:
        r = self.c.run("dig", f"@{ORIGIN}", "+tries=2", "+time=5", name, "A", "+short",
                       check=False, timeout=30)
        return r.stdout.strip()

    def close(self):
        if self.t is not None and self.t.alive():
            self.t.stop()
        self.c.close()
        self.s.close()
        if self.netns_etc is not None:
            shutil.rmtree(self.netns_etc, ignore_errors=True)


def stop(world: World) -> None:
    """SIGTERM: the clean stop that flushes the recording."""
    rc = world.t.stop()
    out = world.t.output()
    assert rc == 0, out[-3000:]
    assert "recording:" in out, out[-3000:]


def replay(sim_bin: Path, rec: Path, *extra: str):
    return subprocess.run([str(sim_bin), "--replay-record", str(rec), *extra],
                          capture_output=True, text=True, timeout=300)


def records(data: bytes):
    """(offset, kind, now, body offset, body length) of each record of a recording."""
    body = struct.unpack_from("<I", data, 16)[0]
    pos = 20 + body
    while pos + 13 <= len(data):
        kind, blen, now = struct.unpack_from("<BIQ", data, pos)
        yield pos, kind, now, pos + 13, blen
        pos += 13 + blen


def check_replays(tmp: Path, sim_bin: Path, rec: Path, min_inputs: int = 50) -> str:
    """The replay is identical, twice; returns its summary line."""
    r = replay(sim_bin, rec, "--events-out", str(tmp / "ev1.jsonl"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "replay-record identical" in r.stdout, r.stdout
    inputs = int(re.search(r"identical: (\d+) inputs", r.stdout).group(1))
    assert inputs > min_inputs, r.stdout
    assert "no end record" not in r.stdout, r.stdout
    r2 = replay(sim_bin, rec, "--events-out", str(tmp / "ev2.jsonl"))
    assert r2.returncode == 0 and r2.stdout == r.stdout
    assert (tmp / "ev1.jsonl").read_bytes() == (tmp / "ev2.jsonl").read_bytes()
    assert (tmp / "ev1.jsonl").stat().st_size > 0
    return r.stdout


@pytest.mark.root
def test_recorded_session_replays_identically(tmp_path, tun2sock_bin, sim_bin):
    w = World(tmp_path, tun2sock_bin, udp=True)
    rec, pcap = tmp_path / "session.t2srec", tmp_path / "session.pcap"
    offset = tmp_path / "boottime-offset"
    offset.write_text("0\n")
    try:
        w.start("--record", str(rec), "--pcap", str(pcap), "--pcap-snaplen", "128",
                env={"TUN2SOCK_TEST_BOOTTIME_OFFSET_FILE": str(offset)})
        assert w.curl(f"http://{ORIGIN}:{HTTP_PORT}/file") == SIZE
        assert w.curl(f"http://[{ORIGIN6}]:{HTTP_PORT}/file") == SIZE
        assert w.dig() == ORIGIN, w.t.output()[-3000:]
        # the default route moves from up1 to up2
        w.c.ip("route", "replace", "default", "via", GW2, "dev", "up2")
        wait_for(lambda: w.metric("tun2sock_network_changes_total") >= 1, "the route change",
                 timeout=5, proc=w.t)
        assert w.curl(f"http://{ORIGIN}:{HTTP_PORT}/file") == SIZE
        # an injected sleep: CLOCK_BOOTTIME 30 s ahead of CLOCK_MONOTONIC
        offset.write_text(f"{30 * 10**9}\n")
        wait_for(lambda: w.metric("tun2sock_resumes_total") >= 1, "the resume", timeout=5,
                 proc=w.t)
        time.sleep(1.0)  # the settle after a resume
        assert w.curl(f"http://[{ORIGIN6}]:{HTTP_PORT}/file") == SIZE
        os.kill(w.t.pid, 12)  # SIGUSR2: a flush while running
        stop(w)
    finally:
        w.close()
    data = rec.read_bytes()
    assert data[:8] == b"T2SREC\r\n"
    kinds = {k for _, k, _, _, _ in records(data)}
    # inputs, outputs, and the notes: clock reads (boottime: how the sleep was seen), SIGUSR2
    assert {1, 2, 3, 4, 10, 12, 32, 33, 35, 36, 37, 41, 42, 44, 45, 64, 65, 66, 67, 68} <= kinds, \
        sorted(kinds)
    summary = check_replays(tmp_path, sim_bin, rec)
    print(f"\n{len(data)} bytes recorded; {summary.strip()}")
    shutil.copy(rec, tmp_path / "keep.t2srec")  # for the second-build test's reuse

    # One byte of one recorded client packet (the first dev_in with a TCP payload) flipped.
    recs = list(records(data))
    for i, (off, kind, now, b, blen) in enumerate(recs):
        pkt = data[b + 4:b + blen]
        if kind == 1 and len(pkt) > 60 and pkt[0] >> 4 == 4 and pkt[9] == 6:
            ihl, doff = (pkt[0] & 15) * 4, (pkt[(pkt[0] & 15) * 4 + 12] >> 4) * 4
            if len(pkt) > ihl + doff + 4:
                flip_at, recno, when = b + 4 + ihl + doff + 2, i + 1, now
                break
    else:
        pytest.fail("no client packet with a TCP payload in the recording")
    bad = bytearray(data)
    bad[flip_at] ^= 0x01
    (tmp_path / "flipped.t2srec").write_bytes(bad)
    r = replay(sim_bin, tmp_path / "flipped.t2srec")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"input record #{recno} dev_in (TCP " in r.stderr, (recno, r.stderr)
    assert f"at t={when // 10**9}.{when % 10**9:09d} s" in r.stderr, (when, r.stderr)
    print(f"flipped: {r.stderr.strip()}")

    # Truncated: the file cut inside a record.
    (tmp_path / "cut.t2srec").write_bytes(data[:len(data) - 5])
    r = replay(sim_bin, tmp_path / "cut.t2srec")
    assert r.returncode == 2 and "truncated" in r.stderr, r.stdout + r.stderr
    # Another format version.
    other = bytearray(data)
    other[8] = 9
    (tmp_path / "v9.t2srec").write_bytes(other)
    r = replay(sim_bin, tmp_path / "v9.t2srec")
    assert r.returncode == 2 and "another format version" in r.stderr, r.stderr

    # The pcap: classic, LINKTYPE_RAW, snaplen 128, packets in both directions.
    p = pcap.read_bytes()
    magic, _, _, _, _, snaplen, linktype = struct.unpack_from("<IHHiIII", p, 0)
    assert (magic, snaplen, linktype) == (0xa1b2c3d4, 128, 101)
    assert len(p) > 24 + 100 * 16
    if shutil.which("tcpdump"):
        t = subprocess.run(["tcpdump", "-nr", str(pcap), "-c", "5"], capture_output=True,
                           text=True, timeout=30)
        assert t.returncode == 0 and "IP" in t.stdout, t.stderr


@pytest.mark.root
def test_recorded_session_with_device_faults_replays_identically(tmp_path, tun2sock_bin,
                                                                   sim_bin):
    w = World(tmp_path, tun2sock_bin, udp=False)  # a proxy without UDP: DNS over TCP
    rec = tmp_path / "faults.t2srec"
    try:
        w.start("--record", str(rec), "--device-fault", "loss=2%,seed=11")
        assert w.curl(f"http://{ORIGIN}:{HTTP_PORT}/file") == SIZE
        assert w.curl(f"http://[{ORIGIN6}]:{HTTP_PORT}/file") == SIZE
        ans = ""
        for _ in range(3):  # a lost query is retried by dig; bounded
            ans = w.dig()
            if ans == ORIGIN:
                break
        assert ans == ORIGIN, w.t.output()[-3000:]
        st = w.c.run("curl", "-s", f"http://127.0.0.1:{METRICS_PORT}/metrics").stdout
        m = re.search(r"^tun2sock_udp_dns_tcp_queries_total (\d+)", st, re.M)
        assert m and int(m.group(1)) >= 1, st  # the query went over TCP
        stop(w)
        out = w.t.output()
    finally:
        w.close()
    m = re.search(r"device-fault: lost (\d+)", out)
    assert m and int(m.group(1)) > 0, out[-2000:]
    summary = check_replays(tmp_path, sim_bin, rec)
    ev = (tmp_path / "ev1.jsonl").read_text()
    assert '"event":"udp_open"' in ev, ev[-2000:]
    print(f"\n{m.group(0)}; {summary.strip()}")


@pytest.mark.root
def test_replay_is_the_same_on_a_second_build(tmp_path, tun2sock_bin, sim_bin):
    """Builds tun2sock-sim again from the same sources in another directory and replays a
    fresh recording with both: the same summary and the same events."""
    if not shutil.which("cmake"):
        pytest.skip("cmake not installed")
    w = World(tmp_path, tun2sock_bin, udp=True)
    rec = tmp_path / "s.t2srec"
    try:
        w.start("--record", str(rec))
        assert w.curl(f"http://{ORIGIN}:{HTTP_PORT}/file") == SIZE
        assert w.dig() == ORIGIN
        stop(w)
    finally:
        w.close()
    b2 = tmp_path / "build2"
    subprocess.run(["cmake", "-S", str(REPO), "-B", str(b2)], check=True, capture_output=True,
                   timeout=300)
    subprocess.run(["cmake", "--build", str(b2), "-j2", "--target", "tun2sock-sim"], check=True,
                   capture_output=True, timeout=900)
    r1 = replay(sim_bin, rec, "--events-out", str(tmp_path / "e1"))
    r2 = replay(b2 / "tun2sock-sim", rec, "--events-out", str(tmp_path / "e2"))
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    assert r1.stdout == r2.stdout
    assert (tmp_path / "e1").read_bytes() == (tmp_path / "e2").read_bytes()


def _header(seed: int = 1) -> bytes:
    """A version-1 header with the engine's default options (docs/recording.md)."""
    def st(x: bytes) -> bytes:
        return struct.pack("<H", len(x)) + x
    addr0 = bytes(19)
    cfg = struct.pack("<QIB", seed, 1500, 0) + addr0 + struct.pack("<HH", 0xffff, 0xffff)
    cfg += struct.pack("<I", 0) + bytes(16) + addr0 + struct.pack("<I", 0)
    cfg += struct.pack("<BQIIIIQIQQQIBBBQIB", 0, 10 * 10**9, 262144, 262144, 16384, 1024,
                       2 * 10**9, 12, 0, 60 * 10**9, 10 * 10**9, 4096, 1, 0, 0, 500 * 10**6, 0, 0)
    cfg += addr0 + struct.pack("<Q", 512 << 20)
    body = b""
    for tag, val in ((1, st(b"test_e2e_record")), (2, st(b"")), (3, cfg)):
        body += struct.pack("<HI", tag, len(val)) + val
    return b"T2SREC\r\n" + struct.pack("<III", 1, 0, len(body)) + body


def _record(kind: int, now: int, body: bytes = b"") -> bytes:
    return struct.pack("<BIQ", kind, len(body), now) + body


def test_replay_record_verdicts_and_exit_codes(tmp_path, sim_bin):
    end = _record(68, 5, struct.pack("<I", 0))
    caps = _record(34, 0, struct.pack("<II", 1500, 0))  # the engine asks the device at start
    cases = {
        "empty.t2srec": (_header() + caps + end, 0, "replay-record identical: 0 inputs"),
        "expiry.t2srec": (_header() + caps + _record(2, 10**6) + _record(32, 10**6, bytes(8))
                          + end, 0, "identical: 1 inputs"),
        # the engine never sends this packet: the first difference
        "extra.t2srec": (_header() + caps + _record(2, 10**6)
                         + _record(35, 10**6, bytes(4) + struct.pack("<IQ", 1, 0) + b"x"),
                         1, "recorded dev_send (flow 0), replayed nothing"),
        # an expiry that returns 1 instead of 0
        "rv.t2srec": (_header() + caps + _record(2, 10**6)
                      + _record(32, 10**6, struct.pack("<q", 1)),
                      1, "return value of expiry: recorded 1, replayed 0"),
        "cut.t2srec": ((_header() + caps + end)[:-3], 2, "truncated"),
        "hdrcut.t2srec": (_header()[:30], 2, "truncated"),
        "v2.t2srec": (_header()[:8] + b"\x02" + _header()[9:], 2, "another format version"),
        "kind.t2srec": (_header() + caps + _record(99, 0), 2, "corrupt"),
        "magic.t2srec": (b"GIF89a" + bytes(40), 2, "bad magic"),
    }
    for name, (data, code, want) in cases.items():
        (tmp_path / name).write_bytes(data)
        r = replay(sim_bin, tmp_path / name)
        assert r.returncode == code, (name, r.stdout, r.stderr)
        assert want in r.stdout + r.stderr, (name, r.stdout, r.stderr)
    # --until stops before the first input after it
    r = replay(sim_bin, tmp_path / "extra.t2srec", "--until", "0")
    assert r.returncode == 0 and "stopped at --until" in r.stdout, r.stdout + r.stderr
    for args in (["--until", "soon"], ["--bogus", "1"], []):
        r = subprocess.run([str(sim_bin), "--replay-record", *args] if args else
                           [str(sim_bin), "--replay-record"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2, (args, r.stderr)
    r = replay(sim_bin, tmp_path / "missing.t2srec")
    assert r.returncode == 2 and "cannot open" in r.stderr


@pytest.mark.root
def test_record_max_bounds_the_file_and_it_still_replays(tmp_path, tun2sock_bin, sim_bin):
    w = World(tmp_path, tun2sock_bin, udp=True)
    rec, ring = tmp_path / "max.t2srec", tmp_path / "ring.t2srec"
    try:
        w.start("--record", str(rec), "--record-max", "64K")
        assert w.curl(f"http://{ORIGIN}:{HTTP_PORT}/file") == SIZE
        stop(w)
        w.start("--record", str(ring), "--record-max", "64K", "--record-mode", "ring")
        assert w.curl(f"http://{ORIGIN}:{HTTP_PORT}/file") == SIZE
        stop(w)
    finally:
        w.close()
    assert 0 < rec.stat().st_size <= 64 * 1024
    r = replay(sim_bin, rec)
    assert r.returncode == 0 and "stops at its --record-max" in r.stdout, r.stdout + r.stderr
    # the ring kept the newest 64 KiB: marked, refused by the replay
    assert 0 < ring.stat().st_size <= 64 * 1024
    r = replay(sim_bin, ring)
    assert r.returncode == 2 and "ring recording" in r.stderr, r.stdout + r.stderr


FAKEDNS_STATE_KIND = 69  # rec_format.h: the notes start at 64; T2S_REC_FAKEDNS_STATE is the 6th


@pytest.mark.root
def test_recorded_fake_dns_session_replays_identically(tmp_path, tun2sock_bin, sim_bin):
    w = World(tmp_path, tun2sock_bin, udp=True, names=True)
    rec, state = tmp_path / "fakedns.t2srec", tmp_path / "fakedns.state"
    try:
        w.start("--fake-dns", "--fake-dns-state", str(state))
        first = w.dig("a.test")
        assert first.startswith("198.19."), first + w.t.output()[-2000:]
        stop_plain = w.t.stop()
        assert stop_plain == 0 and "a.test" in state.read_text(), state.read_text()
        w.start("--fake-dns", "--fake-dns-state", str(state), "--record", str(rec))
        assert w.dig("a.test") == first  # from the loaded state
        other = w.dig("b.test")
        assert other.startswith("198.19.") and other != first, other
        assert w.curl(f"http://{first}:{HTTP_PORT}/file") == SIZE  # CONNECT a.test via dante
        stop(w)
    finally:
        w.close()
    data = rec.read_bytes()
    kinds = [(k, data[b:b + n]) for _, k, _, b, n in records(data)]
    assert kinds and kinds[0][0] == FAKEDNS_STATE_KIND and b"a.test" in kinds[0][1], kinds[:2]
    # the header's options field holds the command line
    assert b"--fake-dns --fake-dns-state " + bytes(state) in data[:8192], data[:400]
    check_replays(tmp_path, sim_bin, rec, min_inputs=20)  # offloads: few, large packets


@pytest.mark.root
def test_recorded_failover_replays_identically(tmp_path, tun2sock_bin, sim_bin):
    w = World(tmp_path, tun2sock_bin, udp=True)
    rec = tmp_path / "failover.t2srec"
    try:
        w.start("--record", str(rec), "--proxy-probe-interval", "200ms",
                first_proxy=f"socks5://{PROXY}:{SOCKS_PORT + 1}")
        for _ in range(4):  # the first ones are refused until the dead proxy is DOWN
            w.c.run("curl", "-s", "--max-time", "5", "-o", "/dev/null",
                    f"http://{ORIGIN}:{HTTP_PORT}/file", check=False, timeout=10)
        assert w.curl(f"http://{ORIGIN}:{HTTP_PORT}/file") == SIZE
        time.sleep(1.0)  # probes of the dead proxy fail, recorded
        stop(w)
    finally:
        w.close()
    data = rec.read_bytes()
    kinds = {k for _, k, _, _, _ in records(data)}
    # set_proxies (13) and proxy_probe (16): rec_format.h
    assert 13 in kinds and 16 in kinds, sorted(kinds)
    check_replays(tmp_path, sim_bin, rec, min_inputs=20)
