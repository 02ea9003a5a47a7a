"""The upstream connector (src/os/upstream_sock.c) against real loopback sockets, with a stub
engine: test_bin_upstream.c says what is checked. Compiled here against the build's t2s_os
and t2s_core archives; the stub's t2s_engine_* symbols take the place of the engine's."""
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def test_connector_reports_completions_backpressure_halfclose_abort_and_datagrams(
        build_dir, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    os_lib, core_lib = build_dir / "libt2s_os.a", build_dir / "libt2s_core.a"
    if not cc or not shutil.which("pkg-config"):
        pytest.skip("no C compiler or pkg-config")
    if not os_lib.exists() or not core_lib.exists():
        pytest.fail(f"{os_lib} or {core_lib} not built")
    libs = subprocess.run(["pkg-config", "--libs", "libevent", "libmnl"], capture_output=True,
                          text=True, check=True).stdout.split()
    exe = tmp_path / "upstream"
    p = subprocess.run([cc, "-std=c17", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
                        f"-I{ROOT}/src/core", f"-I{ROOT}/src/os",
                        str(HERE / "test_bin_upstream.c"), "-o", str(exe), str(os_lib),
                        str(core_lib), *libs], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all checks passed" in r.stdout
