"""Every network change, not only the first (issue 19): the real binary in real namespaces, each
kind of change repeated (A -> B -> A -> B) in ONE run of tun2sock.

The world is test_e2e_netchange.py's: a client namespace with two uplinks (up1 198.51.100.2 via
198.51.100.1, up2 203.0.113.2 via 203.0.113.1) to a server namespace holding dante (the proxy,
192.0.2.1) and a paced HTTP origin (192.0.2.80). For every change of each case:

  - a long download runs through the tunnel and its upstream socket is bound to the old
    uplink (`ss` shows LOCAL%DEV);
  - the change is made (ip route replace / change, NetworkManager's add-then-delete, a wg-quick
    policy rule, a multipath route losing a nexthop, link down/up, the link deleted and made
    again under a new index);
  - tun2sock_network_changes_total grows by exactly one;
  - the download's RST is seen on the TUN (tcpdump on t2s0, kernel timestamps) within
    --network-debounce + 50 ms of the last kernel event of the change (`ip -ts monitor` in the
    client namespace timestamps the events as rtnetlink delivers them);
  - a new connection works, and the next download's socket is bound to the new uplink.

Plus an rtnetlink overrun forced four times (tun2sock stopped with SIGSTOP while the default
route flips and a few hundred routes come and go, with a small receive buffer through
TUN2SOCK_TEST_MONITOR_RCVBUF): the monitor resynchronises from a dump, the flip is counted and
the download reset.

pytest -s prints every measured latency. Namespaces t2sb-<pid>-<n>-<tag> (test_bin_util.py),
every process stopped by its PID.
"""
import datetime
import os
import re
import signal
import subprocess
import time

import pytest

from test_bin_util import Netns, need, veth, wait_for
from test_e2e_netchange import GW1, GW2, ME1, PROXY, ORIGIN, HTTP_PORT, World

pytestmark = [pytest.mark.root]

DEBOUNCE_MS = 200
RST_SLACK_S = 0.050
REPEATS = 4


class Capture:
    """RSTs on the TUN (tcpdump -tt: kernel timestamps) and rtnetlink events (ip -ts monitor)."""

    RST_RE = re.compile(r"^(\d+\.\d+) IP (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[R")
    MON_RE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\]")

    def __init__(self, world: World):
        need("tcpdump")
        self.w = world
        self.rst_log = world.tmp / "rst.txt"
        self.mon_log = world.tmp / "ipmon.txt"
        world.c.start(["tcpdump", "-i", "t2s0", "-n", "-l", "-tt", "-U",
                       "tcp[tcpflags] & tcp-rst != 0"], self.rst_log)
        world.c.start(["ip", "-ts", "monitor", "link", "address", "route", "rule"], self.mon_log)
        wait_for(lambda: "listening on" in self.rst_log.read_text(errors="replace"),
                 "tcpdump on t2s0")

    def rsts(self, port: int):
        """Timestamps of the RSTs sent to the client's port (from the origin, i.e. by tun2sock)."""
        out = []
        for line in self.rst_log.read_text(errors="replace").splitlines():
            m = self.RST_RE.match(line)
            if m and m.group(2) == ORIGIN and int(m.group(3)) == HTTP_PORT and \
                    int(m.group(5)) == port:
                out.append(float(m.group(1)))
        return out

    def events(self):
        out = []
        for line in self.mon_log.read_text(errors="replace").splitlines():
            m = self.MON_RE.match(line)
            if m:
                out.append((datetime.datetime.fromisoformat(m.group(1)).timestamp(), line))
        return out


def client_port(world: World) -> int:
    out = world.c.run("ss", "-tnH", "state", "established", "dst", f"{ORIGIN}:{HTTP_PORT}",
                      check=False).stdout
    ports = re.findall(r"198\.18\.0\.1:(\d+)", out)
    assert len(ports) == 1, out
    return int(ports[0])


def route_dev(world: World) -> str:
    out = world.c.ip("route", "get", PROXY).stdout
    return re.search(r" dev (\S+)", out).group(1)


def start(world: World, *extra: str, env=None):
    world.start("--network-debounce", f"{DEBOUNCE_MS}ms", *extra, env=env)
    return Capture(world)


def one_change(world: World, cap: Capture, what: str, change, old_dev: str, new_dev: str):
    """A download through old_dev; change() (returns nothing); the checks in the module
    docstring. Returns the RST latency after the change's last kernel event, in seconds."""
    dl = world.download()
    assert world.upstream_devs() == [old_dev], f"{what}: {world.upstream_devs()}"
    port = client_port(world)
    before = world.metric("tun2sock_network_changes_total")
    t0 = time.time()
    change()
    t1 = time.time()
    try:
        dl.wait(timeout=DEBOUNCE_MS / 1000 + 3)
    except subprocess.TimeoutExpired:
        pass
    log = world.t.output()[-3000:]
    assert dl.poll() is not None and dl.returncode != 0, f"{what}: the download was not reset\n{log}"
    rst = wait_for(lambda: [t for t in cap.rsts(port) if t >= t0], f"{what}: the RST on t2s0",
                   timeout=2)[0]
    events = [t for t, _ in cap.events() if t0 - 0.005 <= t <= rst]
    assert events, f"{what}: no rtnetlink event between the change and the RST"
    latency = rst - events[-1]
    assert wait_for(world.new_curl_ok, f"{what}: a new connection", timeout=3, proc=world.t)
    after = world.metric("tun2sock_network_changes_total")
    print(f"{what}: {old_dev} -> {new_dev}: RST on t2s0 {latency * 1000:.0f} ms after the last "
          f"event ({(rst - t0) * 1000:.0f} ms after the change began, the change took "
          f"{(t1 - t0) * 1000:.0f} ms); network_changes_total {before:.0f} -> {after:.0f}")
    assert after == before + 1, f"{what}: network_changes_total {before} -> {after}\n{log}"
    assert latency <= DEBOUNCE_MS / 1000 + RST_SLACK_S, \
        f"{what}: the RST came {latency * 1000:.0f} ms after the last event"
    return latency


def final_dev(world: World, dev: str):
    """A new long download leaves through dev (its upstream socket is bound to it)."""
    dl = world.download()
    assert world.upstream_devs() == [dev], world.upstream_devs()
    os.killpg(dl.pid, 9)
    dl.wait(timeout=5)


def flips(world: World, cap: Capture, what: str, to_b, to_a, a="up1", b="up2"):
    """REPEATS changes, A -> B -> A -> B, each checked by one_change."""
    for i in range(REPEATS):
        forward = i % 2 == 0
        one_change(world, cap, f"{what} #{i + 1}", to_b if forward else to_a,
                   a if forward else b, b if forward else a)
    final_dev(world, a if REPEATS % 2 == 0 else b)
    assert world.metric("tun2sock_network_changes_total") == REPEATS


@pytest.fixture
def world(tmp_path, tun2sock_bin):
    w = World(tmp_path, tun2sock_bin)
    w.procs = []
    yield w
    w.close()


def test_route_replace_flips_are_each_a_change(world):
    cap = start(world)
    flips(world, cap, "ip route replace",
          lambda: world.c.ip("route", "replace", "default", "via", GW2, "dev", "up2"),
          lambda: world.c.ip("route", "replace", "default", "via", GW1, "dev", "up1"))


def test_networkmanager_add_then_delete_flips(world):
    world.c.ip("route", "del", "default")
    world.c.ip("route", "add", "default", "via", GW1, "dev", "up1", "metric", "100")
    cap = start(world)
    state = {"metric": 100, "dev": "up1"}

    def flip():
        old_m, old_dev = state["metric"], state["dev"]
        new_dev = "up2" if old_dev == "up1" else "up1"
        gw = GW2 if new_dev == "up2" else GW1
        world.c.ip("route", "add", "default", "via", gw, "dev", new_dev, "metric", str(old_m - 1))
        world.c.ip("route", "del", "default", "dev", old_dev, "metric", str(old_m))
        state.update(metric=old_m - 1, dev=new_dev)

    flips(world, cap, "NetworkManager add+delete", flip, flip)


def test_wg_quick_policy_rule_added_and_removed(world):
    world.c.ip("route", "add", "default", "via", GW2, "dev", "up2", "table", "100")
    cap = start(world)
    # The rule sends every lookup to table 100 first: the origin must go into the TUN there too
    # (wg-quick's table holds the tunnel's routes).
    world.c.ip("route", "add", f"{ORIGIN}/32", "dev", "t2s0", "table", "100")
    flips(world, cap, "wg-quick rule",
          lambda: world.c.ip("rule", "add", "priority", "100", "not", "fwmark", "0x1234",
                             "table", "100"),
          lambda: world.c.ip("rule", "del", "priority", "100"))


def test_ip_route_change_flips(world):
    cap = start(world)
    flips(world, cap, "ip route change",
          lambda: world.c.ip("route", "change", "default", "via", GW2, "dev", "up2"),
          lambda: world.c.ip("route", "change", "default", "via", GW1, "dev", "up1"))


def test_multipath_default_losing_a_nexthop(world):
    both = ["route", "replace", "default", "nexthop", "via", GW1, "dev", "up1",
            "nexthop", "via", GW2, "dev", "up2"]
    world.c.ip(*both)
    cap = start(world)
    gws = {"up1": GW1, "up2": GW2}
    for i in range(REPEATS):
        # Both nexthops; the kernel hashes the proxy's flows onto one of them (d).
        before = world.metric("tun2sock_network_changes_total")
        prev = route_dev(world)
        world.c.ip(*both)
        d = route_dev(world)
        time.sleep(DEBOUNCE_MS / 1000 + 0.3)
        want = before + (1 if d != prev else 0)
        wait_for(lambda: world.metric("tun2sock_network_changes_total") == want,
                 f"network_changes_total {want} after restoring both nexthops", timeout=3,
                 proc=world.t)
        other = "up2" if d == "up1" else "up1"
        one_change(world, cap, f"multipath loses {d} #{i + 1}",
                   lambda: world.c.ip("route", "replace", "default", "nexthop", "via",
                                      gws[other], "dev", other), d, other)


def test_egress_link_down_and_up(world):
    world.c.ip("route", "del", "default")
    world.c.ip("route", "add", "default", "via", GW1, "dev", "up1", "metric", "100")
    world.c.ip("route", "add", "default", "via", GW2, "dev", "up2", "metric", "200")
    cap = start(world)

    def up():
        world.c.ip("link", "set", "up1", "up")
        # The kernel removed the routes through up1 when it went down: a network manager adds
        # the default again.
        world.c.ip("route", "add", "default", "via", GW1, "dev", "up1", "metric", "100")

    flips(world, cap, "link up1 down/up", lambda: world.c.ip("link", "set", "up1", "down"), up)


def test_egress_deleted_and_recreated_under_a_new_index(world):
    world.c.ip("route", "del", "default")
    world.c.ip("route", "add", "default", "via", GW1, "dev", "up1", "metric", "100")
    world.c.ip("route", "add", "default", "via", GW2, "dev", "up2", "metric", "200")
    cap = start(world)
    indexes = []

    def ifindex():
        return int(world.c.run("cat", "/sys/class/net/up1/ifindex").stdout)

    indexes.append(ifindex())

    def recreate():
        veth(world.c, f"{ME1}/24", world.s, f"{GW1}/24", a_dev="up1", b_dev="dn1")
        world.c.ip("route", "add", "default", "via", GW1, "dev", "up1", "metric", "100")
        indexes.append(ifindex())

    flips(world, cap, "up1 deleted/re-created", lambda: world.c.ip("link", "del", "up1"),
          recreate)
    assert len(set(indexes)) == len(indexes), f"up1 kept an index: {indexes}"


def test_overrun_resynchronises_and_counts_each_flip(world):
    """SIGSTOP, a flip to up2 and 300 routes added (or removed) in another table, SIGCONT: the
    monitor's 8 KiB receive buffer overran and the flip's message was lost; the dump after it
    finds the flip. Then an ordinary flip back to up1: counted only if the monitor's state
    learnt up2's route from the dump (it still holding up1's route would make the replace back
    to up1 look like a refresh). Four times each."""
    batch_add = world.tmp / "add.batch"
    batch_del = world.tmp / "del.batch"
    routes = [f"198.19.{i // 250}.{i % 250 + 1}/32" for i in range(300)]
    batch_add.write_text("".join(f"route add blackhole {r} table 300\n" for r in routes))
    batch_del.write_text("".join(f"route del blackhole {r} table 300\n" for r in routes))
    cap = start(world, env={"TUN2SOCK_TEST_MONITOR_RCVBUF": "4096"})
    for i in range(REPEATS):
        dl = world.download()
        assert world.upstream_devs() == ["up1"]
        port = client_port(world)
        before = world.metric("tun2sock_network_changes_total")
        world.t.signal(signal.SIGSTOP)
        try:
            world.c.ip("route", "replace", "default", "via", GW2, "dev", "up2")
            world.c.ip("-batch", str(batch_add if i % 2 == 0 else batch_del))
        finally:
            world.t.signal(signal.SIGCONT)
        t_cont = time.time()
        try:
            dl.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        assert dl.poll() is not None and dl.returncode != 0, world.t.output()[-3000:]
        rst = wait_for(lambda: [t for t in cap.rsts(port) if t >= t_cont - 0.5],
                       "the RST on t2s0", timeout=2)[0]
        assert wait_for(world.new_curl_ok, "a new connection", timeout=3, proc=world.t)
        after = world.metric("tun2sock_network_changes_total")
        print(f"overrun #{i + 1}: up1 -> up2: RST {(rst - t_cont) * 1000:.0f} ms after SIGCONT; "
              f"network_changes_total {before:.0f} -> {after:.0f}")
        assert after == before + 1
        assert rst - t_cont <= DEBOUNCE_MS / 1000 + 0.5
        one_change(world, cap, f"after overrun #{i + 1}, ip route replace",
                   lambda: world.c.ip("route", "replace", "default", "via", GW1, "dev", "up1"),
                   "up2", "up1")
    out = world.t.output()
    n = out.count("resynchronised from a fresh dump")
    assert n >= REPEATS, out[-3000:]
    final_dev(world, "up1")


def test_autoroute_own_rules_are_not_network_changes(world):
    """--auto-route's own rules and table are not events (its refresh would otherwise feed
    itself): one of them deleted and re-added by tun2sock's repair, four times, changes no
    counter; a foreign wg-quick rule selecting a table with a route to the proxy still counts."""
    world.c.ip("route", "add", "default", "via", GW2, "dev", "up2", "table", "100")
    world.start("--network-debounce", f"{DEBOUNCE_MS}ms", "--auto-route")
    time.sleep(1.5)
    events0 = world.metric("tun2sock_network_events_total")
    assert world.metric("tun2sock_network_changes_total") == 0
    for i in range(REPEATS):
        world.c.ip("rule", "del", "priority", "9003")
        wait_for(lambda: "9003:" in world.c.ip("rule", "show").stdout,
                 f"tun2sock re-adding rule 9003 (#{i + 1})", timeout=3, proc=world.t)
    time.sleep(DEBOUNCE_MS / 1000 + 0.3)
    out = world.t.output()
    assert world.metric("tun2sock_network_events_total") == events0, out[-3000:]
    assert world.metric("tun2sock_network_changes_total") == 0, out[-3000:]
    assert world.metric("tun2sock_route_updates_total") == 0, out[-3000:]
    assert "state SETTLING" not in out, out[-3000:]
    world.c.ip("rule", "add", "priority", "100", "not", "fwmark", "0x1234", "table", "100")
    wait_for(lambda: world.metric("tun2sock_network_changes_total") == 1,
             "the foreign rule counted", timeout=3, proc=world.t)
    print(f"auto-route: {REPEATS} repairs of rule 9003, network events {events0:.0f} -> "
          f"{world.metric('tun2sock_network_events_total'):.0f} (the foreign rule), changes 1")
