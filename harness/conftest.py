"""Shared pytest fixtures for the tun2sock harness (pytest + scapy scenario tests).

Run with Debian's interpreter: /usr/bin/python3 -m pytest harness -v
(scripts/test does this against build/; set T2S_BUILD_DIR to test another build tree).

Fixtures and helpers (see docs/testing.md):
  repo_root         Path of the repository.
  build_dir         Path of the build tree under test (env T2S_BUILD_DIR, default build/).
  sim_bin           Path of build/tun2sock-sim; the test fails if it was not built.
  tun2sock_bin      Path of build/tun2sock; the test fails if it was not built.
  pcaps_dir         Path of the bundled captures (pcaps/).
  corpora_dir       Path of ../shared/corpora beside the clone (env T2S_CORPORA_DIR); may not exist.
  corpus(rel)       Path of one corpus file or folder, or skips the test with a visible reason.
  sim(...)          Runs the simulator and returns a SimResult (outputs parsed).
  scenario(text)    Writes a scenario file (dedented) and runs `sim --scenario` on it.
  @pytest.mark.root Skips the test unless running as root.
  require_corpus()  The same as the corpus fixture, for use outside fixtures (module level).
"""
import dataclasses
import json
import os
import shlex
import subprocess
import textwrap
from pathlib import Path
from typing import List, Optional

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SIM_TIMEOUT_S = 120


def _build_dir() -> Path:
    d = Path(os.environ.get("T2S_BUILD_DIR", "build"))
    return d if d.is_absolute() else REPO_ROOT / d


def _corpora_dir() -> Path:
    d = os.environ.get("T2S_CORPORA_DIR")
    return Path(d) if d else (REPO_ROOT.parent / "shared" / "corpora").resolve()


def require_corpus(rel: str = "") -> Path:
    """Returns corpora_dir/rel, or skips the calling test (or module) saying what is missing.

    The corpora live in ../shared/corpora beside the clone and are never copied into the repo.
    """
    path = _corpora_dir() / rel
    if not path.exists():
        pytest.skip(f"corpus {path} absent: put shared/corpora beside the clone "
                    f"(or set T2S_CORPORA_DIR) to run this test")
    return path


def pytest_configure(config):
    # Also registered in pytest.ini; kept here so the marker works with any ini file.
    config.addinivalue_line("markers", "root: needs root; skipped otherwise")


def pytest_runtest_setup(item):
    if item.get_closest_marker("root") is not None and os.geteuid() != 0:
        pytest.skip("needs root (TUN devices, namespaces): run as root, e.g. sudo scripts/test")


def pytest_report_header(config):
    c = _corpora_dir()
    return [f"tun2sock build: {_build_dir()}",
            f"corpora: {c} ({'present' if c.exists() else 'ABSENT: corpus tests will skip'})"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def build_dir() -> Path:
    return _build_dir()


def _built(name: str) -> Path:
    path = _build_dir() / name
    if not path.exists():
        pytest.fail(f"{path} not found: build first (cmake -S . -B build && cmake --build build)")
    return path


@pytest.fixture(scope="session")
def sim_bin() -> Path:
    return _built("tun2sock-sim")


@pytest.fixture(scope="session")
def tun2sock_bin() -> Path:
    return _built("tun2sock")


@pytest.fixture(scope="session")
def pcaps_dir() -> Path:
    return REPO_ROOT / "pcaps"


@pytest.fixture(scope="session")
def corpora_dir() -> Path:
    return _corpora_dir()


@pytest.fixture
def corpus():
    """corpus("pcaps/rawip/x.pcap") -> Path, or skips the test when the corpora are absent."""
    return require_corpus


@dataclasses.dataclass
class SimResult:
    """What one simulator run produced."""
    cmd: List[str]
    returncode: int
    stdout: str
    stderr: str
    pcap_out: Path
    events_out: Path

    @property
    def events(self) -> List[dict]:
        """The events file parsed, one dict per JSON line ([] when the file is absent)."""
        if not self.events_out.exists():
            return []
        with open(self.events_out) as f:
            return [json.loads(line) for line in f if line.strip()]

    def events_of(self, kind: str, key: str = "event") -> List[dict]:
        """The events whose `key` field equals kind."""
        return [e for e in self.events if e.get(key) == kind]

    @property
    def packets(self):
        """The output capture read with scapy (a PacketList; empty when the file is absent)."""
        from scapy.utils import rdpcap  # imported late: scapy is slow to import
        from scapy.plist import PacketList
        if not self.pcap_out.exists() or self.pcap_out.stat().st_size == 0:
            return PacketList()
        return rdpcap(str(self.pcap_out))

    def describe(self) -> str:
        return (f"$ {shlex.join(self.cmd)}\nexit {self.returncode}\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")


@pytest.fixture
def sim(sim_bin, tmp_path):
    """Runs build/tun2sock-sim in a fresh directory and returns a SimResult.

    sim(*args, replay=None, check=True, timeout=SIM_TIMEOUT_S, name="sim")
      args     further command-line arguments, passed as they are (see docs/simulator.md)
      replay   a capture to replay (--replay); a relative path is taken from the repo root
      check    fail the test (showing the command, stdout and stderr, hence the seed) when the
               simulator exits non-zero
      name     prefix of the output files, so one test can run the simulator several times
    Every run writes --pcap-out <tmp>/<name>.pcap and --events-out <tmp>/<name>.jsonl.
    """
    def run(*args, replay: Optional[os.PathLike] = None, check: bool = True,
            timeout: float = SIM_TIMEOUT_S, name: str = "sim") -> SimResult:
        pcap_out = tmp_path / f"{name}.pcap"
        events_out = tmp_path / f"{name}.jsonl"
        cmd = [str(sim_bin)]
        if replay is not None:
            r = Path(replay)
            cmd += ["--replay", str(r if r.is_absolute() else REPO_ROOT / r)]
        cmd += ["--pcap-out", str(pcap_out), "--events-out", str(events_out)]
        cmd += [str(a) for a in args]
        p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
        res = SimResult(cmd, p.returncode, p.stdout, p.stderr, pcap_out, events_out)
        if check and p.returncode != 0:
            pytest.fail(f"simulator failed\n{res.describe()}", pytrace=False)
        return res

    return run


@pytest.fixture
def scenario(sim, tmp_path):
    """scenario(text, *args, check=False, name="s") writes textwrap.dedent(text) to
    <tmp>/<name>.scn and runs `sim --scenario` on it (further args as they are); returns the
    SimResult. check=False by default: scenario tests look at the exit status themselves."""
    def run(text, *args, check: bool = False, name: str = "s") -> SimResult:
        path = tmp_path / f"{name}.scn"
        path.write_text(textwrap.dedent(text))
        return sim("--scenario", path, *args, check=check, name=name)
    return run
