"""The command line of the real binary: help, version, bad options (exit 2, naming the
option), and the messages for a missing privilege or a missing /dev/net/tun (exit 1)."""
import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from test_bin_util import Netns, have

OPTIONS = ["--device", "--proxy", "--address", "--mtu", "--interface", "--fwmark",
           "--tcp-connect-timeout", "--udp-timeout", "--dns-timeout", "--log-level",
           "--metrics", "--proxy-password-file", "--memory-budget", "--max-tcp-flows",
           "--max-pending-syn", "--max-udp-sessions", "--icmp-unreachable", "--socks5-pipeline",
           "--txqueuelen", "--no-logind", "--tcp-sndbuf", "--tcp-rcvbuf",
           "--fake-dns", "--fake-dns-pool", "--fake-dns-exclude", "--fake-dns-size",
           "--fake-dns-state", "--mptcp", "--config", "--help", "--version"]

GOOD = ["--device", "t2s0", "--proxy", "socks5://127.0.0.1:1080"]


def run(binary, *args, env=None, timeout=10):
    return subprocess.run([str(binary), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_help_lists_every_option(tun2sock_bin):
    p = run(tun2sock_bin, "--help")
    assert p.returncode == 0, p.stderr
    for opt in OPTIONS:
        assert opt in p.stdout, f"--help does not mention {opt}:\n{p.stdout}"
    assert "TUN2SOCK_PROXY_PASSWORD" in p.stdout


def test_help_says_what_sighup_does(tun2sock_bin):
    # SIGHUP reloads with --config and stops without it (docs/cli.md, docs/config.md).
    p = run(tun2sock_bin, "--help")
    assert "SIGHUP reloads --config FILE" in p.stdout and "without --config" in p.stdout


def test_a_bad_config_file_exits_2_naming_file_line_and_key(tun2sock_bin, tmp_path):
    conf = tmp_path / "t.yaml"
    conf.write_text("device: t2s0\nproxy: socks5://127.0.0.1:1080\nmtu: 10\n")
    p = run(tun2sock_bin, "--config", str(conf))
    assert p.returncode == 2 and f"{conf}:3: mtu: '10'" in p.stderr, p.stderr
    conf.write_text("device: t2s0\nproxy: socks5://127.0.0.1:1080\nbogus: 1\n")
    p = run(tun2sock_bin, "--config", str(conf))
    assert p.returncode == 2 and f"{conf}:3: unknown key 'bogus'" in p.stderr, p.stderr
    # The command line overrides the file: a good --mtu does not rescue a bad file's value,
    # but a file's value can be replaced when the file is valid.
    conf.write_text("device: t2s0\nproxy: socks5://127.0.0.1:1080\nmtu: 9000\n")
    p = run(tun2sock_bin, "--config", str(conf), "--mtu", "10")
    assert p.returncode == 2 and "--mtu '10'" in p.stderr, p.stderr
    p = run(tun2sock_bin, "--config", str(tmp_path / "missing.yaml"))
    assert p.returncode == 2 and "missing.yaml" in p.stderr, p.stderr


def test_version_prints_a_version(tun2sock_bin):
    p = run(tun2sock_bin, "--version")
    assert p.returncode == 0
    assert p.stdout.startswith("tun2sock ") and any(c.isdigit() for c in p.stdout)


def test_single_dash_long_options_work_like_tun2socks(tun2sock_bin):
    p = run(tun2sock_bin, "-help")
    assert p.returncode == 0 and "--proxy" in p.stdout


@pytest.mark.parametrize("args,named", [
    ([], "--device"),
    (["--device", "t2s0"], "--proxy"),
    (["--proxy", "socks5://127.0.0.1:1080"], "--device"),
    (GOOD + ["--bogus"], "--bogus"),
    (GOOD + ["stray"], "stray"),
    (["--device", "t2s0", "--proxy", "http://127.0.0.1:3128"], "--proxy"),
    (["--device", "t2s0", "--proxy", "socks5://::1:1080"], "--proxy"),
    (["--device", "t2s0", "--proxy", "socks5://127.0.0.1:99999"], "--proxy"),
    (["--device", "t2s0", "--proxy", "socks5://"], "--proxy"),
    (["--device", "a/b"] + GOOD[2:], "--device"),
    (["--device", "averyveryverylongname"] + GOOD[2:], "--device"),
    (["--device", "fd://x"] + GOOD[2:], "--device"),
    (GOOD + ["--address", "198.18.0.1/33"], "--address"),
    (GOOD + ["--fake-dns", "--fake-dns-pool", "198.19.0.0/31"], "--fake-dns-pool"),
    (GOOD + ["--fake-dns-size", "10"], "--fake-dns-size"),
    (GOOD + ["--address", "not-an-ip"], "--address"),
    (GOOD + ["--mtu", "100"], "--mtu"),
    (GOOD + ["--txqueuelen", "x"], "--txqueuelen"),
    (GOOD + ["--txqueuelen", "-1"], "--txqueuelen"),
    (GOOD + ["--txqueuelen", "1000001"], "--txqueuelen"),
    (["--device", "fd://3", "--proxy", "socks5://127.0.0.1:1080", "--txqueuelen", "1000"],
     "--txqueuelen"),
    (GOOD + ["--memory-budget", "12"], "--memory-budget"),
    (GOOD + ["--memory-budget", "1T"], "--memory-budget"),
    (GOOD + ["--tcp-sndbuf", "1K"], "--tcp-sndbuf"),
    (GOOD + ["--tcp-rcvbuf", "128M"], "--tcp-rcvbuf"),
    (GOOD + ["--max-tcp-flows", "0"], "--max-tcp-flows"),
    (GOOD + ["--max-udp-sessions", "x"], "--max-udp-sessions"),
    (GOOD + ["--mtu", "1000", "--address", "fd00:18::1/64"], "--mtu"),
    (GOOD + ["--fwmark", "0x1g"], "--fwmark"),
    (GOOD + ["--interface", "t2s0"], "--interface"),
    (GOOD + ["--tcp-connect-timeout", "10parsecs"], "--tcp-connect-timeout"),
    (GOOD + ["--udp-timeout", "0s"], "--udp-timeout"),
    (GOOD + ["--dns-timeout", "-1s"], "--dns-timeout"),
    (GOOD + ["--log-level", "chatty"], "--log-level"),
    (GOOD + ["--metrics", "127.0.0.1"], "--metrics"),
    (GOOD + ["--metrics", "[::1:9100"], "--metrics"),
    (GOOD + ["--proxy-password-file"], "--proxy-password-file"),
    (GOOD + ["--mtu"], "--mtu"),
])
def test_bad_option_exits_2_naming_the_option(tun2sock_bin, args, named):
    p = run(tun2sock_bin, *args)
    assert p.returncode == 2, f"exit {p.returncode}\n{p.stderr}"
    assert named in p.stderr, f"the message does not name {named}:\n{p.stderr}"
    assert p.stdout == ""


def test_password_file_that_does_not_exist_exits_2(tun2sock_bin, tmp_path):
    p = run(tun2sock_bin, "--device", "t2s0", "--proxy", "socks5://alice@127.0.0.1:1080",
            "--proxy-password-file", str(tmp_path / "absent"))
    assert p.returncode == 2
    assert "--proxy-password-file" in p.stderr and "No such file" in p.stderr


def test_password_file_without_user_exits_2(tun2sock_bin, tmp_path):
    f = tmp_path / "pw"
    f.write_text("s3cret\n")
    p = run(tun2sock_bin, *GOOD, "--proxy-password-file", str(f))
    assert p.returncode == 2 and "user name" in p.stderr


def _public_copy(binary: Path) -> Path:
    """A copy of the binary that an unprivileged user can execute."""
    d = Path(tempfile.mkdtemp(prefix="t2sb-bin-"))
    os.chmod(d, 0o755)
    dst = d / "tun2sock"
    dst.write_bytes(binary.read_bytes())
    os.chmod(dst, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return dst


@pytest.mark.root
@pytest.mark.parametrize("mode,expect", [
    ("0666", ["CAP_NET_ADMIN", "t2s0", "setcap"]),         # the usual node: TUNSETIFF refused
    ("0600", ["/dev/net/tun", "CAP_NET_ADMIN", "0666"]),  # a node only root may open
])
def test_without_privilege_says_what_to_do_and_exits_1(tun2sock_bin, mode, expect):
    if not have("setpriv") or not have("unshare"):
        pytest.skip("setpriv or unshare (util-linux) not installed")
    binary = _public_copy(tun2sock_bin)
    with Netns("nopriv") as ns:
        try:
            # A private mount namespace with our own /dev/net/tun of the given mode, then the
            # binary as nobody without any capability.
            p = subprocess.run(ns.cmd(
                "unshare", "--mount", "--propagation", "private", "sh", "-c",
                f"mount -t tmpfs -o mode=0755 none /dev/net && "
                f"mknod -m {mode} /dev/net/tun c 10 200 && exec \"$@\"", "sh",
                "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--", str(binary), *GOOD),
                capture_output=True, text=True, timeout=10)
        finally:
            binary.unlink()
            binary.parent.rmdir()
        assert p.returncode == 1, f"exit {p.returncode}\n{p.stderr}"
        for word in expect:
            assert word in p.stderr, f"{word!r} missing from:\n{p.stderr}"
        assert ns.ip("link", "show", "dev", "t2s0", check=False).returncode != 0


@pytest.mark.root
def test_without_dev_net_tun_says_what_to_do_and_exits_1(tun2sock_bin):
    if not have("unshare"):
        pytest.skip("unshare (util-linux) not installed")
    with Netns("notun") as ns:
        # A private mount namespace where /dev/net is an empty tmpfs.
        p = subprocess.run(ns.cmd("unshare", "--mount", "--propagation", "private", "sh", "-c",
                                  'mount -t tmpfs none /dev/net && exec "$0" "$@"',
                                  str(tun2sock_bin), *GOOD),
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 1, f"exit {p.returncode}\n{p.stderr}"
        assert "/dev/net/tun" in p.stderr and "modprobe tun" in p.stderr, p.stderr
