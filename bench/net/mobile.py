#!/usr/bin/python3
"""The memory preset under load (issue 17): N busy TCP flows through tun2sock and dante, each
with more data offered in both directions than its far end reads, so every buffer on the path
fills (tun2sock's toward each client and from it, up to --tcp-sndbuf / --tcp-rcvbuf, as far as
--memory-budget lets them grow). Reports tun2sock's peak RSS (VmHWM), its RSS over time, the
engine's heap from /stats (memory_bytes, memory_peak_bytes, memory_refused) against the budget,
the bytes that moved, and whether new flows still connect and carry data while the others hold
the budget.

    sudo bench/net/mobile.py [--binary build/tun2sock] [--flows 1000] [--seconds 40]
                             [--offer 16384] [--read 4096] [--json OUT] [-- TUN2SOCK OPTIONS]
    e.g. sudo bench/net/mobile.py -- --memory-preset mobile

World (harness/test_bin_util.py): client ns (tun2sock on t2s0, the load) and server ns (dante on
203.0.113.2:1080, the busy server on 192.0.2.80:9000) joined by a veth pair. Every flow: the
client and the server each send up to --offer bytes a second and read at most --read bytes a
second, with small receive buffers (8 KiB asked) so the kernels hold little and tun2sock the
rest. Everything started is stopped by PID and both namespaces are deleted on any exit.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "harness"))
from test_bin_util import (Netns, listening, start_dante, start_tun2sock,  # noqa: E402
                           tun2sock_stats, veth, wait_for)

ORIGIN, PORT, PROXY, METRICS = "192.0.2.80", 9000, "203.0.113.2", "127.0.0.1:9109"

# Both ends: every TICK s each socket sends up to OFFER*TICK bytes (non-blocking, what fits) and
# reads up to READ*TICK bytes. SO_RCVBUF small so the kernel holds little of the backlog.
PUMP = r"""
import json, resource, selectors, socket, sys, time
TICK = 0.25
def pump(socks, offer, read, seconds, report):
    payload = b"b" * int(offer * TICK)
    sent = got = 0
    end = time.monotonic() + seconds
    nxt = time.monotonic()
    while time.monotonic() < end:
        for s in list(socks):
            try:
                sent += s.send(payload)
            except BlockingIOError:
                pass
            except OSError:
                socks.remove(s); continue
            try:
                d = s.recv(int(read * TICK))
                if not d:
                    socks.remove(s)
                got += len(d)
            except BlockingIOError:
                pass
            except OSError:
                socks.remove(s)
        nxt += TICK
        time.sleep(max(0.0, nxt - time.monotonic()))
        if report:
            report(sent, got, len(socks))
    return sent, got
"""

SERVER = PUMP + r"""
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
ls.bind((sys.argv[1], int(sys.argv[2]))); ls.listen(4096); ls.setblocking(False)
resource.setrlimit(resource.RLIMIT_NOFILE, (16384, 16384))
offer, read = int(sys.argv[3]), int(sys.argv[4])
socks = []
payload = b"b" * int(offer * TICK)
while True:  # bounded by the bench, which stops this process by PID
    try:
        while True:
            c, _ = ls.accept(); c.setblocking(False); socks.append(c)
    except BlockingIOError:
        pass
    pump(socks, offer, read, TICK, None)
"""

CLIENT = PUMP + r"""
host, port, n, offer, read, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 256, n + 256))
socks = []
deadline = time.monotonic() + 60
for i in range(n):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s.settimeout(max(1.0, deadline - time.monotonic()))
    try:
        s.connect((host, port))
    except OSError:
        continue
    s.setblocking(False); socks.append(s)
print(json.dumps({"connected": len(socks)}), flush=True)
last = [0.0]
def report(sent, got, alive):
    if time.monotonic() - last[0] >= 1.0:
        last[0] = time.monotonic()
        print(json.dumps({"sent": sent, "got": got, "alive": alive}), flush=True)
sent, got = pump(socks, offer, read, seconds, report)
print(json.dumps({"done": True, "sent": sent, "got": got, "alive": len(socks)}), flush=True)
sys.stdin.read()
"""

# A new flow while the others hold the budget: connects, reads 1 byte of the server's data.
PROBE = r"""
import socket, sys, time
ok = 0
for i in range(int(sys.argv[3])):
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
        s.settimeout(5)
        if s.recv(1):
            ok += 1
        s.close()
    except OSError:
        pass
print(ok)
"""


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=str(ROOT / "build" / "tun2sock"))
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--offer", type=int, default=16384, help="bytes/s each end offers per flow")
    ap.add_argument("--read", type=int, default=4096, help="bytes/s each end reads per flow")
    ap.add_argument("--probes", type=int, default=5)
    ap.add_argument("--json", help="write the result here too")
    ap.add_argument("extra", nargs="*", help="tun2sock options (after --)")
    a = ap.parse_args()
    tmp = Path(subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip())
    c, s = Netns("mobc"), Netns("mobs")
    procs = []
    try:
        veth(c, "203.0.113.1/24", s, f"{PROXY}/24")
        s.ip("addr", "add", f"{ORIGIN}/32", "dev", "lo")
        procs.append(start_dante(s, tmp, [PROXY], 1080))
        srv = s.start(["/usr/bin/python3", "-c", SERVER, ORIGIN, str(PORT), str(a.offer),
                       str(a.read)], tmp / "server.log")
        procs.append(srv)
        wait_for(lambda: listening(s, PORT), "the busy server", proc=srv)
        t = start_tun2sock(c, Path(a.binary), tmp / "tun2sock.log",
                           ["--device", "t2s0", "--proxy", f"socks5://{PROXY}:1080", "--address",
                            "198.18.0.1/15", "--metrics", METRICS, "--log-level", "warn",
                            *a.extra])
        procs.append(t)
        c.ip("route", "add", "192.0.2.0/24", "dev", "t2s0")
        c.run("prlimit", f"--pid={t.pid}", "--nofile=16384")
        idle_kb = status_kb(t.pid, "VmRSS")
        cl = subprocess.Popen(c.cmd("/usr/bin/python3", "-c", CLIENT, ORIGIN, str(PORT),
                                    str(a.flows), str(a.offer), str(a.read), str(a.seconds)),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
        samples, last, probes = [], {}, None
        t0 = time.monotonic()
        try:
            first = json.loads(cl.stdout.readline() or "{}")
            connect_s = time.monotonic() - t0
            deadline = time.monotonic() + a.seconds + 30
            while time.monotonic() < deadline:
                line = cl.stdout.readline()
                if not line:
                    break
                last = json.loads(line)
                st = tun2sock_stats(c, METRICS)
                samples.append({"t": round(time.monotonic() - t0, 1),
                                "rss_kb": status_kb(t.pid, "VmRSS"),
                                "memory_bytes": st.get("memory_bytes"),
                                "memory_refused": st.get("memory_refused"),
                                "tcp_active": st.get("tcp_flows_active"),
                                "sent": last.get("sent"), "got": last.get("got")})
                print(json.dumps(samples[-1]), flush=True)
                if probes is None and time.monotonic() - t0 > a.seconds * 0.75:
                    r = c.run("/usr/bin/python3", "-c", PROBE, ORIGIN, str(PORT), str(a.probes),
                              check=False, timeout=60)
                    probes = int(r.stdout.strip() or 0)
                if last.get("done"):
                    break
            st = tun2sock_stats(c, METRICS)
            hwm_kb, rss_kb = status_kb(t.pid, "VmHWM"), status_kb(t.pid, "VmRSS")
        finally:
            cl.stdin.close()
            try:
                cl.wait(timeout=10)
            except subprocess.TimeoutExpired:
                cl.kill()
                cl.wait()
        res = {"binary": a.binary, "options": a.extra, "flows": a.flows,
               "connected": first.get("connected"), "connect_s": round(connect_s, 1),
               "seconds": a.seconds, "offer_Bps": a.offer, "read_Bps": a.read,
               "moved_up": last.get("sent"), "moved_down": last.get("got"),
               "alive_at_end": last.get("alive"),
               "idle_rss_kb": idle_kb, "rss_kb": rss_kb, "peak_rss_kb": hwm_kb,
               "memory_bytes": st.get("memory_bytes"),
               "memory_peak_bytes": st.get("memory_peak_bytes"),
               "memory_refused": st.get("memory_refused"),
               "new_flows_ok": f"{probes}/{a.probes}", "samples": samples}
        print(json.dumps({k: v for k, v in res.items() if k != "samples"}, indent=1))
        if a.json:
            Path(a.json).write_text(json.dumps(res, indent=1))
        return 0
    finally:
        for p in reversed(procs):
            p.stop()
        c.close()
        s.close()
        subprocess.run(["rm", "-rf", str(tmp)])


if __name__ == "__main__":
    sys.exit(main())
