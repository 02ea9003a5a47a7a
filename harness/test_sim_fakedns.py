"""--fake-dns in the simulator: the scenarios in harness/scenarios/fakedns-*.scn
(docs/scenarios.md, "Fake-IP DNS").

A client host looks a name up (an A query over UDP to port 53, answered by the engine from its
fake-IP table) and connects to the pool address it got; the engine asks the simulated proxy for
the name (SOCKS5 ATYP 3). The proxy is `names-only`: it refuses every CONNECT by address
(REP 8), so a flow that reached the destination was carried by name, and its side resolves the
name (`proxy host`); UDP by name goes the same way through UDP ASSOCIATE, replies delivered
from the pool address. Besides each scenario's own expectations, every run is checked here for:
  - determinism: the same seed gives the same event log, byte for byte (its digest);
  - the name in the proxy's requests, read from the event log (`proxy_name` events);
  - a few other seeds: the expectations hold for them too.
"""
import hashlib
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def run(sim, name, *args, run_name="run"):
    res = sim("--scenario", SCENARIOS / f"{name}.scn", *args, check=False, name=run_name)
    assert res.returncode == 0, res.describe()
    assert "0 failed" in res.stdout, res.describe()
    return res


def digest(res):
    return hashlib.sha256(res.events_out.read_bytes()).hexdigest()


def run_twice(sim, name):
    a = run(sim, name, run_name="a")
    b = run(sim, name, run_name="b")
    assert digest(a) == digest(b), f"{name}: two runs with the same seed differ"
    return a


def events(res, kind):
    return [e for e in res.events if e["event"] == kind]


def test_a_client_resolves_and_connects_by_name_through_a_names_only_proxy(sim):
    res = run_twice(sim, "fakedns-connect-by-name")
    names = events(res, "proxy_name")
    assert [(e["name"], e["port"], e["resolved"]) for e in names] == \
        [("www.example", 80, "203.0.113.10:80")] * 2, names
    # The lookups were answered by the engine (nothing left for a resolver upstream) and the
    # only request by address was refused with REP 8.
    resolved = events(res, "client_resolved")
    assert [e["addr"] for e in resolved] == ["198.19.0.1", "198.19.0.1"], resolved
    assert not events(res, "proxy_udp") and not events(res, "proxy_udp_associate")
    reqs = events(res, "proxy_request")
    assert [r["rep"] for r in reqs if r["target"] == "203.0.113.11:80"] == [8], reqs


def test_a_recycled_pool_address_gets_an_rst(sim):
    res = run_twice(sim, "fakedns-recycled")
    stale = [e for e in events(res, "drop") if e.get("reason") == "fake_dns_stale"]
    assert len(stale) == 1, stale
    # Nothing went to the proxy for the stale address: three names, three CONNECTs.
    assert len(events(res, "proxy_name")) == 3


def test_the_mapping_survives_a_wifi_to_ethernet_change(sim):
    res = run_twice(sim, "fakedns-wifi-to-ethernet")
    change = next(e["t"] for e in events(res, "monitor"))
    after = [e for e in events(res, "proxy_name") if e["t"] > change]
    assert [e["name"] for e in after] == ["big.example", "small.example"], after
    # Only two lookups in the whole run: the address from before the change needed none.
    assert len(events(res, "client_lookup")) == 2


def test_udp_by_name_goes_to_the_name_and_replies_come_from_the_pool_address(sim):
    res = run_twice(sim, "fakedns-udp-by-name")
    relayed = events(res, "proxy_udp")
    assert [(e.get("name"), e["target"]) for e in relayed] == \
        [("quic.example", "203.0.113.20:443")] * 3, relayed
    got = events(res, "client_recv")
    assert [e["from"] for e in got] == ["198.19.0.1:443"] * 3, got


def test_other_seeds_hold_too(sim):
    for name in ("fakedns-connect-by-name", "fakedns-recycled", "fakedns-wifi-to-ethernet",
                 "fakedns-udp-by-name"):
        for seed in (1, 2, 99):
            run(sim, name, "--seed", seed, run_name=f"{name}-{seed}")


def test_fake_dns_lines_are_checked(scenario):
    bad = {
        "fake-dns size 0\n": "fake-dns size: 1..",
        "fake-dns pool 198.19.0.0/31\n": "fake-dns: the pools or the size do not fit",
        "fake-dns bogus\n": "fake-dns: unknown option 'bogus'",
        "proxy host 192.0.2.1 192.0.2.1\n": "proxy host: expected a domain name",
        "at 0 client c1 tcp www.example:0\n": "client destination: expected NAME:PORT",
        "expect fake-dns bogus 1\n": "expect fake-dns: expected entries",
        "expect proxy nothing\n": "expect proxy: expected 'name NAME [OP] N'",
    }
    for i, (text, msg) in enumerate(bad.items()):
        res = scenario(text, name=f"bad{i}")
        assert res.returncode == 2 and msg in res.stderr, (text, res.describe())
