"""scripts/enable-crun.sh and scripts/register-oci-runtime.sh against stand-in commands.

A fresh CI machine is a cgroup v1 host whose v2 hierarchy still offers a controller (hugetlb), which
crun refuses: the script must move that controller to v1 when nothing uses it on v2, and refuse when
something does. The stand-ins (`stat`, `mount`, `docker`, `crun`, `apt-get`) let both states be made
without touching the host's cgroups or the real engine.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from builder.render import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "enable-crun.sh"
ENTRY = {"path": "/fake/bin/crun"}

FAKES = {
    # The unified hierarchy is a cgroup2 mount when $FSTYPE says so.
    "stat": 'echo "$FSTYPE"\n',
    "mount": 'echo "mount $*" >> "$STATE/calls"\n[ ! -f "$STATE/mount-fails" ]\n',
    # The engine answers, and lists crun as registered once $STATE/listed holds its entry.
    "docker": 'if [ "$1" = info ] && [ "$2" = --format ]; then cat "$STATE/listed" 2>/dev/null; fi\nexit 0\n',
    "crun": 'echo "crun version 0.0-fake"\n',
    "apt-get": 'echo "apt-get $*" >> "$STATE/calls"\n',
    "id": 'echo "${FAKE_UID:-0}"\n',  # root as far as the script can tell: nothing above touches the host
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in FAKES.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + text)
        (bin_dir / name).chmod(0o755)
    unified = tmp_path / "cgroup" / "unified"
    unified.mkdir(parents=True)
    (unified / "cgroup.controllers").write_text("hugetlb\n")
    (unified / "cgroup.subtree_control").write_text("\n")
    # Registered already (engine and daemon.json agree): only the cgroup step is under test here.
    entry = dict(ENTRY, path=str(bin_dir / "crun"))
    (tmp_path / "listed").write_text(json.dumps(entry))
    (tmp_path / "daemon.json").write_text(json.dumps({"runtimes": {"crun": entry}}))
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STATE": str(tmp_path),
        "FSTYPE": "cgroup2fs",
        "CGROUP_UNIFIED": str(unified),
        "DOCKERD_CONFIG": str(tmp_path / "daemon.json"),
    }


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_a_controller_no_v2_cgroup_uses_is_bound_to_v1_and_crun_registered(env: dict[str, str], tmp_path: Path) -> None:
    done = run(env)
    assert done.returncode == 0, done.stderr
    target = tmp_path / "cgroup" / "hugetlb"
    assert calls(tmp_path) == [f"mount -t cgroup -o hugetlb cgroup {target}"]
    assert target.is_dir() and "bound the hugetlb controller to cgroup v1" in done.stdout
    assert "crun already registered" in done.stdout


def test_a_controller_in_use_on_v2_is_refused_in_one_line_and_nothing_is_mounted(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "cgroup" / "unified" / "cgroup.subtree_control").write_text("hugetlb\n")
    done = run(env)
    assert done.returncode == 1 and calls(tmp_path) == []
    assert done.stderr.strip().splitlines() == [
        f"enable-crun: the hugetlb controller is in use on the cgroup v2 hierarchy ({tmp_path}/cgroup/unified): "
        "crun cannot run on this host"
    ]


def test_a_failed_bind_says_so(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "mount-fails").touch()
    done = run(env)
    assert done.returncode == 1 and "could not bind the hugetlb controller" in done.stderr


@pytest.mark.parametrize("fstype", ["tmpfs", ""])  # pure v1 (no unified mount) or nothing there
def test_no_unified_cgroup2_mount_means_nothing_to_move(env: dict[str, str], tmp_path: Path, fstype: str) -> None:
    done = run({**env, "FSTYPE": fstype, "FAKE_UID": "1000"})  # and nothing that needs root
    assert done.returncode == 0, done.stderr
    assert calls(tmp_path) == []


def test_a_bind_needs_root_and_says_so(env: dict[str, str], tmp_path: Path) -> None:
    done = run({**env, "FAKE_UID": "1000"})
    assert done.returncode == 1 and calls(tmp_path) == []
    assert "not root: run as root (to bind the hugetlb controller to cgroup v1)" in done.stderr


def test_an_entry_missing_from_daemon_json_is_not_taken_as_registered(env: dict[str, str], tmp_path: Path) -> None:
    """The engine may list a runtime from an earlier reload that its config no longer has; a restart would
    lose it, so the script writes it (and then needs the engine's pid to reload, which the fakes lack)."""
    (tmp_path / "daemon.json").write_text("{}")
    done = run({**env, "FSTYPE": "tmpfs", "DOCKERD_PIDFILE": str(tmp_path / "absent.pid")})
    assert done.returncode == 1 and "no running dockerd" in done.stderr
