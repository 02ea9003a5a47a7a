"""Shipping: `cmake --install` puts the binary, the man page, the systemd unit, the embedding
header, libtun2sock.so (only tun2sock_* exported), tun2sock.pc and the static libraries in place;
the example builds in a fresh directory against the installed .so found through pkg-config; the embedding API works on a TUN fd the program owns; the
binary runs as an unprivileged user holding CAP_NET_ADMIN and drops it after setup."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from test_bin_util import Netns, have, wait_for, link_exists

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    build = Path(os.environ.get("T2S_BUILD_DIR", ROOT / "build"))
    if not (build / "tun2sock").exists():
        pytest.fail(f"{build}/tun2sock not built")
    prefix = tmp_path_factory.mktemp("prefix")
    p = subprocess.run(["cmake", "--install", str(build), "--prefix", str(prefix)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return prefix


def test_cmake_install_puts_binary_man_page_and_unit_in_place(installed):
    for rel in ("bin/tun2sock", "share/man/man8/tun2sock.8", "lib/systemd/system/tun2sock.service",
                "include/tun2sock.h", "share/doc/tun2sock/cli.md",
                "share/doc/tun2sock/config.md", "share/doc/tun2sock/tun2sock.yaml",
                "share/doc/tun2sock/embedding.md"):
        assert (installed / rel).is_file(), f"{rel} not installed"
    assert os.access(installed / "bin/tun2sock", os.X_OK)
    p = subprocess.run([str(installed / "bin/tun2sock"), "--version"], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0 and p.stdout.startswith("tun2sock ")


def test_installed_unit_runs_the_installed_binary_unprivileged(installed):
    unit = (installed / "lib/systemd/system/tun2sock.service").read_text()
    m = re.search(r"^ExecStart=(\S+)", unit, re.M)
    assert m and m.group(1) == str(installed / "bin" / "tun2sock"), unit
    assert "AmbientCapabilities=CAP_NET_ADMIN" in unit
    # systemctl reload: SIGHUP re-reads --config (without --config it would stop tun2sock).
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit and "--config " in unit, unit
    assert "DynamicUser=yes" in unit or "User=" in unit
    if have("systemd-analyze"):
        # Only syntax problems count (the binary path and credentials may not exist here).
        p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            str(installed / "lib/systemd/system/tun2sock.service")],
                           capture_output=True, text=True, timeout=30)
        assert "Unknown key" not in p.stderr and "Invalid" not in p.stderr, p.stderr


def test_man_page_renders_without_warnings(installed):
    if not have("groff"):
        pytest.skip("groff not installed")
    p = subprocess.run(["groff", "-man", "-ww", "-z", str(installed / "share/man/man8/tun2sock.8")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stderr == "", p.stderr


def _compile_example_static(installed, out: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc or not have("pkg-config"):
        pytest.skip("no C compiler or pkg-config")
    # The archives' own dependencies, as tun2sock.pc names them (liburing when built with it).
    reqs = subprocess.run(["pkg-config", "--print-requires-private", "tun2sock"],
                          capture_output=True, text=True, check=True,
                          env=_pc_env(installed)).stdout.split()
    assert {"libevent", "libmnl"} <= set(reqs), reqs
    libs = subprocess.run(["pkg-config", "--libs", *reqs], capture_output=True,
                          text=True, check=True).stdout.split()
    example = installed / "share/doc/tun2sock/examples/embed_example.c"
    assert example.is_file(), "the embedding example is not installed"
    p = subprocess.run([cc, "-std=c17", "-Wall", "-Wextra", "-Werror", str(example), "-o",
                        str(out), f"-I{installed}/include", f"-L{installed}/lib", "-lt2s_os",
                        "-lt2s_rec", "-lt2s_core", *libs, "-pthread"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return out


def _pc_env(installed) -> dict:
    env = dict(os.environ)
    env["PKG_CONFIG_PATH"] = str(installed / "lib/pkgconfig")
    return env


def _build_example_shared(installed, tmp: Path) -> Path:
    """The example as an outside program builds it: a fresh CMake build directory of the
    installed examples, the library found through pkg-config (tun2sock.pc), linked to the .so."""
    if not have("pkg-config"):
        pytest.skip("pkg-config not installed")
    src = tmp / "examples"
    shutil.copytree(installed / "share/doc/tun2sock/examples", src)
    build = tmp / "example-build"
    env = _pc_env(installed)
    p = subprocess.run(["cmake", "-S", str(src), "-B", str(build)], capture_output=True,
                       text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    return build / "embed_example"


def test_shared_library_and_pkg_config_installed(installed):
    so = installed / "lib/libtun2sock.so"
    assert so.is_symlink() and so.resolve().is_file(), "libtun2sock.so not installed"
    assert (installed / "lib/libtun2sock.so.1").exists()
    for a in ("libt2s_os.a", "libt2s_rec.a", "libt2s_core.a"):
        assert (installed / "lib" / a).is_file(), f"{a}: the static archives stay available"
    p = subprocess.run(["objdump", "-p", str(so)], capture_output=True, text=True, check=True)
    assert re.search(r"SONAME\s+libtun2sock\.so\.1\b", p.stdout), p.stdout
    p = subprocess.run(["nm", "-D", "--defined-only", str(so)], capture_output=True, text=True,
                       check=True)
    syms = [line.split()[-1] for line in p.stdout.splitlines() if line.strip()]
    assert "tun2sock_new_v" in syms and all(s.startswith("tun2sock_") for s in syms), syms
    if not have("pkg-config"):
        pytest.skip("pkg-config not installed")
    env = _pc_env(installed)
    p = subprocess.run(["pkg-config", "--cflags", "--libs", "tun2sock"], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert f"-I{installed}/include" in p.stdout and f"-L{installed}/lib" in p.stdout
    assert "-ltun2sock" in p.stdout.split()
    p = subprocess.run(["pkg-config", "--modversion", "tun2sock"], capture_output=True,
                       text=True, env=env)
    assert p.stdout.strip() == subprocess.run(
        [str(installed / "bin/tun2sock"), "--version"], capture_output=True,
        text=True).stdout.split()[1], p.stdout
    # The header points at nothing that is not installed.
    hdr = (installed / "include/tun2sock.h").read_text()
    assert not re.search(r"src/|engine\.h", hdr), "tun2sock.h names an uninstalled header"


def test_example_builds_in_fresh_dir_against_installed_so(installed, tmp_path):
    exe = _build_example_shared(installed, tmp_path)
    p = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, check=True)
    m = re.search(r"libtun2sock\.so\.1 => (\S+)", p.stdout)
    assert m and Path(m.group(1)).resolve() == (installed / "lib/libtun2sock.so.1").resolve(), \
        p.stdout
    assert "libt2s" not in p.stdout
    # The static archives still make the same program.
    _compile_example_static(installed, tmp_path / "embed-static")


@pytest.mark.root
def test_embedding_api_serves_a_tun_the_program_owns(installed, tmp_path):
    if not have("ping"):
        pytest.skip("ping not installed (iputils-ping)")
    exe = _build_example_shared(installed, tmp_path)
    with Netns("embed") as ns:
        proc = ns.start([str(exe), "t2se0", "socks5://127.0.0.1:1080"], tmp_path / "embed.log")
        wait_for(lambda: link_exists(ns, "t2se0"), "t2se0 created by the embedding program",
                 proc=proc)
        wait_for(lambda: "tun2sock running" in proc.output(), "the loop", proc=proc)
        ns.ip("addr", "add", "198.18.0.1/15", "dev", "t2se0")
        ns.ip("link", "set", "t2se0", "up")
        p = ns.run("ping", "-c", "2", "-i", "0.2", "-W", "2", "198.18.4.4", check=False,
                   timeout=20)
        assert "2 received" in p.stdout, p.stdout + proc.output()
        # The listener: the proxy is local, so sockets are unbound from the start; a new
        # uplink with a default route is a burst of events, decided after the debounce.
        assert "listener: default interface none (0)" in proc.output(), proc.output()
        ns.ip("link", "add", "d0", "type", "veth", "peer", "name", "d1")
        ns.ip("addr", "add", "192.0.2.5/24", "dev", "d0")
        ns.ip("link", "set", "d1", "up")
        ns.ip("link", "set", "d0", "up")
        ns.ip("route", "add", "default", "via", "192.0.2.1", "dev", "d0")
        wait_for(lambda: "listener: routes changed" in proc.output(), "on_routes_changed",
                 proc=proc)
        assert proc.stop() == 0, proc.output()
        assert "icmp echo replies 2" in proc.output()


def _caps(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cap"):
            k, v = line.split(":")
            out[k] = int(v.strip(), 16)
    return out


@pytest.mark.root
def test_runs_as_nobody_with_cap_net_admin_and_drops_it_after_setup(tun2sock_bin, tmp_path):
    if not have("setpriv") or not have("ping") or not have("unshare"):
        pytest.skip("setpriv, unshare or ping not installed")
    d = Path(tempfile.mkdtemp(prefix="t2sb-bin-"))
    os.chmod(d, 0o755)
    binary = d / "tun2sock"
    shutil.copy(tun2sock_bin, binary)
    os.chmod(binary, 0o755)
    try:
        with Netns("caps") as ns:
            # A private mount namespace with a /dev/net/tun that everyone may open (the usual
            # mode 0666: some hosts have 0600), then nobody with ambient CAP_NET_ADMIN.
            t = ns.start(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          "mount -t tmpfs -o mode=0755 none /dev/net && "
                          "mknod -m 0666 /dev/net/tun c 10 200 && exec \"$@\"", "sh",
                          "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          "--inh-caps=+net_admin,+net_raw", "--ambient-caps=+net_admin,+net_raw",
                          "--", str(binary), "--device", "t2s0", "--proxy",
                          "socks5://127.0.0.1:1080", "--address", "198.18.0.1/15"],
                         tmp_path / "caps.log")
            wait_for(lambda: "tun2sock running" in t.output(), "setup as nobody", proc=t)
            # sh and setpriv exec: the PID we started is tun2sock's.
            caps = _caps(t.pid)
            assert caps["CapEff"] == 0 and caps["CapPrm"] == 0 and caps["CapAmb"] == 0, caps
            assert Path(f"/proc/{t.pid}/status").read_text().count("NoNewPrivs:\t1") == 1
            p = ns.run("ping", "-c", "2", "-i", "0.2", "-W", "2", "198.18.4.4", check=False,
                       timeout=20)
            assert "2 received" in p.stdout, p.stdout + t.output()
            t.signal(signal.SIGTERM)
            t.p.wait(timeout=5)
            assert t.p.returncode == 0, t.output()
            assert not link_exists(ns, "t2s0")
    finally:
        shutil.rmtree(d, ignore_errors=True)
