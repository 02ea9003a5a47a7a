"""The captures bundled in pcaps/ are what scripts/gen-pcaps writes, and hold what it says."""
import subprocess

from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.utils import RawPcapReader

LINKTYPE_RAW = 101


def test_echo_pcap_is_regenerated_byte_for_byte(repo_root, tmp_path):
    subprocess.run(["/usr/bin/python3", str(repo_root / "scripts" / "gen-pcaps"), str(tmp_path)],
                   check=True, capture_output=True)
    committed = (repo_root / "pcaps" / "echo-v4v6.pcap").read_bytes()
    assert (tmp_path / "echo-v4v6.pcap").read_bytes() == committed, \
        "pcaps/echo-v4v6.pcap differs from scripts/gen-pcaps output: rerun it and commit"


def test_echo_pcap_holds_raw_ip_echo_requests_10ms_apart(pcaps_dir):
    reader = RawPcapReader(str(pcaps_dir / "echo-v4v6.pcap"))
    assert reader.linktype == LINKTYPE_RAW
    records = list(reader)
    assert len(records) == 14
    times_us = [meta.sec * 1_000_000 + meta.usec for _, meta in records]
    assert all(b - a == 10_000 for a, b in zip(times_us, times_us[1:]))
    v4 = v6 = 0
    sizes = set()
    for raw, _ in records:
        if raw[0] >> 4 == 4:
            p = IP(raw)
            assert p.haslayer(ICMP) and p[ICMP].type == 8
            # Checksums as written must verify: rebuild with them cleared and compare.
            q = IP(raw)
            del q.chksum
            del q[ICMP].chksum
            assert bytes(q) == raw
            sizes.add(len(p[ICMP].payload))
            v4 += 1
        else:
            p = IPv6(raw)
            assert p.haslayer(ICMPv6EchoRequest)
            q = IPv6(raw)
            del q[ICMPv6EchoRequest].cksum
            assert bytes(q) == raw
            v6 += 1
    assert v4 == 7 and v6 == 7
    assert len(sizes) == 7, "payload sizes should vary"
