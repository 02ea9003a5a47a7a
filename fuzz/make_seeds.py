#!/usr/bin/python3
"""Writes the seed inputs of the fuzz targets into OUT (a directory under build-fuzz/).

    fuzz/make_seeds.py OUT [--corpora DIR] [--quick N]

OUT/engine_packet/    IP packets extracted from the raw-IP captures of shared/corpora/pcaps
                      (the tcpdump-ip packets are read in place by scripts/fuzz)
OUT/engine_sequence/  operation sequences (fuzz_engine_sequence.c): hand-made TCP sessions
                      (direct and SOCKS5, v4 and v6, refusals, errors, backpressure, network
                      events, UDP) and every raw-IP capture replayed as packets and clock steps
OUT/socks5/           proxy replies (fuzz_socks5.c): every reply shape, failures, UDP headers
OUT/dns/              DNS queries and state files (fuzz_dns.c): every qtype the responder
                      knows, EDNS, compression pointers, hostile names
OUT/dns_tcp/          DNS-over-TCP sessions (fuzz_dnstcp.c): pipelined and split queries,
                      forwarded ones through a SOCKS5 proxy with framed answers, bad framing
OUT/scenario/         scenarios: harness/scenarios/*.scn, the examples of docs/*.md and the
                      scenario texts of harness/test_sim_*.py
OUT/scenario.dict     the scenario language's words (from the parser's string literals)
OUT/TARGET-quick/     with --quick N: a fixed sample of at most N seeds of each target (with the
                      tcpdump-ip packets for the engine targets), for short runs
Nothing is written into the repository; the shared corpora are only read.
"""
import argparse
import hashlib
import os
import re
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Opcodes of fuzz_engine_sequence.c
OP_RAW, OP_TCP, OP_ADVANCE, OP_OPENED, OP_RECV, OP_RECV_PATTERN, OP_EOF, OP_ERROR, \
    OP_WRITABLE, OP_SOCKS5_OK, OP_WRITE_CAP, OP_FAIL_OPEN, OP_NET_EVENT, OP_RESET_ALL, \
    OP_DGRAM_RECV, OP_DGRAM_ERROR, OP_UDP, OP_WOULDBLOCK, OP_FAIL_WRITE = range(19)
UNIT_US, UNIT_MS, UNIT_10MS, UNIT_100MS, UNIT_S = range(5)
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def write(dirpath, data, name=None):
    os.makedirs(dirpath, exist_ok=True)
    name = name or hashlib.sha1(data).hexdigest()
    with open(os.path.join(dirpath, name), "wb") as f:
        f.write(data)


def pcap_packets(path):
    """Yields (seconds, packet) of a classic pcap file with LINKTYPE_RAW (101)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        return
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    if linktype not in (101, 228, 229, 12, 14):
        return
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        pkt = data[off:off + incl]
        off += incl
        if len(pkt) < incl:
            break
        yield sec + frac / (1e9 if nano else 1e6), pkt


def config(flags=0, flows=15, pending=7, mtu=0, bufs=0, tcp=5, net=0, cap=0):
    return bytes([flags, flows, pending, mtu, bufs, tcp, net, cap])


def tcp(tup, flags, seqmode=0, ackmode=0, delta=0, wnd=65535, opts=0, oparam=171,
        payload=b"", pattern_len=None, seq=None, ack=None):
    sel = tup | (seqmode << 3) | (ackmode << 5) | (0x80 if pattern_len is not None else 0)
    b = bytes([OP_TCP, sel, flags]) + struct.pack(">HHBB", delta, wnd, opts, oparam)
    if seqmode == 3:
        b += struct.pack(">I", seq or 0)
    if ackmode == 3:
        b += struct.pack(">I", ack or 0)
    if opts & 0x40:
        b += struct.pack(">I", 0)
    if pattern_len is not None:
        b += struct.pack(">H", pattern_len)
    else:
        b += bytes([len(payload)]) + payload
    return b


def advance(unit, amount):
    return bytes([OP_ADVANCE, unit]) + struct.pack(">H", amount)


def opened(idx=0, err=0):
    return bytes([OP_OPENED, idx, err])


def recv(idx, data):
    return bytes([OP_RECV, idx, len(data)]) + data


def recv_pattern(idx, n):
    return bytes([OP_RECV_PATTERN, idx]) + struct.pack(">H", n)


def net_event(etype, ifindex, fl, route):
    return bytes([OP_NET_EVENT, etype, ifindex, fl, route])


def session(cfg_flags, tup, extra_mid=b"", refuse=False, upstream_error=False,
            write_cap=None, client_rst=False):
    """A whole TCP session: handshake, request, response, both FINs, TIME-WAIT."""
    socks = cfg_flags & 0x01
    b = config(flags=cfg_flags, cap=write_cap or 0)
    b += tcp(tup, SYN, ackmode=3, ack=0, opts=0x0f, oparam=171)
    if refuse:
        return b + opened(0, 0x80) + advance(UNIT_S, 3)
    b += opened(0, 0)
    if socks:
        b += bytes([OP_SOCKS5_OK, 0])
    b += tcp(tup, ACK, opts=0x08)
    b += tcp(tup, ACK | PSH, opts=0x08, payload=b"GET / HTTP/1.0\r\n\r\n")
    if write_cap:
        b += bytes([OP_WRITABLE, 0, OP_WRITE_CAP]) + struct.pack(">H", 65535)
        b += bytes([OP_WRITABLE, 0])
    b += recv_pattern(0, 3000) + advance(UNIT_MS, 50)
    b += tcp(tup, ACK, opts=0x08 | 0x10)  # one SACK block
    b += tcp(tup, ACK, opts=0x08)
    b += extra_mid
    if upstream_error:
        return b + bytes([OP_ERROR, 0, 1]) + advance(UNIT_S, 1) + tcp(tup, ACK)
    if client_rst:
        return b + tcp(tup, RST | ACK) + advance(UNIT_S, 1)
    b += recv(0, b"HTTP/1.0 200 OK\r\n\r\nhello") + bytes([OP_EOF, 0])
    b += advance(UNIT_MS, 10) + tcp(tup, ACK)
    b += tcp(tup, FIN | ACK) + advance(UNIT_MS, 200) + tcp(tup, ACK)
    b += advance(UNIT_S, 5)
    return b


def engine_sequence_seeds(out, rawip):
    d = os.path.join(out, "engine_sequence")
    for flags in (0x00, 0x01, 0x03, 0x05, 0x07, 0x21, 0x81, 0x11, 0x09):
        for tup in (0, 5):
            write(d, session(flags, tup))
    write(d, session(0x01, 0, refuse=True))
    write(d, session(0x09, 4, refuse=True))
    write(d, session(0x01, 1, upstream_error=True))
    write(d, session(0x00, 2, upstream_error=True))
    write(d, session(0x01, 3, write_cap=3))
    write(d, session(0x00, 6, client_rst=True))
    write(d, session(0x01, 0, extra_mid=recv_pattern(0, 60000) + advance(UNIT_MS, 300)))
    # Out-of-order and old segments, a zero window, retransmissions.
    write(d, session(0x00, 0, extra_mid=tcp(0, ACK, seqmode=1, delta=100, payload=b"x" * 50)
                     + tcp(0, ACK, seqmode=2, delta=10, payload=b"y" * 10)
                     + tcp(0, ACK, wnd=0) + advance(UNIT_S, 2) + tcp(0, ACK)))
    # Network changes during a session (the monitor answers).
    for etype in range(1, 9):
        write(d, session(0x01, 0, extra_mid=net_event(etype, 1, 0x04 | (3 << 3), 2)
                         + advance(UNIT_S, 1)))
    write(d, session(0x01, 0, extra_mid=bytes([OP_RESET_ALL])))
    # Loss of the engine's data: duplicate ACKs with SACK blocks (fast retransmit, recovery),
    # then a partial and a full ACK.
    loss = recv_pattern(0, 12000)
    for _ in range(4):
        loss += tcp(0, ACK, ackmode=2, delta=1400, opts=0x08 | 0x10)
    loss += tcp(0, ACK, ackmode=1, delta=4000, opts=0x08) + advance(UNIT_MS, 300)
    loss += tcp(0, ACK, opts=0x08)
    write(d, session(0x00, 0, extra_mid=loss))
    write(d, session(0x01, 4, extra_mid=loss.replace(bytes([OP_TCP, 0]), bytes([OP_TCP, 4]))))
    # The upstream socket fails under a write (client data, then a SOCKS5 greeting).
    write(d, session(0x00, 1, extra_mid=bytes([OP_FAIL_WRITE]) + tcp(1, ACK | PSH, payload=b"more")))
    write(d, config(flags=0x01) + tcp(0, SYN, ackmode=3, ack=0) + bytes([OP_FAIL_WRITE])
          + opened(0, 0) + advance(UNIT_S, 1))
    # SYN floods against small caps, a failing connector.
    flood = config(flags=0x01, flows=3, pending=2)
    for t in range(8):
        flood += tcp(t, SYN, ackmode=3, ack=0)
    flood += bytes([OP_FAIL_OPEN]) + tcp(7, SYN, ackmode=3, ack=0) + advance(UNIT_S, 11)
    write(d, flood)
    # UDP datagrams (DNS) and ICMP echo through the engine.
    udp = config(flags=0x01)
    dns = bytes.fromhex("123401000001000000000000076578616d706c6504746573740000010001")
    for t in (0, 4):
        udp += bytes([OP_UDP, t | 0x08, len(dns)]) + dns
        udp += opened(0, 0) + bytes([OP_SOCKS5_OK, 0])
        udp += bytes([OP_DGRAM_RECV, 0, 10 + len(dns)]) + bytes([0, 0, 0, 1, 203, 0, 113, 10, 0, 53]) + dns
        udp += advance(UNIT_S, 70)
    write(d, udp)
    # Every raw-IP capture as packets with the recorded gaps (first 200 packets).
    for name in sorted(os.listdir(rawip)) if os.path.isdir(rawip) else []:
        for flags in (0x00, 0x01):
            b = config(flags=flags)
            prev = None
            for i, (ts, pkt) in enumerate(pcap_packets(os.path.join(rawip, name))):
                if i >= 200 or len(pkt) > 0x7fff:
                    break
                if prev is not None and ts > prev:
                    b += advance(UNIT_MS, min(int((ts - prev) * 1000), 65535))
                prev = ts
                b += bytes([OP_RAW]) + struct.pack(">H", len(pkt)) + pkt
                b += opened(0, 0) + (bytes([OP_SOCKS5_OK, 0]) if flags & 1 else b"")
            write(d, b)


def socks5_seeds(out):
    d = os.path.join(out, "socks5")
    v4 = bytes([5, 0, 0, 1, 192, 0, 2, 1, 0x04, 0x38])
    v6 = bytes([5, 0, 0, 4]) + bytes.fromhex("20010db8000000000000000000000001") + b"\x04\x38"
    dom = bytes([5, 0, 0, 3, 9]) + b"proxy.lan" + b"\x04\x38"
    for sel in (0x00, 0x08, 0x10, 0x18, 0x20, 0x40):
        for reply in (v4, v6, dom):
            write(d, bytes([sel, 3]) + b"\x05\x00" + reply + b"data after the reply")
    for sel in (0x02, 0x06, 0x82, 0x22):
        write(d, bytes([sel, 5]) + b"\x05\x02\x01\x00" + v4)
        write(d, bytes([sel, 5]) + b"\x05\x02\x01\x01")
        write(d, bytes([sel, 5]) + b"\x05\x00" + v6)
        write(d, bytes([sel, 5]) + b"\x05\x02\x05\x00" + v4)
    for sel in (0x01, 0x03, 0x05, 0x19, 0x21):
        write(d, bytes([sel, 7]) + b"\x05\x00" + bytes([5, 0, 0, 1, 0, 0, 0, 0, 0x9c, 0x40]))
        write(d, bytes([sel, 7]) + b"\x05\x00" + v6 + b"trailing")
        write(d, bytes([sel, 7]) + b"\x05\x00" + dom)
    for rep in range(1, 10):
        write(d, bytes([0x20, 1]) + b"\x05\x00" + bytes([5, rep, 0, 1, 0, 0, 0, 0, 0, 0]))
    for bad in (b"\x05\xff", b"\x04\x00", b"\x05\x01", b"\x05\x00\x05\x00\x01\x01",
                b"\x05\x00\x05\x00\x00\x07", b"\x05\x00\x05\x00\x00\x03\x00\x00\x00",
                b"", b"\x05"):
        write(d, bytes([0x20, 2]) + bad)
    # UDP request headers (the same bytes also go through the UDP decoders).
    for hdr in (bytes([0, 0, 0, 1, 203, 0, 113, 5, 0, 53]) + b"payload",
                bytes([0, 0, 0, 4]) + bytes(15) + b"\x01\x00\x35" + b"payload",
                bytes([0, 0, 0, 3, 4]) + b"test" + b"\x00\x35" + b"payload",
                bytes([0, 0, 1, 1, 1, 2, 3, 4, 0, 53]), bytes([0, 1, 0, 1, 1, 2, 3, 4, 0, 53])):
        write(d, bytes([0x00, 1]) + hdr)
        write(d, hdr)


def dns_name(name):
    b = b""
    for label in name.strip(".").split("."):
        if label:
            b += bytes([len(label)]) + label.encode()
    return b + b"\0"


def dns_query(name, qtype, qclass=1, edns=None, flags=0x0100, extra=b""):
    """A query (fuzz_dns.c's message); edns = (UDP size, version) adds an OPT record."""
    ar = 1 if edns else 0
    b = struct.pack(">HHHHHH", 0x1234, flags, 1, 0, 0, ar) + dns_name(name)
    b += struct.pack(">HH", qtype, qclass)
    if edns:
        b += b"\0" + struct.pack(">HHIH", 41, edns[0], edns[1] << 16, len(extra)) + extra
    return b


def dns_seeds(out):
    d = os.path.join(out, "dns")
    names = ("www.example.com", "WWW.Example.COM", "a", "corp.example", "x.corp.example",
             "5.0.19.198.in-addr.arpa", "1.0.19.198.in-addr.arpa", "8.8.8.8.in-addr.arpa",
             "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.1.0.0.0.0.d.f.ip6.arpa", ".")
    for sel in (0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x19):
        for name in names:
            for qtype in (1, 28, 65, 64, 12, 15, 16, 255):
                write(d, bytes([sel]) + dns_query(name, qtype))
        write(d, bytes([sel]) + dns_query("www.example.com", 1, edns=(1232, 0)))
        write(d, bytes([sel]) + dns_query("www.example.com", 28, edns=(4096, 1)))
        write(d, bytes([sel]) + dns_query("www.example.com", 1, edns=(512, 0),
                                          extra=b"\x00\x0a\x00\x08" + bytes(8)))
        write(d, bytes([sel]) + dns_query("version.bind", 16, qclass=3))
        write(d, bytes([sel]) + dns_query("www.example.com", 1, flags=0x2800))
        write(d, bytes([sel]) + dns_query("www.example.com", 1, flags=0x8180))
    # Compression pointers (backward, forward, to themselves) and reserved label types.
    hdr = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0)
    for name in (b"\xc0\x0c", b"\x01a\xc0\x0c", b"\x01a\xc0\x0e", b"\x41a\x00",
                 b"\x81a\x00", b"\x3fa\x00", b"\x01a" * 130 + b"\x00"):
        write(d, b"\x00" + hdr + name + b"\x00\x01\x00\x01")
    write(d, b"\x00" + hdr)
    write(d, b"\x00" + b"tun2sock-fakedns 1\nnext 3\n198.19.0.1 fd00:19::1 a.example\n"
          b"198.19.0.2 fd00:19::2 b.example\n- fd00:19::3 c.example\n")
    write(d, b"\x02" + b"tun2sock-fakedns 1\n198.19.0.4 - v4only.example\n")


def scenario_seeds(out):
    d = os.path.join(out, "scenario")
    sdir = os.path.join(ROOT, "harness", "scenarios")
    if os.path.isdir(sdir):
        for name in sorted(os.listdir(sdir)):
            if name.endswith(".scn"):
                with open(os.path.join(sdir, name), "rb") as f:
                    write(d, f.read())
    for doc in ("docs/scenarios.md", "docs/simulator.md"):
        path = os.path.join(ROOT, doc)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                for block in re.findall(r"```[a-z]*\n(.*?)```", f.read(), re.S):
                    write(d, block.encode())
    hdir = os.path.join(ROOT, "harness")
    for name in sorted(os.listdir(hdir)):
        if name.startswith("test_sim") and name.endswith(".py"):
            with open(os.path.join(hdir, name), encoding="utf-8", errors="replace") as f:
                for s in re.findall(r'"""(.*?)"""', f.read(), re.S):
                    if re.search(r"^\s*(at|upstream|expect|seed|device|proxy|run)\b", s, re.M):
                        write(d, s.encode())
    # The dictionary: every word the parser compares against.
    words = set()
    for name in sorted(os.listdir(os.path.join(ROOT, "sim"))):
        if name.endswith(".c"):
            with open(os.path.join(ROOT, "sim", name), encoding="utf-8", errors="replace") as f:
                src = f.read()
            words.update(re.findall(r'is\(p, [^,]+, "([^"]+)"\)', src))
            words.update(re.findall(r'strcmp\([^,]+, "([^"]+)"\)', src))
    words.update(["1ms", "10s", "1.5s", "500ms + 50ms", "64KB", "1MB", "2%", "0.5%", "==", "!=",
                  ">=", "<=", "203.0.113.1:80", "[2001:db8::1]:443", "192.0.2.1", "2001:db8::1",
                  "\"text\\x41\"", "#", "\n"])
    with open(os.path.join(out, "scenario.dict"), "w") as f:
        for w in sorted(words):
            if w.startswith("-"):
                continue
            esc = w.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\x0a")
            f.write('"%s"\n' % esc)


def rec_header(seed=1, proxy=0, user=None):
    """The header of a flight recording (docs/recording.md, version 1) with the engine's
    default options."""
    def s(x):
        if x is None:
            return struct.pack("<H", 0xffff)
        return struct.pack("<H", len(x)) + x
    addr0 = bytes(19)
    proxy_addr = bytes([4, 192, 0, 2, 1]) + bytes(12) + struct.pack("<H", 1080) if proxy else addr0
    cfg = struct.pack("<QIB", seed, 1500, proxy) + proxy_addr + s(user) + s(user)
    cfg += struct.pack("<I", 0) + bytes(16) + addr0 + struct.pack("<I", 0)
    cfg += struct.pack("<BQIIIIQIQQQIBBBQIB", 0, 10 * 10**9, 262144, 262144, 16384, 1024,
                       2 * 10**9, 12, 0, 60 * 10**9, 10 * 10**9, 4096, 1, 0, 0, 500 * 10**6, 0, 0)
    cfg += addr0 + struct.pack("<Q", 512 << 20)
    body = b""
    for tag, val in ((1, s(b"make_seeds")), (2, s(b"")), (3, cfg)):
        body += struct.pack("<HI", tag, len(val)) + val
    return b"T2SREC\r\n" + struct.pack("<III", 1, 0, len(body)) + body


def rec_record(kind, now, body=b""):
    return struct.pack("<BIQ", kind, len(body), now) + body


def recording_seeds(out, rawip):
    """Recordings: inputs (packets from the corpora, completions, events, timers) with and
    without the outputs a replay expects; the replay tells them apart."""
    d = os.path.join(out, "recording")
    pkts = []
    if os.path.isdir(rawip):
        for name in sorted(os.listdir(rawip))[:20]:
            for _ts, pkt in pcap_packets(os.path.join(rawip, name)):
                if 0 < len(pkt) <= 1500:
                    pkts.append(pkt)
                if len(pkts) % 20 == 19:
                    break
    ms = 10**6
    for i in range(0, max(1, len(pkts)), 4):
        for proxy in (0, 1):
            f = rec_header(seed=i + 1, proxy=proxy, user=b"u" if proxy and i % 8 == 0 else None)
            f += rec_record(34, 0, struct.pack("<II", 1500, 0))  # dev_caps at engine_new
            now = ms
            for pkt in pkts[i:i + 4]:
                f += rec_record(1, now, struct.pack("<I", 0) + pkt)
                f += rec_record(32, now, struct.pack("<q", 0))
                now += ms
            f += rec_record(3, now, struct.pack("<Qi", 1, 0))
            f += rec_record(4, now, struct.pack("<Q", 1) + bytes([5, 0]))
            f += rec_record(10, now, bytes([5]) + bytes(4) + b"up1".ljust(16, b"\0") +
                            bytes([4]) + bytes(19) + bytes(3) + bytes(8))
            f += rec_record(2, now + 600 * ms)
            f += rec_record(32, now + 600 * ms, struct.pack("<q", 0))
            f += rec_record(12, now + 700 * ms)
            f += rec_record(68, now + 700 * ms, struct.pack("<I", 0))
            write(d, f)


# Opcodes of fuzz_dnstcp.c
(DT_SYN, DT_DATA, DT_QUERY, DT_FIN, DT_RST, DT_ACK, DT_ADVANCE, DT_OPENED, DT_SOCKS5, DT_RECV,
 DT_ANSWER, DT_EOF, DT_ERROR, DT_WRITABLE, DT_WRITE_CAP, DT_RESET_ALL) = range(16)


def dns_tcp_seeds(out):
    d = os.path.join(out, "dns_tcp")
    for flags in (0x00, 0x01, 0x03, 0x09, 0x0d):  # direct, SOCKS5, + hijack, small buffers
        for t in (0, 5):
            syn = bytes([DT_SYN, t, DT_ACK, t])
            # A, AAAA, HTTPS answered here; one split in the middle of its length.
            local = bytes([DT_QUERY, t, 0x10, 1, 0, DT_QUERY, t, 0x21, 2, 1,
                           DT_QUERY, t, 0x32, 3, 9])
            # MX forwarded: the stream opens, SOCKS5 (when a proxy), the framed answer.
            fwd = bytes([DT_QUERY, t, 0x44, 4, 30, DT_OPENED, 0, 0])
            if flags & 1:
                fwd += bytes([DT_SOCKS5, 0])
            fwd += bytes([DT_ANSWER, 0, 40, DT_QUERY, t, 0x55, 5, 0, DT_ANSWER, 0, 8])
            close = bytes([DT_FIN, t, DT_ADVANCE]) + struct.pack(">H", 100) + bytes([DT_ACK, t])
            cfg = bytes([flags, 8, 0x09, 4])
            write(d, cfg + syn + local + close)
            write(d, cfg + syn + local + fwd + close)
            write(d, cfg + syn + fwd + bytes([DT_EOF, 0]) + local + close)
            write(d, cfg + syn + fwd + bytes([DT_ERROR, 0, 3]) + close)
            write(d, cfg + syn + bytes([DT_DATA, t, 4, 0, 5, 1, 2]) + close)      # too short
            write(d, cfg + syn + bytes([DT_DATA, t, 2, 0xff, 0xff]) + close)      # too long
            write(d, cfg + syn + bytes([DT_DATA, t, 3, 0, 40, 1, DT_FIN, t]))     # cut by FIN
            write(d, cfg + syn + local + bytes([DT_ADVANCE]) + struct.pack(">H", 30000) +
                  bytes([DT_ACK, t, DT_ADVANCE]) + struct.pack(">H", 30000))   # idle close
            write(d, cfg + syn + fwd + bytes([DT_RESET_ALL]) + local + close)


def quick_sample(out, target, extra_dirs, n):
    """OUT/TARGET-quick: a fixed sample of at most n seeds of the target's directories."""
    files = []
    for d in [os.path.join(out, target)] + extra_dirs:
        if os.path.isdir(d):
            files += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    q = os.path.join(out, target + "-quick")
    shutil.rmtree(q, ignore_errors=True)
    os.makedirs(q)
    step = max(1, len(files) // n) if n else 1
    for f in files[::step][:n]:
        shutil.copyfile(f, os.path.join(q, os.path.basename(f)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--corpora", default=os.path.join(ROOT, "..", "shared", "corpora"))
    ap.add_argument("--quick", type=int, default=0)
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    rel = os.path.relpath(out, ROOT)
    if not rel.startswith("..") and not rel.split(os.sep)[0].startswith("build"):
        sys.exit("make_seeds: OUT must be under a build directory, not in the repository")
    rawip = os.path.join(a.corpora, "pcaps", "rawip")
    tcpdump = os.path.join(a.corpora, "fuzz-seeds", "tcpdump-ip")
    for t in ("engine_packet", "engine_sequence", "socks5", "scenario", "dns", "dns_tcp",
              "recording"):
        shutil.rmtree(os.path.join(out, t), ignore_errors=True)
        os.makedirs(os.path.join(out, t))
    if os.path.isdir(rawip):
        for name in sorted(os.listdir(rawip)):
            for _ts, pkt in pcap_packets(os.path.join(rawip, name)):
                if 0 < len(pkt) <= 65535:
                    write(os.path.join(out, "engine_packet"), pkt)
    engine_sequence_seeds(out, rawip)
    socks5_seeds(out)
    scenario_seeds(out)
    dns_seeds(out)
    dns_tcp_seeds(out)
    recording_seeds(out, rawip)
    if a.quick:
        quick_sample(out, "engine_packet", [tcpdump], a.quick)
        # Single packets as sequences: the config, then one raw packet.
        seq_extra = os.path.join(out, "engine_sequence-pkts")
        shutil.rmtree(seq_extra, ignore_errors=True)
        if os.path.isdir(tcpdump):
            names = sorted(os.listdir(tcpdump))
            for name in names[::max(1, len(names) // 50)]:
                with open(os.path.join(tcpdump, name), "rb") as f:
                    pkt = f.read()[:0x7fff]
                write(seq_extra, config(flags=1) + bytes([OP_RAW]) +
                      struct.pack(">H", len(pkt)) + pkt)
        quick_sample(out, "engine_sequence", [seq_extra], a.quick)
        quick_sample(out, "socks5", [], a.quick)
        quick_sample(out, "scenario", [], a.quick)
        quick_sample(out, "dns", [], a.quick)
        quick_sample(out, "dns_tcp", [], a.quick)
        quick_sample(out, "recording", [], a.quick)
    for t in ("engine_packet", "engine_sequence", "socks5", "scenario", "dns", "dns_tcp",
              "recording"):
        n = len(os.listdir(os.path.join(out, t)))
        print("make_seeds: %s: %d seeds in %s" % (t, n, os.path.join(out, t)))


if __name__ == "__main__":
    main()
