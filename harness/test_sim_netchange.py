"""Network changes in the simulator: the scenarios in harness/scenarios/netchange-*.scn.

Each scenario scripts a change of the simulated host's network (links, addresses, routes,
suspend/resume; docs/scenarios.md "The network") under running TCP transfers and states what
must follow, in virtual time: every affected flow gets its RST within debounce + 50 ms, no other
flow is touched, UDP sessions are gone, the egress is the new one, and a new flow succeeds
through it (`expect upstream TARGET via IF`). The simulated upstream stalls a stream whose
interface went down or lost its address, as a real socket would, so a missing reset shows up
as a client that never finishes.

Beyond the scenarios' own expectations, every run is checked here for:
  - determinism: the same seed gives the same event log, byte for byte;
  - the reset deadline, from the event log: each RST the policy sends follows the monitor
    event that caused it by at most debounce + 50 ms;
  - other seeds: the expectations hold for a few other seeds too.
"""
import json
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
DEBOUNCE_NS = 500_000_000
SLACK_NS = 50_000_000


def run_scenario(sim, name, *args, run_name="run"):
    return sim("--scenario", SCENARIOS / f"{name}.scn", *args, check=False, name=run_name)


def assert_passes(res):
    assert res.returncode == 0, res.describe()
    assert "0 failed" in res.stdout, res.describe()


def policy_resets(res):
    """(time, flow) of each RST the network-change policy sent."""
    return [(e["t"], e.get("flow")) for e in res.events
            if e["event"] == "tcp_reset" and e.get("err") == "network changed"]


def check_reset_deadline(res):
    """Each policy reset follows its monitor event by at most debounce + 50 ms."""
    monitor_times = [e["t"] for e in res.events if e["event"] == "monitor"]
    for t, flow in policy_resets(res):
        before = [m for m in monitor_times if m <= t]
        assert before, f"flow {flow} reset at {t} ns with no monitor event before it"
        assert t - before[-1] <= DEBOUNCE_NS + SLACK_NS, \
            f"flow {flow} reset {(t - before[-1]) / 1e6:.1f} ms after the last monitor event"


def run_and_check(sim, name):
    a = run_scenario(sim, name, run_name="a")
    assert_passes(a)
    check_reset_deadline(a)
    b = run_scenario(sim, name, run_name="b")
    assert a.events_out.read_bytes() == b.events_out.read_bytes(), \
        f"{name}: two runs with the same seed differ"
    return a


def decisions(res):
    return [e for e in res.events if e["event"] == "net_decision"]


def test_wifi_to_ethernet_resets_every_flow_on_wifi_and_moves_the_egress(sim):
    res = run_and_check(sim, "netchange-wifi-to-ethernet")
    assert len(policy_resets(res)) == 2
    egress = [e for e in res.events if e["event"] == "egress"]
    assert egress and egress[-1]["dev"] == "eth0"


def test_link_down_resets_stalled_flow_refuses_while_offline_and_recovers(sim):
    res = run_and_check(sim, "netchange-link-down-up")
    states = [e["state"] for e in res.events if e["event"] == "net_state"]
    assert "NO_ROUTE" in states and states[-1] == "UP", states


def test_egress_address_removed_resets_its_flows(sim):
    res = run_and_check(sim, "netchange-addr-removed")
    opens = [e for e in res.events if e["event"] == "up_open" and "src" in e]
    assert opens[0]["src"] == "198.51.100.10" and opens[-1]["src"] == "198.51.100.11", opens


def test_route_flap_ending_where_it_started_resets_nothing(sim):
    res = run_and_check(sim, "netchange-flap-back")
    assert policy_resets(res) == []


def test_route_flap_ending_elsewhere_resets_each_flow_once(sim):
    res = run_and_check(sim, "netchange-flap-elsewhere")
    resets = policy_resets(res)
    assert len(resets) == 2 and len({f for _, f in resets}) == 2
    assert len({t for t, _ in resets}) == 1, "both resets come from one decision"


def test_offline_then_a_route_through_another_interface(sim):
    run_and_check(sim, "netchange-offline-and-back")


def test_suspend_30s_resets_every_flow_at_resume(sim):
    res = run_and_check(sim, "netchange-suspend-30s")
    resumed = [e for e in res.events if e["event"] == "monitor" and e.get("kind") == "resumed"]
    assert [e["slept_ns"] for e in resumed] == [30_000_000_000]


def test_suspend_2h_with_wifi_down_and_up_around_it(sim):
    res = run_and_check(sim, "netchange-suspend-2h")
    resumed = [e for e in res.events if e["event"] == "monitor" and e.get("kind") == "resumed"]
    assert [e["slept_ns"] for e in resumed] == [7200_000_000_000]


def test_ipv6_only_uplink_switch(sim):
    run_and_check(sim, "netchange-ipv6-only")


def test_proxy_over_lan_is_untouched_when_the_default_route_moves(sim):
    res = run_and_check(sim, "netchange-lan-proxy")
    assert policy_resets(res) == []


def test_local_proxy_default_interface_change_resets_every_flow(sim):
    res = run_and_check(sim, "netchange-local-proxy")
    assert len(policy_resets(res)) == 2


def test_policy_reset_all(sim):
    run_and_check(sim, "netchange-policy-reset-all")


def test_policy_none_keeps_flows_but_moves_the_egress(sim):
    res = run_and_check(sim, "netchange-policy-none")
    assert policy_resets(res) == []


def test_udp_session_flushed_and_reopened_through_the_new_uplink(sim):
    res = run_and_check(sim, "netchange-udp-wifi-to-ethernet")
    relays = [e["dev"] for e in res.events if e["event"] == "up_dgram_open"]
    assert relays[0] == "wlan0" and relays[-1] == "eth0", relays
    flushed = [e for e in res.events
               if e["event"] == "udp_closed" and e.get("err") == "network changed"]
    assert len(flushed) == 1
    assert flushed[0]["t"] <= 1_000_000_000 + DEBOUNCE_NS + SLACK_NS


@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIOS.glob("netchange-*.scn")))
@pytest.mark.parametrize("seed", [2, 3])
def test_expectations_hold_for_other_seeds(sim, name, seed):
    res = run_scenario(sim, name, "--seed", seed)
    assert_passes(res)
    check_reset_deadline(res)


def test_no_network_lines_means_no_monitor_and_no_decisions(sim, tmp_path):
    """A scenario without link lines has no simulated network: no monitor events, no egress."""
    path = tmp_path / "plain.scn"
    path.write_text("seed 1\nat 0 client c1 tcp 203.0.113.10:80 send 1KB expect-echo\n"
                    "expect c1 done before 1s\n")
    res = sim("--scenario", path, name="plain")
    assert not [e for e in res.events if e["event"] in ("monitor", "net_decision", "egress")]
    assert all("dev" not in e for e in res.events if e["event"] == "up_open")
