"""tun2sock-sim --replay: captures of every supported link type go in at their recorded times,
and every ICMP/ICMPv6 echo request comes back as a correct echo reply in the output capture.

Fixtures (sim, sim_bin) come from conftest.py; set T2S_BUILD_DIR to test another build tree.
"""
import struct

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, CookedLinux, Dot1Q, Ether, Loopback
from scapy.packet import Raw
from scapy.utils import RawPcapReader

LINKTYPE_RAW = 101
SIZES = [0, 1, 7, 1000, 1471]
V4_SRC, V4_DST = "10.0.0.1", "93.184.216.34"
V6_SRC, V6_DST = "fd00::1", "2001:db8::1"


def payload(n, salt=0):
    return bytes((i * 7 + salt) & 0xFF for i in range(n))


def echo_requests():
    """v4 and v6 echo requests of every size, 100 ms apart starting at t=1000 s."""
    pkts = []
    t = 1000.0
    for seq, n in enumerate(SIZES):
        p4 = IP(src=V4_SRC, dst=V4_DST) / ICMP(type=8, id=0x1234, seq=seq) / Raw(payload(n, seq))
        # v6 capped at 1452 bytes of data: a 1500-byte reply (larger ones leave fragmented,
        # see test_sim_udp.py).
        p6 = IPv6(src=V6_SRC, dst=V6_DST) / ICMPv6EchoRequest(id=0x77, seq=seq,
                                                             data=payload(min(n, 1452), 99))
        for p in (p4, p6):
            p = p.__class__(bytes(p))  # freeze checksums and lengths
            p.time = t
            pkts.append(p)
            t += 0.1
    return pkts


def write_records(path, linktype, records, nano=False):
    """Writes a classic pcap: records are (frame bytes, seconds, fraction in us or ns)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
        for data, sec, frac in records:
            f.write(struct.pack("<IIII", sec, frac, len(data), len(data)))
            f.write(data)


def stamp(p):
    return int(p.time), int(round((p.time % 1) * 1e6))


def write_pcap(path, pkts, linktype=LINKTYPE_RAW, frame=lambda p: bytes(p)):
    write_records(path, linktype, [(frame(p),) + stamp(p) for p in pkts])


def assert_valid_reply(req, rep):
    """rep is the echo reply to req: addresses swapped, same id/seq/payload, checksums right."""
    if req.haslayer(IP):
        assert rep.haslayer(IP) and rep.haslayer(ICMP), rep.summary()
        assert rep[IP].src == req[IP].dst and rep[IP].dst == req[IP].src
        assert rep[ICMP].type == 0 and rep[ICMP].code == 0
        assert (rep[ICMP].id, rep[ICMP].seq) == (req[ICMP].id, req[ICMP].seq)
        assert bytes(rep[ICMP].payload) == bytes(req[ICMP].payload)
        fresh = IP(bytes(rep))
        del fresh.chksum
        del fresh[ICMP].chksum
        fresh = IP(bytes(fresh))
        assert fresh.chksum == rep[IP].chksum, "IPv4 header checksum"
        assert fresh[ICMP].chksum == rep[ICMP].chksum, "ICMP checksum"
        assert rep[IP].len == len(bytes(rep))
    else:
        assert rep.haslayer(IPv6) and rep.haslayer(ICMPv6EchoReply), rep.summary()
        assert rep[IPv6].src == req[IPv6].dst and rep[IPv6].dst == req[IPv6].src
        e, q = rep[ICMPv6EchoReply], req[ICMPv6EchoRequest]
        assert (e.id, e.seq) == (q.id, q.seq)
        assert e.data == q.data
        fresh = IPv6(bytes(rep))
        del fresh[ICMPv6EchoReply].cksum
        fresh = IPv6(bytes(fresh))
        assert fresh[ICMPv6EchoReply].cksum == e.cksum, "ICMPv6 checksum"
        assert rep[IPv6].plen == len(bytes(rep)) - 40


def read_raw(path):
    """Records of a capture as (bytes, time in ns), with its link type."""
    r = RawPcapReader(str(path))
    out = []
    for data, meta in r:
        ns = meta.sec * 1_000_000_000 + (meta.usec if r.nano else meta.usec * 1000)
        out.append((data, ns))
    return r.linktype, out


def parse_ip(raw):
    return IP(raw) if raw[0] >> 4 == 4 else IPv6(raw)


def check_replies(res, reqs):
    linktype, out = read_raw(res.pcap_out)
    assert linktype == LINKTYPE_RAW
    assert len(out) == len(reqs), res.describe()
    t0 = reqs[0].time
    for req, (raw, ns) in zip(reqs, out):
        assert_valid_reply(req, parse_ip(raw))
        # Virtual time starts at 0 at the first record; replies leave at once.
        assert ns == round((req.time - t0) * 1e9), (ns, req.time - t0)


def test_replay_echo_requests_v4_v6_get_exact_replies(sim, tmp_path):
    reqs = echo_requests()
    write_pcap(tmp_path / "in.pcap", reqs)
    res = sim(replay=tmp_path / "in.pcap")
    check_replies(res, reqs)
    assert "echo replies: 10" in res.stdout
    assert "packets in: 10" in res.stdout
    end = res.events_of("end")[0]
    assert end["stats"]["icmp_echo_replies"] == 10
    assert end["stats"]["packets_out"] == 10
    assert len(res.events_of("icmp_echo")) == 10


@pytest.mark.parametrize("linktype,frame,extra", [
    (1, lambda p: bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02",
                              type=0x0800 if p.haslayer(IP) else 0x86DD) / p), "arp"),
    (1, lambda p: bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
                        Dot1Q(vlan=7, type=0x0800 if p.haslayer(IP) else 0x86DD) / p), None),
    (113, lambda p: bytes(CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6,
                                      proto=0x0800 if p.haslayer(IP) else 0x86DD) / p), None),
    (0, lambda p: struct.pack("<I", 2 if p.haslayer(IP) else 30) + bytes(p), None),
    (228, None, "v4only"),
    (229, None, "v6only"),
], ids=["en10mb", "en10mb-vlan", "linux-sll", "null", "ipv4", "ipv6"])
def test_replay_strips_link_headers(sim, tmp_path, linktype, frame, extra):
    reqs = echo_requests()
    if extra == "v4only":
        reqs = [p for p in reqs if p.haslayer(IP)]
    elif extra == "v6only":
        reqs = [p for p in reqs if p.haslayer(IPv6)]
    frames = [(frame or (lambda p: bytes(p)))(p) for p in reqs]
    records = []
    for i, (p, f) in enumerate(zip(reqs, frames)):
        records.append((f,) + stamp(p))
        if extra == "arp" and i == 0:
            # A non-IP frame in between is skipped, not fed to the engine.
            arp = Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.2")
            records.append((bytes(arp),) + stamp(p))
    path = tmp_path / "in.pcap"
    write_records(path, linktype, records)
    res = sim(replay=path)
    check_replies(res, reqs)
    if extra == "arp":
        assert "skipped): 1" in res.stdout
        assert res.events_of("replay_end")[0]["skipped"] == 1


def write_pcapng(path, linktype, records):
    """Writes a pcapng file: one section, one interface (microsecond stamps), and an enhanced
    packet block per record (frame bytes, seconds, microseconds)."""
    def block(btype, body):
        body += bytes(-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)
    with open(path, "wb") as f:
        f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        f.write(block(0x00000001, struct.pack("<HHI", linktype, 0, 262144)))
        for data, sec, usec in records:
            ts = sec * 1_000_000 + usec
            f.write(block(0x00000006, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF,
                                                  len(data), len(data)) + data))


def test_replay_pcapng(sim, tmp_path):
    reqs = echo_requests()
    path = tmp_path / "in.pcapng"
    write_pcapng(path, LINKTYPE_RAW, [(bytes(p),) + stamp(p) for p in reqs])
    res = sim(replay=path)
    check_replies(res, reqs)


def test_replay_nanosecond_capture_keeps_exact_gaps(sim, tmp_path):
    reqs = echo_requests()[:3]
    path = tmp_path / "in.pcap"
    gaps_ns = [0, 1_234_567, 2_000_000_001]
    write_records(path, LINKTYPE_RAW, [(bytes(p), 5 + g // 1_000_000_000, g % 1_000_000_000)
                                       for p, g in zip(reqs, gaps_ns)], nano=True)
    res = sim(replay=path)
    _, out = read_raw(res.pcap_out)
    assert [ns for _, ns in out] == gaps_ns


def test_replay_malformed_packets_are_dropped_by_reason(sim, tmp_path):
    good = IP(src=V4_SRC, dst=V4_DST) / ICMP(id=1, seq=1) / Raw(b"abc")
    bad_csum = bytearray(bytes(good))
    bad_csum[10] ^= 0xFF  # IPv4 header checksum
    pkts = [bytes(good), bytes(bad_csum), b"\x45\x00", b"\x70" + bytes(39)]
    path = tmp_path / "in.pcap"
    write_records(path, LINKTYPE_RAW, [(raw, 1, i) for i, raw in enumerate(pkts)])
    res = sim(replay=path)
    drops = res.events_of("end")[0]["stats"]["drops"]
    assert drops == {"ipv4_bad_checksum": 1, "truncated": 1, "bad_version": 1}, drops
    assert [e["reason"] for e in res.events_of("drop")] == [
        "ipv4_bad_checksum", "truncated", "bad_version"]
    assert "ipv4_bad_checksum 1" in res.stdout
    _, out = read_raw(res.pcap_out)
    assert len(out) == 1


def test_replay_of_the_bundled_capture(sim, pcaps_dir):
    res = sim(replay=pcaps_dir / "echo-v4v6.pcap")
    _, inp = read_raw(pcaps_dir / "echo-v4v6.pcap")
    _, out = read_raw(res.pcap_out)
    assert len(out) == len(inp) == 14
    for (req, _), (rep, _) in zip(inp, out):
        assert_valid_reply(parse_ip(req), parse_ip(rep))


def test_replay_missing_file_exits_2(sim, tmp_path):
    res = sim(replay=tmp_path / "nope.pcap", check=False)
    assert res.returncode == 2
    assert "nope.pcap" in res.stderr


def test_replay_without_pcap_out_or_events_still_runs(sim_bin, tmp_path):
    import subprocess
    reqs = echo_requests()
    write_pcap(tmp_path / "in.pcap", reqs)
    p = subprocess.run([str(sim_bin), "--replay", str(tmp_path / "in.pcap")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "echo replies: 10" in p.stdout


def test_usage_errors_exit_2(sim_bin):
    import subprocess
    for args in ([], ["--bogus"], ["--replay"], ["--seed", "x", "--replay", "a"],
                 ["--replay", "a", "--scenario", "b"]):
        p = subprocess.run([str(sim_bin)] + args, capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr


def test_replay_of_every_corpus_capture_ends_cleanly(sim, corpus):
    """Each shared capture (raw IP and original link types) replays to the end: exit 0, every IP
    record handed to the engine, what the engine cannot use dropped and counted."""
    import glob
    root = corpus("pcaps")
    files = sorted(glob.glob(str(root / "**" / "*.pcap*"), recursive=True))
    assert files
    for i, f in enumerate(files):
        res = sim(replay=f, name=f"c{i}")
        end = res.events_of("end")[0]
        rend = res.events_of("replay_end")
        assert rend and "error" not in rend[0], (f, rend)
        assert end["packets_in"] == rend[0]["packets"], f
        assert end["stats"]["packets_in"] == end["packets_in"], f
