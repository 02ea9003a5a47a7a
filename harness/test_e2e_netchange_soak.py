"""The network-change soak (issue 19): mixed load through tun2sock while the default route flips
between two uplinks every few seconds, for minutes. Not part of scripts/test: it runs only when
T2S_NETCHANGE_SOAK_MINUTES is set, which `scripts/soak --netchange` does (docs/testing.md).

    T2S_NETCHANGE_SOAK_MINUTES   how long the load runs (the soak: 10 or more)
    T2S_NETCHANGE_SOAK_FLIP_S    seconds between two flips (default 20)

The world is test_e2e_netchange.py's (up1/up2 to a server namespace with dante and the origin),
plus a file origin (16 MiB of random bytes, port 8081) and a DNS responder (192.0.2.53, UDP)
in the server namespace; dante relays UDP too. One load process in the client namespace runs:

  bulk    downloads of the 16 MiB file, each complete one checked by SHA-256 (a flip may reset
          one: counted as reset, not as wrong)
  paced   the paced 64 MiB download of 'x' (test_e2e_netchange.py), every byte checked; a flip
          resets it (that is the point) and it starts again
  dns     a query every 50 ms over UDP, the answer checked (id, name, address); a query lost
          in a flip is a timeout, not a wrong answer
  short   a short HTTP request every 50 ms, the body checked

While it runs, `ip route replace default` flips up1 <-> up2 every FLIP_S seconds; each flip must
raise tun2sock_network_changes_total by exactly one. Afterwards: no wrong byte, no wrong DNS
answer, every kind of load made progress after the last flip, tun2sock's open file descriptors
back to their value before the load, and the engine's memory_peak_bytes, memory_bytes and RSS
reported (RSS bounded by T2S_NETCHANGE_SOAK_MAX_RSS_MB, default 512).
"""
import json
import os
import subprocess
import time

import pytest

from test_bin_util import (DANTE_ALL_COMMANDS, E2E_ORIGIN_PY, PYTHON, proc_fd_count,
                           proc_rss_kb, start_dante, tun2sock_stats, wait_for, write_random)
from test_e2e_netchange import GW1, GW2, ORIGIN, PROXY, SOCKS_PORT, World

pytestmark = [pytest.mark.root]

MINUTES = float(os.environ.get("T2S_NETCHANGE_SOAK_MINUTES", "0") or 0)
FLIP_S = float(os.environ.get("T2S_NETCHANGE_SOAK_FLIP_S", "20"))
MAX_RSS_MB = int(os.environ.get("T2S_NETCHANGE_SOAK_MAX_RSS_MB", "512"))
DNS_SERVER = "192.0.2.53"
DNS_ANSWER = "198.51.100.200"
FILE_PORT = 8081
BLOB = 16 << 20

DNS_PY = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
ans = socket.inet_aton(sys.argv[2])
while True:
    q, peer = s.recvfrom(2048)
    if len(q) < 12:
        continue
    end = q.index(0, 12) + 5  # the question: name, type, class
    hdr = q[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
    rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + ans
    s.sendto(hdr + q[12:end] + rr, peer)
"""

LOAD_PY = r"""
import hashlib, http.client, json, random, socket, struct, sys, threading, time
origin, blob_sha, dns_server, dns_answer, seconds = sys.argv[1:6]
deadline = time.monotonic() + float(seconds)
st = {k: 0 for k in ("bulk_ok", "bulk_reset", "bulk_wrong", "paced_bytes", "paced_reset",
                     "paced_wrong", "dns_ok", "dns_timeout", "dns_wrong", "short_ok",
                     "short_fail", "short_wrong")}
last = {}
lock = threading.Lock()
def count(k, n=1):
    with lock:
        st[k] += n
        last[k] = time.time()

def bulk():
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(origin, 8081, timeout=10)
            c.request("GET", "/blob")
            r = c.getresponse()
            h, n = hashlib.sha256(), 0
            while True:
                b = r.read(1 << 16)
                if not b:
                    break
                h.update(b); n += len(b)
            c.close()
            if r.status == 200 and n == int(r.getheader("Content-Length")):
                count("bulk_ok" if h.hexdigest() == blob_sha else "bulk_wrong")
            else:
                count("bulk_reset")
        except (OSError, http.client.HTTPException):
            count("bulk_reset"); time.sleep(0.1)

def paced():
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(origin, 8080, timeout=10)
            c.request("GET", "/slow")
            r = c.getresponse()
            while time.monotonic() < deadline:
                b = r.read(1 << 15)
                if not b:
                    break
                if b.count(b"x") != len(b):
                    count("paced_wrong")
                count("paced_bytes", len(b))
            c.close()
        except (OSError, http.client.HTTPException):
            count("paced_reset"); time.sleep(0.1)

def dns():
    i = 0
    while time.monotonic() < deadline:
        i += 1
        qid = i & 0xFFFF
        name = f"soak-{i}.example"
        q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
        q += struct.pack("!HH", 1, 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1.0)
        try:
            s.sendto(q, (dns_server, 53))
            a, _ = s.recvfrom(2048)
            ok = (a[:2] == q[:2] and a[12:len(q)] == q[12:] and
                  a[-4:] == socket.inet_aton(dns_answer))
            count("dns_ok" if ok else "dns_wrong")
        except OSError:
            count("dns_timeout")
        finally:
            s.close()
        time.sleep(0.05)

def short():
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(origin, 8080, timeout=3)
            c.request("GET", "/hello.txt")
            body = c.getresponse().read()
            c.close()
            count("short_ok" if body == b"hello after the change\n" else "short_wrong")
        except (OSError, http.client.HTTPException):
            count("short_fail")
        time.sleep(0.05)

ts = [threading.Thread(target=f, daemon=True) for f in (bulk, bulk, paced, dns, short)]
for t in ts:
    t.start()
while time.monotonic() < deadline:
    time.sleep(1)
    with lock:
        print(json.dumps({"t": time.time(), **st}), flush=True)
for t in ts:
    t.join(timeout=15)
with lock:
    print(json.dumps({"t": time.time(), "final": True, "last": last, **st}), flush=True)
"""


@pytest.mark.skipif(MINUTES <= 0, reason="the soak: scripts/soak --netchange")
def test_netchange_soak(tmp_path, tun2sock_bin):
    w = World(tmp_path, tun2sock_bin)
    w.procs = []
    try:
        _soak(w, tmp_path)
    finally:
        w.close()


def _soak(w: World, tmp):
    # dante again, relaying UDP too; the file origin and the DNS responder.
    w.dante.stop()
    w.dante = start_dante(w.s, tmp, [PROXY], SOCKS_PORT, external="lo",
                          commands=DANTE_ALL_COMMANDS)
    www = tmp / "www"
    www.mkdir()
    sha = write_random(www / "blob", BLOB)
    (tmp / "files.py").write_text(E2E_ORIGIN_PY)
    w.s.start([PYTHON, str(tmp / "files.py"), str(www), str(FILE_PORT)], tmp / "files.log")
    w.s.ip("addr", "add", f"{DNS_SERVER}/32", "dev", "lo")
    (tmp / "dns.py").write_text(DNS_PY)
    w.s.start([PYTHON, str(tmp / "dns.py"), DNS_SERVER, DNS_ANSWER], tmp / "dns.log")
    t = w.start("--network-debounce", "200ms", "--dns-timeout", "2s", "--udp-timeout", "5s",
                "--log-level", "info")
    w.c.ip("route", "add", f"{DNS_SERVER}/32", "dev", "t2s0")
    wait_for(lambda: w.new_curl_ok(), "a first request through the tunnel", proc=t)
    pid = t.pid
    fd0 = proc_fd_count(pid)
    rss0 = proc_rss_kb(pid)
    seconds = MINUTES * 60
    (tmp / "load.py").write_text(LOAD_PY)
    load_log = tmp / "load.jsonl"
    load = w.c.start([PYTHON, str(tmp / "load.py"), ORIGIN, sha, DNS_SERVER, DNS_ANSWER,
                      str(seconds)], load_log)
    start = time.monotonic()
    flips, miscounted, last_flip_wall = 0, [], time.time()
    dev = "up1"
    rss_max = rss0
    # Bounded: one flip per FLIP_S until the load's time is over.
    while time.monotonic() - start + FLIP_S < seconds:
        time.sleep(FLIP_S)
        assert t.alive(), t.output()[-3000:]
        rss_max = max(rss_max, proc_rss_kb(pid))
        before = w.metric("tun2sock_network_changes_total")
        dev = "up2" if dev == "up1" else "up1"
        w.c.ip("route", "replace", "default", "via", GW2 if dev == "up2" else GW1, "dev", dev)
        flips += 1
        last_flip_wall = time.time()
        try:
            wait_for(lambda: w.metric("tun2sock_network_changes_total") >= before + 1,
                     f"flip {flips} counted", timeout=3, proc=t)
        except AssertionError:
            pass
        time.sleep(0.5)
        after = w.metric("tun2sock_network_changes_total")
        if after != before + 1:
            miscounted.append((flips, before, after))
    load.p.wait(timeout=seconds + 60)
    lines = [json.loads(x) for x in load_log.read_text().splitlines() if x.startswith("{")]
    final = lines[-1]
    assert final.get("final"), load_log.read_text()[-2000:]
    # Every flow closes; UDP sessions time out (--udp-timeout 5s, --dns-timeout 2s).
    fd_end = proc_fd_count(pid)
    for _ in range(200):  # up to 20 s
        if fd_end <= fd0:
            break
        time.sleep(0.1)
        fd_end = proc_fd_count(pid)
    stats = tun2sock_stats(w.c, "127.0.0.1:9472")
    rss_end = proc_rss_kb(pid)
    rss_max = max(rss_max, rss_end)
    changes = w.metric("tun2sock_network_changes_total")
    report = {
        "minutes": MINUTES, "flip_every_s": FLIP_S, "flips": flips,
        "network_changes_total": changes, "miscounted_flips": miscounted,
        "flows_reset_total": w.metric("tun2sock_flows_reset_total"),
        "fds_before_load": fd0, "fds_after_load": fd_end,
        "rss_kb_start": rss0, "rss_kb_max_sampled": rss_max, "rss_kb_end": rss_end,
        "memory_peak_bytes": stats.get("memory_peak_bytes"),
        "memory_bytes_end": stats.get("memory_bytes"),
        **{k: v for k, v in final.items() if k not in ("t", "final", "last")},
    }
    print("\nnetchange soak: " + json.dumps(report, indent=1))
    (tmp / "report.json").write_text(json.dumps(report, indent=1))
    assert not miscounted, f"flips not counted exactly once: {miscounted}"
    assert changes == flips, report
    for k in ("bulk_wrong", "paced_wrong", "dns_wrong", "short_wrong"):
        assert final[k] == 0, report
    for k in ("bulk_ok", "paced_bytes", "dns_ok", "short_ok"):
        assert final[k] > 0, report
    assert final["paced_reset"] >= flips // 2, report  # the paced download is reset by flips
    # Progress after the last flip: each kind of load worked on the last uplink.
    for k in ("bulk_ok", "dns_ok", "short_ok"):
        assert final["last"].get(k, 0) > last_flip_wall, (k, report)
    assert fd_end <= fd0, report
    assert rss_end <= MAX_RSS_MB * 1024, report
