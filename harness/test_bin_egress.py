"""Where the binary's upstream sockets leave from: the route to the proxy (bound to its
interface), a local proxy (unbound), --interface (pinned), --fwmark (used in the route query),
and a route through our own TUN (a loop: refused with exit 1)."""
import pytest

from test_bin_util import Netns, start_tun2sock, veth, wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def pair():
    a, b = Netns("ega"), Netns("egb")
    veth(a, "203.0.113.1/24", b, "203.0.113.2/24")
    yield a, b
    a.close()
    b.close()


def _start(ns, binary, tmp_path, proxy, *extra):
    return start_tun2sock(ns, binary, tmp_path / "tun2sock.log",
                          ["--device", "t2s0", "--proxy", proxy, "--address", "198.18.0.1/15",
                           *extra], ready_addr="198.18.0.1")


def test_remote_proxy_binds_upstream_to_the_route_interface(pair, tun2sock_bin, tmp_path):
    a, _ = pair
    t = _start(a, tun2sock_bin, tmp_path, "socks5://203.0.113.2:1080")
    assert "leaves through va: upstream sockets bound to va" in t.output(), t.output()


def test_local_proxy_leaves_upstream_unbound(pair, tun2sock_bin, tmp_path):
    a, _ = pair
    t = _start(a, tun2sock_bin, tmp_path, "socks5://203.0.113.1:1080")  # our own veth address
    assert "is on this host: sockets left unbound" in t.output(), t.output()
    assert "bound to" not in t.output()


def test_interface_option_pins_the_egress(pair, tun2sock_bin, tmp_path):
    a, _ = pair
    t = _start(a, tun2sock_bin, tmp_path, "socks5://127.0.0.1:1080", "--interface", "va")
    assert "pinned to va by --interface" in t.output(), t.output()


def test_missing_pinned_interface_exits_2(pair, tun2sock_bin, tmp_path):
    a, _ = pair
    p = a.run(str(tun2sock_bin), "--device", "t2s0", "--proxy", "socks5://203.0.113.2:1080",
              "--interface", "nosuchif0", check=False, timeout=10)
    assert p.returncode == 2, p.stderr
    assert "--interface nosuchif0" in p.stderr


def test_fwmark_is_used_to_find_the_route_to_the_proxy(pair, tun2sock_bin, tmp_path):
    a, _ = pair
    # The proxy's network is reachable only in table 100, for marked traffic.
    a.ip("route", "del", "203.0.113.0/24", "dev", "va")
    a.ip("route", "add", "203.0.113.0/24", "dev", "va", "table", "100")
    a.ip("rule", "add", "fwmark", "0x162", "lookup", "100", "pref", "100")
    t = _start(a, tun2sock_bin, tmp_path, "socks5://203.0.113.2:1080", "--fwmark", "0x162")
    assert "bound to va" in t.output(), t.output()
    t.stop()
    t2 = _start(a, tun2sock_bin, tmp_path, "socks5://203.0.113.2:1080")
    assert "no route to the proxy" in t2.output(), t2.output()


def test_route_to_the_proxy_through_our_own_tun_is_refused(pair, tun2sock_bin, tmp_path):
    a, _ = pair
    a.ip("tuntap", "add", "dev", "t2s0", "mode", "tun")
    a.ip("link", "set", "t2s0", "up")
    a.ip("route", "add", "192.0.2.0/24", "dev", "t2s0")
    p = a.run(str(tun2sock_bin), "--device", "t2s0", "--proxy", "socks5://192.0.2.10:1080",
              "--address", "198.18.0.1/15", check=False, timeout=10)
    assert p.returncode == 1, p.stderr
    assert "through our own TUN" in p.stderr and "--interface" in p.stderr, p.stderr
    assert "198.18.0.1" not in a.ip("addr", "show", "dev", "t2s0").stdout, \
        "the address added before the refusal must be taken back"


def test_proxy_name_is_resolved_at_start(pair, tun2sock_bin, tmp_path):
    a, _ = pair
    t = _start(a, tun2sock_bin, tmp_path, "socks5://localhost:1080")
    out = t.output()
    assert "localhost resolved to 127.0.0.1" in out or "localhost resolved to ::1" in out, out
    assert "is on this host: sockets left unbound" in out


def test_unresolvable_proxy_name_is_not_fatal(tun2sock_bin, tmp_path):
    """docs/proxies.md (issue 20): a name that does not resolve at start no longer exits 1:
    tun2sock comes up with the proxy UNRESOLVED and keeps retrying (test_e2e_proxy_names.py
    shows the rest)."""
    with Netns("nodns") as ns:  # no route anywhere: the resolver fails at once
        t = start_tun2sock(ns, tun2sock_bin, tmp_path / "t.log",
                           ["--device", "t2s0", "--proxy", "socks5://no-such-proxy.invalid:1080"])
        wait_for(lambda: "proxy no-such-proxy.invalid:1080: cannot resolve" in t.output(),
                 "the first failed lookup", proc=t)
        out = t.output()
        assert "cannot resolve 'no-such-proxy.invalid'" in out and "starting anyway" in out, out
        assert t.alive()
        assert t.stop() == 0, t.output()
