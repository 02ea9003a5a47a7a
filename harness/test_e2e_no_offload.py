"""A TUN without offloads (--no-offload: no IFF_VNET_HDR, as Android's VpnService fd, a utun,
most containers): every packet is a read or a write of its own, batched through io_uring when
the kernel allows it (src/os/tun_linux_uring.c) and plain read/writev otherwise
(TUN2SOCK_IO_URING=0, the fallback). Both paths carry 20 MB each way over IPv4 and IPv6 with
sha256 checked, and many small round trips (HTTP requests on fresh connections: SYNs, small
segments, FINs) through dante. So does a run where io_uring starts failing in the middle of
the first transfer (TUN2SOCK_TEST_IO_URING_FAIL: io_uring_enter refusing, or every read or
write completing with EOPNOTSUPP): the TUN falls back to plain I/O at once, says so in one
warning, and no transfer breaks.
"""
import pytest

from test_bin_util import (E2E_HTTP_PORT, E2E_ORIGIN4, E2E_ORIGIN6, E2E_PROXY4, E2E_PROXY6,
                           E2E_SOCKS_PORT, E2EWorld, need, write_random)

pytestmark = [pytest.mark.root]

SIZE = 20 * 1000 * 1000


@pytest.fixture(scope="module")
def www(tmp_path_factory):
    d = tmp_path_factory.mktemp("www")
    digest = write_random(d / "big.bin", SIZE)
    (d / "small.txt").write_text("y" * 3000)
    yield d, digest
    (d / "big.bin").unlink()


@pytest.fixture
def world(tmp_path):
    need("danted", "curl")
    w = E2EWorld(tmp_path, "nooff")
    yield w
    w.close()


FALLBACK = "TUN I/O falls back to plain read/write"


@pytest.mark.parametrize("uring", ["io_uring", "plain", "submit:1000", "reads:1000",
                                   "writes:1000"])
def test_no_offload_tun_carries_data_both_ways(world, www, tun2sock_bin, uring, monkeypatch):
    d, digest = www
    if uring == "plain":
        monkeypatch.setenv("TUN2SOCK_IO_URING", "0")
    elif ":" in uring:
        monkeypatch.setenv("TUN2SOCK_TEST_IO_URING_FAIL", uring)
    world.start_origin(d)
    world.start_dante(internals=(E2E_PROXY4, E2E_PROXY6))
    t = world.start_tun2sock(tun2sock_bin, f"socks5://{E2E_PROXY4}:{E2E_SOCKS_PORT}",
                             "--no-offload", "--log-level", "info")
    for host in (E2E_ORIGIN4, f"[{E2E_ORIGIN6}]"):
        url = f"http://{host}:{E2E_HTTP_PORT}"
        r = world.c.run("sh", "-c", f"curl -sS --max-time 60 {url}/big.bin | sha256sum",
                        check=False, timeout=70)
        assert r.returncode == 0 and r.stdout.split()[0] == digest, \
            f"download: {r.stdout}{r.stderr}\n{world.log_tail()}"
        r = world.c.run("curl", "-sS", "--max-time", "60", "-T", str(d / "big.bin"),
                        f"{url}/up", check=False, timeout=70)
        assert r.returncode == 0 and r.stdout.strip() == f"{SIZE} {digest}", \
            f"upload: {r.stdout}{r.stderr}\n{world.log_tail()}"
        # Small exchanges on fresh connections: every packet of a handshake, a request, an
        # answer and a close must leave (queued writes are flushed after each callback).
        for _ in range(20):
            r = world.c.run("curl", "-sS", "--max-time", "10", f"{url}/small.txt",
                            check=False, timeout=20)
            assert r.returncode == 0 and r.stdout == "y" * 3000, r.stderr + world.log_tail()
    s = world.stats()
    assert s["bytes_down"] >= 2 * SIZE and s["bytes_up"] >= 2 * SIZE, s
    batched = "through io_uring" in t.output()
    assert batched == (uring != "plain"), t.output()[-3000:]
    assert t.output().count(FALLBACK) == (1 if ":" in uring else 0), t.output()[-3000:]
    assert t.alive()
