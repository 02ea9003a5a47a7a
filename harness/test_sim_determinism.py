"""The simulator is deterministic: the same input and seed give byte-identical output captures
and event logs, run after run; another seed may give another run.

Fixtures (sim) come from conftest.py; set T2S_BUILD_DIR to test another build tree.
"""
import textwrap

from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.packet import Raw

from test_sim_replay import write_pcap

SCENARIO = """\
    # Faults, clients both ways, scripted echoes and a replay: everything that draws randomness.
    seed 11
    device loss 5% reorder 5% duplicate 5% latency 1ms
    upstream 203.0.113.11:7 echo latency 4ms
    upstream 203.0.113.12:9 sink latency 2ms
    at 0s    client e tcp 203.0.113.11:7 send 48KB expect-echo
    at 3ms   client u tcp 203.0.113.12:9 send 128KB
    at 5ms   inject-echo 10.0.0.1 10.0.0.2 size 64 count 5 interval 7ms
    at 20ms  replay in.pcap
    run until 120s
"""


def requests(tmp_path):
    pkts = []
    for i in range(6):
        p = IP(src="10.1.0.1", dst="192.0.2.1") / ICMP(id=9, seq=i) / Raw(b"x" * (i * 50))
        q = IPv6(src="fd00::5", dst="2001:db8::5") / ICMPv6EchoRequest(id=9, seq=i, data=b"y" * i)
        for k, r in enumerate((p, q)):
            r = r.__class__(bytes(r))
            r.time = 50 + i * 0.25 + k * 0.001
            pkts.append(r)
    write_pcap(tmp_path / "in.pcap", pkts)
    return tmp_path / "in.pcap"


def same_run(a, b):
    return (a.pcap_out.read_bytes() == b.pcap_out.read_bytes()
            and a.events_out.read_bytes() == b.events_out.read_bytes())


def test_replay_twice_gives_identical_capture_and_events(sim, tmp_path):
    path = requests(tmp_path)
    a = sim(replay=path, name="a")
    b = sim(replay=path, name="b")
    assert a.pcap_out.stat().st_size > 0 and a.events
    assert same_run(a, b)
    assert a.stdout == b.stdout


def test_scenario_with_the_same_seed_is_identical(sim, tmp_path):
    requests(tmp_path)
    scn = tmp_path / "s.scn"
    scn.write_text(textwrap.dedent(SCENARIO))
    runs = [sim("--scenario", scn, name=f"r{i}") for i in range(3)]
    assert all(same_run(runs[0], r) for r in runs[1:])
    end = runs[0].events_of("end")[0]
    # The run exercised the fault injector, so the seed mattered.
    assert end["faults_lost"] + end["faults_reordered"] + end["faults_duplicated"] > 0


def test_another_seed_gives_another_run(sim, tmp_path):
    requests(tmp_path)
    scn = tmp_path / "s.scn"
    scn.write_text(textwrap.dedent(SCENARIO))
    base = sim("--scenario", scn, name="base")
    others = [sim("--scenario", scn, "--seed", s, name=f"s{s}") for s in (12, 13, 14)]
    assert any(not same_run(base, o) for o in others)
    for o in others:
        assert o.events_of("start")[0]["seed"] != 11


def test_event_log_is_one_json_object_per_line_without_wall_clock(sim, tmp_path):
    requests(tmp_path)
    scn = tmp_path / "s.scn"
    scn.write_text(textwrap.dedent(SCENARIO))
    res = sim("--scenario", scn)
    events = res.events
    assert events[0]["event"] == "start" and events[-1]["event"] == "end"
    times = [e["t"] for e in events]
    assert times == sorted(times), "virtual time never goes backwards in the log"
    assert all(isinstance(e["t"], int) for e in events)
    kinds = {e["event"] for e in events}
    for k in ("pkt_in", "pkt_out", "icmp_echo", "tcp_syn", "tcp_established", "client_done",
              "up_open", "fault", "scenario", "replay_start", "replay_end"):
        assert k in kinds, k
    assert events[-1]["stats"]["icmp_echo_replies"] >= 1
