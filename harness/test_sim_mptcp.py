"""Multipath TCP in the simulator (issue 18): the scenarios in harness/scenarios/mptcp-*.scn.

`engine mptcp` opens every upstream stream with MPTCP; `proxy socks5 ADDR:PORT mptcp` makes the
simulated proxy speak it (docs/scenarios.md, "Multipath TCP"). A multipath stream keeps
flowing while any path reaches the proxy, with a 200 ms stall when its own path dies; a stream
to a proxy without MPTCP falls back and behaves as plain TCP. Each scenario states its
expectations (resets, survivors, bytes intact); here every run is also checked for determinism
(the same seed gives the same event log, byte for byte), for what the upstream reported to the
engine (up_mptcp) and for the stall the surviving streams saw.
"""
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def run_twice(sim, name, *args):
    a = sim("--scenario", SCENARIOS / f"{name}.scn", *args, check=False, name="a")
    assert a.returncode == 0 and "0 failed" in a.stdout, a.describe()
    b = sim("--scenario", SCENARIOS / f"{name}.scn", *args, check=False, name="b")
    assert a.events_out.read_bytes() == b.events_out.read_bytes(), \
        f"{name}: two runs with the same seed differ"
    return a


def policy_resets(res):
    return [e for e in res.events
            if e["event"] == "tcp_reset" and e.get("err") == "network changed"]


def reports(res, path):
    return {e["id"] for e in res.events_of("up_mptcp") if e["path"] == path}


def test_wifi_to_ethernet_with_a_multipath_proxy_every_flow_survives(sim):
    res = run_twice(sim, "mptcp-wifi-to-ethernet")
    assert policy_resets(res) == []
    assert [d["flows_reset"] for d in res.events_of("net_decision")] == [0]
    assert len(reports(res, "multipath")) == 3 and reports(res, "fallback") == set()
    # Both running streams stalled when wlan0 died and moved to eth0 200 ms later.
    stalls = {e["id"]: e["t"] for e in res.events_of("up_mptcp_stall")}
    switches = {e["id"]: e["t"] for e in res.events_of("up_mptcp_switch")}
    assert set(stalls) == set(switches) == {1, 2}, (stalls, switches)
    assert all(switches[i] - stalls[i] == 200_000_000 for i in stalls)
    assert all(e["dev"] == "eth0" for e in res.events_of("up_mptcp_switch"))
    for c in ("c1", "c2"):
        assert f"client {c}: done" in res.stdout, res.stdout


def test_wifi_to_ethernet_with_a_plain_proxy_falls_back_and_resets_as_today(sim):
    res = run_twice(sim, "mptcp-plain-proxy")
    assert len(policy_resets(res)) == 2
    assert reports(res, "multipath") == set() and len(reports(res, "fallback")) == 3
    assert res.events_of("up_mptcp_switch") == []


def test_only_path_down_resets_the_multipath_flow(sim):
    res = run_twice(sim, "mptcp-only-path-down")
    assert len(policy_resets(res)) == 1
    assert res.events_of("up_mptcp_switch") == []  # no path to move to


def test_flap_back_resets_nothing_and_counts_no_survivor(sim):
    res = run_twice(sim, "mptcp-flap-back")
    assert policy_resets(res) == []
    assert res.events_of("up_mptcp_stall") == []


def test_the_scenarios_hold_for_other_seeds(sim):
    for name in ("mptcp-wifi-to-ethernet", "mptcp-plain-proxy", "mptcp-only-path-down",
                 "mptcp-flap-back"):
        for seed in (1, 2, 3):
            r = sim("--scenario", SCENARIOS / f"{name}.scn", "--seed", seed, check=False,
                    name=f"{name}-{seed}")
            assert r.returncode == 0 and "0 failed" in r.stdout, r.describe()
