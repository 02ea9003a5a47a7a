"""UDP in the simulator: closed-loop UDP and ping clients through the engine and the simulated
SOCKS5 proxy (UDP ASSOCIATE relay), full cone, idle and DNS timeouts, LRU eviction at the cap
(DNS first), the bounded setup queue, the no-UDP fallback (DNS over TCP through CONNECT, ICMP
port unreachable for the rest), and fragments both ways (v4 and v6).

Fixtures (sim, sim_bin) come from conftest.py; set T2S_BUILD_DIR to test another build tree.
"""
import textwrap
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).resolve().parent / "scenarios"

MS = 1_000_000
S = 1_000_000_000


@pytest.fixture
def scenario(sim, tmp_path):
    """scenario(text, *args, check=True, name="s") writes text to <tmp>/<name>.scn and runs it."""
    def run(text, *args, check=True, name="s"):
        path = tmp_path / f"{name}.scn"
        path.write_text(textwrap.dedent(text))
        return sim("--scenario", path, *args, check=check, name=name)
    return run


def stats(res):
    return res.events_of("end")[-1]["stats"]


def test_udp_echo_through_socks5_associate_v4_and_v6(scenario):
    res = scenario("""
        seed 11
        proxy socks5 203.0.113.200:1080
        upstream 192.0.2.10:7 echo latency 5ms
        upstream [2001:db8::10]:7 echo latency 5ms
        at 0s client c4 udp 192.0.2.10:7 send "hello" count 3 interval 100ms expect-echo
        at 0s client c6 udp [2001:db8::10]:7 send 3000 count 2 interval 50ms expect-echo
        expect c4 done before 1s
        expect c6 done before 1s
        expect stat udp_datagrams_up 5
        expect stat udp_datagrams_down 5
        expect stat udp_sessions_total 2
        run until 2s
        """)
    # One association per client socket, whatever the number of datagrams.
    assert len(res.events_of("proxy_udp_associate")) == 2
    relayed = res.events_of("proxy_udp")
    assert sorted(e["target"] for e in relayed) == ["192.0.2.10:7"] * 3 + ["[2001:db8::10]:7"] * 2
    # The 3000-byte v6 datagrams crossed the 1500-byte link in fragments both ways.
    assert stats(res)["udp_sessions_active"] == 2
    assert len(res.events_of("client_reassembled")) == 2


def test_full_cone_reply_from_a_second_remote(scenario):
    res = scenario("""
        proxy socks5 203.0.113.200:1080
        upstream 192.0.2.10:7 echo latency 5ms reply-from 192.0.2.11:9
        at 0s client c1 udp 192.0.2.10:7 send 100 expect-replies 2
        expect c1 done before 1s
        run until 1s
        """)
    froms = [e["from"] for e in res.events_of("client_recv")]
    assert froms == ["192.0.2.10:7", "192.0.2.11:9"]


def test_idle_timeout_and_shorter_dns_timeout(scenario):
    res = scenario("""
        proxy socks5 203.0.113.200:1080
        engine udp-timeout 5s
        engine dns-timeout 2s
        upstream default echo latency 1ms
        at 0s client app udp 192.0.2.10:7 send "a" expect-echo
        at 0s client dns udp 192.0.2.53:53 send "q" expect-echo
        expect app done
        expect dns done
        expect stat udp_timeouts 2
        expect stat udp_sessions_active 0
        run until 10s
        """)
    closed = {e["dst"]: e for e in res.events_of("udp_closed")}
    last_reply = max(e["t"] for e in res.events_of("client_recv"))
    assert closed["192.0.2.53:53"]["err"] == "timed out"
    assert 2 * S <= closed["192.0.2.53:53"]["t"] <= last_reply + 2 * S
    assert 5 * S <= closed["192.0.2.10:7"]["t"] <= last_reply + 5 * S


def test_session_stays_while_traffic_flows(scenario):
    res = scenario("""
        engine udp-timeout 1s
        at 0s client c1 udp 192.0.2.10:7 send 10 count 5 interval 700ms expect-echo
        expect c1 done
        expect stat udp_sessions_total 1
        run until 10s
        """)
    closed = res.events_of("udp_closed")
    assert len(closed) == 1 and closed[0]["t"] > 3 * 700 * MS + S


def test_lru_eviction_at_the_cap_takes_dns_first(scenario):
    res = scenario("""
        proxy socks5 203.0.113.200:1080
        engine max-udp-sessions 2
        at 0s client c1 udp 192.0.2.10:7 send "a" expect-echo
        at 10ms client c2 udp 192.0.2.53:53 send "q" expect-echo
        at 20ms client c3 udp 192.0.2.10:7 send "b" expect-echo
        at 30ms client c4 udp 192.0.2.10:7 send "c" expect-echo
        expect c1 done
        expect c3 done
        expect c4 done
        expect stat udp_evictions 2
        expect stat udp_sessions_active 2
        run until 1s
        """)
    evicted = [e for e in res.events_of("udp_closed") if e["err"] == "limit reached"]
    # The DNS session goes first although c1 is older; then c1, the least recently used.
    assert [e["dst"] for e in evicted] == ["192.0.2.53:53", "192.0.2.10:7"]
    assert evicted[0]["t"] == 20 * MS and evicted[1]["t"] == 30 * MS


def test_setup_queue_is_bounded_and_flushed(scenario):
    res = scenario("""
        proxy socks5 203.0.113.200:1080
        upstream 203.0.113.200:1080 echo latency 50ms
        at 0s client burst udp 192.0.2.10:7 send 64 count 40 interval 0 expect-replies 32
        expect burst done before 1s
        expect drops udp_queue_full 8
        expect stat udp_datagrams_up 32
        run until 2s
        """)
    assert len(res.events_of("client_recv")) == 32


@pytest.mark.parametrize("how", ["no-udp", "udp-close"])
def test_no_udp_proxy_dns_over_tcp_and_unreachable_for_the_rest(scenario, how):
    res = scenario(f"""
        proxy socks5 203.0.113.200:1080 {how}
        upstream 192.0.2.53:53 echo latency 2ms
        at 0s client dns1 udp 192.0.2.53:53 send "dns-query-1" expect-echo
        at 0s client app udp 192.0.2.10:7 send "x" expect-unreachable
        at 1s client dns2 udp 192.0.2.53:53 send "dns-query-2" count 2 interval 10ms expect-echo
        at 1s client app2 udp 192.0.2.10:7 send "y" expect-unreachable
        expect dns1 done before 1s
        expect app done before 1s
        expect dns2 done before 2s
        expect app2 done before 2s
        expect stat udp_no_udp_verdicts 1
        expect stat udp_dns_tcp_queries 3
        expect stat udp_dns_tcp_answers 3
        expect stat udp_port_unreach_sent 2
        expect stat udp_proxy_no_udp 1
        expect upstream 192.0.2.53:53 streams 3
        run until 3s
        """)
    # One stream per query here: a DNS stream closes once every query on it is answered
    # (dns2's second query, 10 ms after the first was answered, opens a new one).
    # The verdict is remembered: the second round asks for no UDP ASSOCIATE at all.
    requests = [e for e in res.events_of("proxy_request")]
    assert all(e["target"] == "192.0.2.53:53" for e in requests)
    assert len(res.events_of("client_unreachable")) == 2


def test_dns_query_on_a_refused_association_gets_servfail_at_once(sim):
    """harness/scenarios/udp-dns-servfail.scn: the proxy refuses every connection; the lookups
    waiting on their UDP ASSOCIATE get SERVFAIL (each its own ID) within 50 ms, where they used
    to get nothing and fail after their 3 tries 1 s apart; the non-DNS datagram gets nothing."""
    res = sim("--scenario", SCENARIOS / "udp-dns-servfail.scn", name="servfail")
    failed = {e["client"]: e for e in res.events_of("client_lookup_failed")}
    assert set(failed) == {"c1", "c2"}
    for e in failed.values():
        assert e["why"] == "error rcode"  # an answer with an error RCODE, not "no answer"
        assert e["t"] < 50 * MS
    assert all(e["try"] == 1 for e in res.events_of("client_lookup"))  # no retry needed
    assert res.events_of("end")[-1]["packets_out"] == 2  # the two SERVFAILs, nothing for c3


def test_no_udp_proxy_whose_dns_over_tcp_is_refused_answers_servfail(scenario):
    """REP 7, then the DNS-over-TCP fallback's CONNECT refused (REP 5): SERVFAIL at once."""
    res = scenario("""
        proxy socks5 203.0.113.200:1080 no-udp
        upstream 192.0.2.53:53 refuse latency 2ms
        upstream 198.51.100.11:7 echo latency 2ms
        at 0s client c1 udp www.example:7 send "x" expect-echo resolver 192.0.2.53
        expect stat udp_no_udp_verdicts 1
        expect invariants 0
        run until 5s
        """)
    failed = res.events_of("client_lookup_failed")
    assert len(failed) == 1 and failed[0]["why"] == "error rcode"
    assert failed[0]["t"] < 50 * MS
    assert len(res.events_of("proxy_request")) == 1  # the fallback's CONNECT was asked


def test_ping_3000_fragmented_both_ways_v4_and_v6(scenario):
    res = scenario("""
        at 0s client p4 ping 192.0.2.1 size 3000 count 3 interval 10ms
        at 0s client p6 ping 2001:db8::1 size 3000 count 3 interval 10ms
        expect p4 done
        expect p6 done
        expect echo-replies 6
        expect stat frag_reassembled 6
        expect drops total 0
        run until 1s
        """)
    st = stats(res)
    assert st["icmp_echo_replies"] == 6
    assert len(res.events_of("client_reassembled")) == 6


def test_udp_without_proxy_goes_straight_to_the_destination(scenario):
    res = scenario("""
        upstream 192.0.2.10:7 echo latency 3ms
        at 0s client c1 udp 192.0.2.10:7 send 1200 count 2 interval 10ms expect-echo
        expect c1 done
        run until 1s
        """)
    opens = res.events_of("up_dgram_open")
    assert [e["relay"] for e in opens] == ["192.0.2.10:7"]


def test_udp_survives_device_faults(scenario):
    res = scenario("""
        seed 5
        device loss 5% reorder 5% duplicate 5%
        proxy socks5 203.0.113.200:1080
        at 0s client c1 udp 192.0.2.10:7 send 2500 count 50 interval 20ms expect-replies 30
        expect c1 done
        expect invariants 0
        run until 5s
        """)
    assert stats(res)["udp_sessions_active"] == 1


def test_network_change_flushes_udp_sessions_and_the_next_datagram_reassociates(scenario):
    res = scenario("""
        link wlan0 up addr 192.0.2.10/24 gateway 192.0.2.1
        link eth0 up addr 198.51.100.10/24 gateway 198.51.100.1
        route default via wlan0
        proxy socks5 203.0.113.200:1080
        at 0 client u1 udp 203.0.113.10:7 send "a" count 3 interval 1300ms expect-echo
        at 500ms route default via eth0
        expect u1 done
        expect stat udp_sessions_total 2
        expect stat flows_reset 1
        run until 5s
        """)
    closed = res.events_of("udp_closed")
    assert closed[0]["err"] == "network changed"
    assert [e["dev"] for e in res.events_of("up_dgram_open")] == ["wlan0", "eth0"]
    assert len(res.events_of("proxy_udp_associate")) == 2


def test_udp_runs_are_deterministic(scenario):
    text = """
        seed 21
        device loss 3% reorder 3% duplicate 3%
        proxy socks5 203.0.113.200:1080
        upstream 192.0.2.10:7 echo latency 5ms reply-from 192.0.2.11:9
        at 0s client c1 udp 192.0.2.10:7 send 2500 count 20 interval 30ms expect-replies 10
        at 0s client p1 ping 2001:db8::1 size 3000 count 5 interval 50ms
        run until 3s
        """
    a = scenario(text, check=False, name="a")
    b = scenario(text, check=False, name="b")
    assert a.events_out.read_bytes() == b.events_out.read_bytes()
    assert a.pcap_out.read_bytes() == b.pcap_out.read_bytes()
    c = scenario(text, "--seed", "22", check=False, name="c")
    assert c.events_out.read_bytes() != a.events_out.read_bytes()
