"""Reading a container's OOM counter and usage from (fake) cgroup trees, v1 and v2."""

from __future__ import annotations

from pathlib import Path

from runtime.backends.docker.cgroups import ContainerCgroup, parse_oom_kills

CID = "abc123"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v1_cgroupfs_layout(tmp_path: Path) -> None:
    mem = tmp_path / "memory" / "docker" / CID
    _write(mem / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    _write(mem / "memory.max_usage_in_bytes", "1048576\n")
    _write(tmp_path / "cpuacct" / "docker" / CID / "cpuacct.usage", "2500000000\n")
    _write(tmp_path / "pids" / "docker" / CID / "pids.current", "2\n")
    _write(tmp_path / "pids" / "docker" / CID / "pids.peak", "17\n")
    cgroup = ContainerCgroup.locate(CID, 1, "cgroupfs", root=tmp_path)
    assert cgroup is not None and cgroup.oom_kills() == 3
    usage = cgroup.usage()
    assert (usage.cpu_seconds, usage.peak_memory_bytes, usage.peak_pids) == (2.5, 1048576, 17)


def test_v1_systemd_layout_and_missing_controllers(tmp_path: Path) -> None:
    _write(tmp_path / "memory" / "system.slice" / f"docker-{CID}.scope" / "memory.oom_control", "oom_kill 0\n")
    cgroup = ContainerCgroup.locate(CID, 1, "systemd", root=tmp_path)
    assert cgroup is not None and cgroup.oom_kills() == 0
    assert cgroup.usage().cpu_seconds is None and cgroup.usage().peak_pids is None


def test_v2_layout(tmp_path: Path) -> None:
    d = tmp_path / "system.slice" / f"docker-{CID}.scope"
    _write(d / "memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    _write(d / "cpu.stat", "usage_usec 1500000\nuser_usec 1\n")
    _write(d / "memory.peak", "4096\n")
    cgroup = ContainerCgroup.locate(CID, 2, "systemd", root=tmp_path)
    assert cgroup is not None and cgroup.oom_kills() == 1
    assert cgroup.usage().cpu_seconds == 1.5 and cgroup.usage().peak_memory_bytes == 4096


def test_absent_cgroup_is_none_and_counters_parse_from_probe_output(tmp_path: Path) -> None:
    assert ContainerCgroup.locate(CID, 1, "cgroupfs", root=tmp_path) is None
    assert parse_oom_kills(b"oom_kill_disable 0\nunder_oom 0\noom_kill 12\n") == 12
    assert parse_oom_kills(b"nothing here") is None
