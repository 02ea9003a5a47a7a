"""The engine's TCP session speaks SOCKS5 (simulator): the client's handshake mirrors the
upstream (SYN-ACK only after the CONNECT succeeded; RST on refusal, unreachable, timeout and
authentication failure), data is spliced byte-exactly, half-close works both ways, and an
upstream reset after N bytes reaches the client as a RST.
"""
import pytest
from scapy.layers.inet import IP, TCP
from scapy.utils import RawPcapReader


def engine_segments(res):
    """(time in seconds, scapy IP) for every TCP segment the engine sent toward the clients."""
    out = []
    for data, meta in RawPcapReader(str(res.pcap_out)):
        if data[0] >> 4 != 4:
            continue
        pkt = IP(data)
        if TCP in pkt:
            t = meta.sec + meta.usec / (1e9 if meta.usec >= 1e6 else 1e6)
            out.append((t, pkt))
    return out


def test_syn_ack_only_after_the_connect_succeeded(scenario):
    # The proxy answers the CONNECT only after the destination's latency: the SYN-ACK must not
    # reach the client before the proxy's success reply reached the engine.
    res = scenario("""\
        proxy socks5 203.0.113.200:1080
        upstream 203.0.113.200:1080 echo latency 40ms
        upstream 203.0.113.11:7 echo latency 5ms
        at 0s client c tcp 203.0.113.11:7 send 1000 expect-echo
        expect c done before 2s
        run until 5s
    """, check=True)
    synacks = [(t, p) for t, p in engine_segments(res)
               if p[TCP].flags & 0x12 == 0x12 and p[TCP].dport != 1080]
    assert synacks, res.describe()
    requests = res.events_of("proxy_request")
    assert requests, res.describe()
    # Three proxy round trips (greeting, request, and the TCP connect itself) of 40 ms each
    # come before the SYN-ACK; without waiting it would leave at once.
    assert synacks[0][0] >= 0.080, (synacks[0][0], res.describe())


@pytest.mark.parametrize("world,outcome,within", [
    ("upstream 203.0.113.14:80 refuse", "refused", "200ms"),      # REP 5
    ("upstream 203.0.113.14:80 unreachable", "refused", "200ms"),  # REP 4
    ("upstream 203.0.113.14:80 blackhole", "reset", "11s"),       # silence: connect timeout
    ("upstream 203.0.113.200:1080 refuse", "refused", "200ms"),   # the proxy refuses TCP
])
def test_each_failure_reaches_the_client_as_a_reset(scenario, world, outcome, within):
    res = scenario(f"""\
        proxy socks5 203.0.113.200:1080
        {world}
        at 0s client c tcp 203.0.113.14:80 send 100
        expect c {outcome} before {within}
        expect upstream-open 0
        run until 20s
    """, check=True)
    refused = res.events_of("tcp_refused")
    assert len(refused) == 1, res.describe()


def test_unreachable_is_reported_with_its_reason(scenario):
    res = scenario("""\
        proxy socks5 203.0.113.200:1080
        upstream 203.0.113.14:80 unreachable
        at 0s client c tcp 203.0.113.14:80 send 100
        expect c refused before 200ms
        run until 2s
    """, check=True)
    (ev,) = res.events_of("tcp_refused")
    assert "unreachable" in str(ev), ev


def test_wrong_password_is_an_auth_failure_not_a_hang(scenario):
    res = scenario("""\
        proxy socks5 203.0.113.200:1080 auth alice s3cret offer alice wrong
        at 0s client c tcp 203.0.113.11:7 send 10KB expect-echo
        expect c refused before 200ms
        run until 2s
    """, check=True)
    (ev,) = res.events_of("tcp_refused")
    assert "auth" in str(ev), ev


def test_data_is_spliced_byte_exactly_both_ways(scenario):
    scenario("""\
        proxy socks5 203.0.113.200:1080
        upstream 203.0.113.11:7 echo latency 3ms
        upstream 203.0.113.12:9 sink
        upstream 203.0.113.13:19 source 2MB
        at 0s client e tcp 203.0.113.11:7 send 512KB expect-echo
        at 0s client u tcp 203.0.113.12:9 send 2MB
        at 0s client d tcp 203.0.113.13:19 expect-bytes 2MB
        expect e done before 5s
        expect u done before 5s
        expect d done before 5s
        expect upstream 203.0.113.12:9 received 2MB intact
        expect invariants 0
        expect upstream-open 0
        run until 30s
    """, check=True)


def test_half_close_both_ways(scenario):
    # Client first: the client sends and half-closes; the echo keeps answering after the FIN
    # went upstream, and the client reads every byte before the engine's FIN.
    # Upstream first: the source ends (EOF) while the client is still sending; the client gets
    # the FIN after all the bytes and can still finish its upload.
    res = scenario("""\
        proxy socks5 203.0.113.200:1080
        upstream 203.0.113.11:7 echo latency 20ms
        upstream 203.0.113.13:19 source 64KB
        at 0s client first tcp 203.0.113.11:7 send 256KB expect-echo
        at 0s client upfirst tcp 203.0.113.13:19 send 1MB expect-bytes 64KB
        expect first done before 5s
        expect upfirst done before 5s
        expect upstream-open 0
        run until 30s
    """, check=True)
    assert not res.events_of("tcp_reset"), res.describe()


def test_reset_after_n_bytes_reaches_the_client_as_rst(scenario):
    scenario("""\
        proxy socks5 203.0.113.200:1080
        upstream 203.0.113.15:7 echo reset-after 100KB
        at 0s client c tcp 203.0.113.15:7 send 1MB expect-echo
        expect c reset before 5s
        expect upstream-open 0
        run until 10s
    """, check=True)
