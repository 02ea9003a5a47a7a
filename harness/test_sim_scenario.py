"""tun2sock-sim --scenario: the scenario language (docs/scenarios.md). Parse errors exit 2 and
name the line, a failed expectation exits 1 and names it, and closed-loop TCP clients carry
bytes end to end through the engine, checked byte by byte, also under seeded faults.

Fixtures (sim, sim_bin) come from conftest.py; set T2S_BUILD_DIR to test another build tree.
"""
import pytest
from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw
from scapy.utils import RawPcapReader


def out_packets(res):
    return [IP(d) if d[0] >> 4 == 4 else None for d, _ in RawPcapReader(str(res.pcap_out))]


# ---------------------------------------------------------------- parse errors


@pytest.mark.parametrize("text,line,words", [
    ("frobnicate 3\n", 1, "unknown command 'frobnicate'"),
    ("# comment\n\nseed x\n", 3, "whole number"),
    ("device mtu 100\n", 1, "576..65535"),
    ("device loss 120%\n", 1, "more than 100%"),
    ("device loss 2\n", 1, "percentage"),
    ("device speed 3\n", 1, "unknown setting 'speed'"),
    ("upstream 1.2.3.4:80 teleport\n", 1, "expected a behaviour"),
    ("upstream nowhere echo\n", 1, "ADDR[:PORT]"),
    ("upstream 1.2.3.4:80 source\n", 1, "expected a size"),
    ("upstream 1.2.3.4:80 echo latency 5\n", 1, "bad duration '5'"),
    ("at 5 inject-echo 10.0.0.1 10.0.0.2\n", 1, "bad duration '5'"),
    ("at 1s teleport\n", 1, "expected an action"),
    ("at 1s replay missing.pcap\n", 1, "missing.pcap"),
    ("at 1s inject-echo 10.0.0.1 fd00::1\n", 1, "different families"),
    ("at 1s inject-echo 10.0.0.1 10.0.0.2 size 2QB\n", 1, "expected a size"),
    ("at 1s client c1 tcp 1.2.3.4\n", 1, "needs a port"),
    ("at 1s client c1 udp 1.2.3.4\n", 1, "needs a port"),
    ("at 1s client 9x tcp 1.2.3.4:80\n", 1, "expected a name"),
    ("at 1s client c1 tcp 1.2.3.4:80\nat 2s client c1 tcp 1.2.3.4:80\n", 2, "already used"),
    ('at 1s client c1 tcp 1.2.3.4:80 send "abc\n', 1, "unterminated string"),
    ("at 1s suspend now\n", 1, "unexpected 'now'"),
    ("suspend\n", 1, "happens at a time"),
    ("at 1s link wlan0 sideways\n", 1, "expected up or down"),
    ("link wlan0 up addr 192.0.2.10\n", 1, "expected ADDR/LEN"),
    ("route default via eth9\n", 1, "no link is called 'eth9'"),
    ("link eth0 up\naddr add 192.0.2.1/24 eth0\n", 2, "expected 'dev NAME'"),
    ("at 1s resume slept\n", 1, "expected a duration"),
    ("engine on-network-change sometimes\n", 1, "reset-all, reset-affected or none"),
    ("expect net-state DOWN\n", 1, "UP, SETTLING, NO_ROUTE or SUSPENDED"),
    ("run until\n", 1, "expected a duration"),
    ("run until 1s\nrun until 2s\n", 2, "given twice"),
    ("expect packets-out many\n", 1, "whole number"),
    ("expect drops no_such_reason 1\n", 1, "unknown reason"),
    ("expect stat nonsense 1\n", 1, "unknown engine counter"),
    ("expect ghost done\n", 1, "no client is called 'ghost'"),
    ("expect wonders\n", 1, "expected packets-out"),
    ("seed 1\nlink wlan0 up latency\n", 2, "expected a duration"),
    ("proxy http 1.2.3.4:80\n", 1, "expected 'socks5'"),
    ("proxy socks5 1.2.3.4\n", 1, "needs a port"),
    ("proxy socks5 1.2.3.4:1080 auth alice\n", 1, "user name and a password"),
    ("proxy socks5 1.2.3.4:1080\nproxy socks5 1.2.3.4:1080\n", 2, "given twice"),
])
def test_parse_error_exits_2_and_names_the_line(scenario, text, line, words):
    res = scenario(text)
    assert res.returncode == 2, res.describe()
    assert f"s.scn:{line}:" in res.stderr, res.describe()
    assert words in res.stderr, res.describe()
    assert not res.events_out.exists() or res.events_out.stat().st_size == 0


def test_missing_scenario_file_exits_2(sim, tmp_path):
    res = sim("--scenario", tmp_path / "nope.scn", check=False)
    assert res.returncode == 2
    assert "nope.scn" in res.stderr


# ---------------------------------------------------------------- expectations


ECHO_SCENARIO = """\
    # three echo requests of 100 bytes, 100 ms apart, and one IPv6 one
    seed 3
    at 0s    inject-echo 10.0.0.1 198.51.100.7 size 100 count 3 interval 100ms
    at 500ms inject-echo fd00::1 2001:db8::9 size 0
    expect echo-replies 4
    expect packets-out 4
    expect packets-in >= 4
    expect drops total 0
    expect stat icmp-echo-replies 4
    run until 2s
"""


def test_expectations_that_hold_exit_0(scenario):
    res = scenario(ECHO_SCENARIO, check=True)
    assert "expectations: 5 passed, 0 failed" in res.stdout
    results = res.events_of("expect")
    assert [e["ok"] for e in results] == [True] * 5
    assert [e["line"] for e in results] == [5, 6, 7, 8, 9]
    pkts = out_packets(res)
    v4 = [p for p in pkts if p is not None]
    assert [p[ICMP].seq for p in v4] == [1, 2, 3]
    assert all(len(p[Raw].load) == 100 for p in v4)
    # run until 2s: the clock reaches the bound even though nothing happens after 500 ms.
    assert res.events_of("end")[0]["t"] == 2_000_000_000


def test_failed_expectation_exits_1_and_names_it(scenario):
    res = scenario(ECHO_SCENARIO.replace("expect packets-out 4", "expect packets-out 5"))
    assert res.returncode == 1, res.describe()
    assert "s.scn:6: expectation failed: expect packets-out 5 (actual: 4)" in res.stderr
    assert "reproduce with --seed 3" in res.stderr
    assert "expectations: 4 passed, 1 failed" in res.stdout
    failed = [e for e in res.events_of("expect") if not e["ok"]]
    assert failed == [{"t": 2_000_000_000, "event": "expect", "line": 6,
                       "expect": "expect packets-out 5", "ok": False, "actual": "4"}]


def test_drops_expectation_counts_by_reason(scenario, tmp_path):
    good = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(id=1, seq=1))
    bad = bytearray(good)
    bad[10] ^= 0x55
    import struct
    with open(tmp_path / "caps.pcap", "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        for i, raw in enumerate([good, bytes(bad), bytes(bad)]):
            f.write(struct.pack("<IIII", 7, i, len(raw), len(raw)) + raw)
    res = scenario("""\
        at 1s replay caps.pcap
        expect drops ipv4_bad_checksum 2
        expect echo-replies 1
        expect packets-in 3
    """, check=True)
    times = [e["t"] for e in res.events_of("pkt_in")]
    assert times == [1_000_000_000, 1_000_001_000, 1_000_002_000]  # microsecond capture


def test_seed_option_overrides_the_scenario_seed(scenario):
    a = scenario(ECHO_SCENARIO, check=True, name="a")
    b = scenario(ECHO_SCENARIO, "--seed", "3", check=True, name="b")
    c = scenario(ECHO_SCENARIO, "--seed", "4", check=True, name="c")
    assert a.events_out.read_bytes() == b.events_out.read_bytes()
    assert a.events_of("start")[0]["seed"] == 3 and c.events_of("start")[0]["seed"] == 4
    # The echo id is drawn from the seed.
    assert out_packets(a)[0][ICMP].id != out_packets(c)[0][ICMP].id


# ---------------------------------------------------------------- TCP clients


def client_result(res, name):
    done = [e for e in res.events if e.get("client") == name and e["event"] == "client_closed"]
    return done[-1] if done else None


def test_tcp_echo_client_gets_every_byte_back(scenario):
    res = scenario("""\
        upstream 203.0.113.11:7 echo latency 5ms
        at 0s   client c1 tcp 203.0.113.11:7 send 64KB expect-echo
        at 10ms client c2 tcp [2001:db8::7]:7 send "hello over IPv6\\r\\n" expect-echo
        expect c1 done before 1s
        expect c2 done before 1s
        expect upstream 203.0.113.11:7 received 64KB intact
        expect invariants 0
        run until 10s
    """, check=True)
    assert client_result(res, "c1")["received"] == 65536
    assert client_result(res, "c2")["received"] == len("hello over IPv6\r\n")


def test_tcp_upload_reaches_the_sink_intact(scenario):
    scenario("""\
        device latency 2ms
        upstream 203.0.113.12:9 sink latency 10ms
        at 0s client up tcp 203.0.113.12:9 send 4MB
        expect up done before 20s
        expect upstream 203.0.113.12:9 received 4MB intact
        expect upstream-open 0
        run until 60s
    """, check=True)


def test_tcp_download_from_a_source_arrives_intact(scenario):
    res = scenario("""\
        device latency 2ms
        upstream 203.0.113.13:19 source 4MB latency 10ms
        at 0s client down tcp 203.0.113.13:19 expect-bytes 4MB
        expect down done before 20s
        run until 60s
    """)
    assert res.returncode == 0, res.describe()


def test_tcp_refused_upstream_resets_the_client(scenario):
    scenario("""\
        upstream 203.0.113.14:80 refuse latency 20ms
        at 0s client c tcp 203.0.113.14:80 send "GET / HTTP/1.0\\r\\n\\r\\n"
        expect c refused before 100ms
        expect c reset before 100ms
        run until 5s
    """, check=True)


def test_tcp_reset_after_n_bytes_resets_the_client(scenario):
    scenario("""\
        upstream 203.0.113.15:7 echo reset-after 10KB
        at 0s client c tcp 203.0.113.15:7 send 1MB expect-echo
        expect c reset before 1s
        expect upstream 203.0.113.15:7 streams 1
        run until 5s
    """, check=True)


def test_tcp_failed_expectation_names_the_client(scenario):
    res = scenario("""\
        upstream 203.0.113.14:80 refuse
        at 0s client c tcp 203.0.113.14:80 send 10
        expect c done before 1s
    """)
    assert res.returncode == 1
    assert "expect c done before 1s (actual: refused at" in res.stderr


FAULTS = """\
    device loss 3% reorder 3% duplicate 3% latency 1ms
    upstream 203.0.113.11:7 echo latency 3ms
    upstream 203.0.113.12:9 sink latency 3ms
    at 0s client e tcp 203.0.113.11:7 send 96KB expect-echo
    at 5ms client u tcp 203.0.113.12:9 send 256KB
    expect e done before 100s
    expect u done before 100s
    expect upstream 203.0.113.12:9 received 256KB intact
    expect invariants 0
    run until 200s
"""


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 21))
def test_tcp_transfers_survive_seeded_loss_reordering_duplication(scenario, seed):
    res = scenario(FAULTS, "--seed", seed)
    assert res.returncode == 0, res.describe()
    end = res.events_of("end")[0]
    assert end["faults_lost"] > 0 or end["faults_reordered"] > 0 or end["faults_duplicated"] > 0


# ---------------------------------------------------------------- through the SOCKS5 proxy


def test_socks5_proxy_carries_echo_and_upload_to_each_destination(scenario):
    res = scenario("""\
        proxy socks5 203.0.113.200:1080
        upstream 203.0.113.11:7 echo latency 5ms
        upstream 203.0.113.12:9 sink
        at 0s   client e tcp 203.0.113.11:7 send 64KB expect-echo
        at 0s   client u tcp 203.0.113.12:9 send 1MB
        at 10ms client v6 tcp [2001:db8::7]:7 send "hello v6" expect-echo
        expect e done before 1s
        expect u done before 5s
        expect v6 done before 1s
        expect upstream 203.0.113.12:9 received 1MB intact
        expect upstream 203.0.113.200:1080 streams 0
        expect upstream-open 0
        run until 30s
    """, check=True)
    targets = sorted(e["target"] for e in res.events_of("proxy_request"))
    assert targets == ["203.0.113.11:7", "203.0.113.12:9", "[2001:db8::7]:7"]
    assert all(e["dst"] == "203.0.113.200:1080" for e in res.events_of("up_open"))


@pytest.mark.parametrize("world,outcome", [
    ("upstream 203.0.113.14:80 refuse", "refused before 1s"),           # REP 5
    ("upstream 203.0.113.14:80 blackhole", "reset before 11s"),         # no reply: timeout
    ("upstream 203.0.113.200:1080 refuse", "refused before 1s"),        # proxy refuses TCP
])
def test_socks5_failures_reach_the_client_as_a_reset(scenario, world, outcome):
    scenario(f"""\
        proxy socks5 203.0.113.200:1080
        {world}
        at 0s client c tcp 203.0.113.14:80 send 100
        expect c {outcome}
        run until 20s
    """, check=True)


def test_socks5_authentication(scenario):
    scenario("""\
        proxy socks5 [fd00:200::1]:1080 auth alice s3cret
        at 0s client c tcp 203.0.113.11:7 send 10KB expect-echo
        expect c done before 1s
    """, check=True, name="good")
    scenario("""\
        proxy socks5 203.0.113.200:1080 auth alice s3cret offer alice wrong
        at 0s client c tcp 203.0.113.11:7 send 10KB expect-echo
        expect c reset before 1s
    """, check=True, name="bad")
