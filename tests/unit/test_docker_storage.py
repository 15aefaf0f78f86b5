"""The Docker backend's project storage, without root or Docker: sizes, names that may become paths,
the commands it builds, what it reads from /proc, and what it refuses before touching anything."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.backends.docker.hostconfig import host_config, mount
from runtime.backends.docker.storage import DockerStorage, commands, engine_volumes, host, sizes
from runtime.backends.docker.storage.engine_volumes import Device
from runtime.backends.docker.storage.layout import Layout, check_snapshot_id, check_volume_name
from runtime.backends.docker.storage.locks import VolumeLocks, file_lock, last_used, mark_used, take_flock
from runtime.backends.docker.storage.mounts import parse_mountinfo
from runtime.backends.docker.storage.snapshots import Snapshots, record_from
from runtime.backends.docker.storage.volumes import Volumes
from runtime.backends.storage import VolumeStorage
from runtime.config import RuntimeConfig
from runtime.errors import ConfigError, EngineError, InvalidIdentifier, InvalidRequest
from runtime.registry import get_registry
from runtime.sandbox.owner import Owner
from runtime.sandbox.spec import VolumeMount, build_spec

MiB, GiB = 1024**2, 1024**3

# -- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "size"), [
    ("300M", 300 * MiB), ("1.5GiB", 3 * GiB // 2), ("256g", 256 * GiB), (" 10 k ", 10240), ("1048576", MiB),
    (4096, 4096), ("2TB", 2 * 1024**4), ("7b", 7),
])
def test_sizes_are_read_in_binary_units(text: str | int, size: int) -> None:
    assert sizes.parse_size(text) == size


@pytest.mark.parametrize("bad", ["ten", "-1", "1.2.3", "5 X", "", -5, True, "1e9"])
def test_unreadable_sizes_are_config_errors(bad: Any) -> None:
    with pytest.raises(ConfigError):
        sizes.parse_size(bad)


def test_a_quota_under_300_mib_is_refused_saying_why() -> None:
    with pytest.raises(InvalidRequest, match=r"300 MiB.*XFS refuses"):
        sizes.check_quota(300 * MiB - 1)
    assert sizes.check_quota(300 * MiB) == 300 * MiB


@pytest.mark.parametrize("bad", [True, 320.0 * MiB, "320M", None, 65 * 1024**4])
def test_a_quota_must_be_a_sane_byte_count(bad: Any) -> None:
    with pytest.raises(InvalidRequest):
        sizes.check_quota(bad)


def test_quotas_round_up_to_whole_mib_and_the_image_adds_exactly_the_log() -> None:
    quota = sizes.check_quota(320 * MiB + 1)
    assert quota == 321 * MiB
    assert sizes.image_size(quota) == 321 * MiB + 64 * MiB
    assert sizes.quota_of(sizes.image_size(quota)) == quota  # read back from the image, mounted or not


def test_the_default_pool_is_90_percent_of_the_free_space_in_whole_gib_and_at_most_256_gib() -> None:
    assert sizes.default_pool_size(75 * GiB) == 67 * GiB
    assert sizes.default_pool_size(10 * 1024**4) == 256 * GiB
    assert sizes.default_pool_size(GiB) == 0  # under 1 GiB: prepare reports it instead


# -- names and paths -------------------------------------------------------------------------------

ESCAPES = ["../x", "..", ".", "a/b", "/etc", "x/../../etc", ".hidden", "", "a\x00b", "a\n", "a b", "-x", "ä"]


@pytest.mark.parametrize("bad", [*ESCAPES, "a" * 64, None, 7])
def test_snapshot_ids_that_could_name_another_path_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidIdentifier):
        check_snapshot_id(bad)


@pytest.mark.parametrize("bad", [*ESCAPES, "a" * 201])
def test_volume_names_that_could_name_another_path_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidIdentifier):
        check_volume_name(bad)


def test_every_path_stays_in_its_own_directory(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path)
    assert layout.image("theappapp-project-p").parent == layout.volumes == tmp_path / "pool" / "volumes"
    assert layout.mountpoint("v").parent == tmp_path / "mounts"
    assert layout.snapshot_image("v", "s1") == tmp_path / "pool" / "snapshots" / "v" / "s1.img"
    assert layout.snapshot_sidecar("w", "s1").parent.name == "w"  # a volume's snapshots are only ever its own
    for bad in ESCAPES:
        with pytest.raises(InvalidIdentifier):
            layout.snapshot_image("v", bad)
        with pytest.raises(InvalidIdentifier):
            layout.image(bad)


def test_temporary_files_cannot_collide_with_any_valid_name(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path)
    for path in (layout.temporary_image("v"), layout.temporary_snapshot("v", "s", ".img")):
        assert path.name.startswith(".")  # a valid name never does
    (layout.volumes).mkdir(parents=True)
    for name in ("v.img", ".v.img.tmp", "..img", "bad name.img", "x.json"):
        (layout.volumes / name).touch()
    assert layout.volume_names() == ["v"]


# -- commands ------------------------------------------------------------------------------------


def test_the_commands_never_force_never_unmount_lazily_and_always_reflink(tmp_path: Path) -> None:
    image = tmp_path / "v.img"
    mkfs = commands.mkfs_volume(image, 64 * MiB)
    assert mkfs[0] == "mkfs.xfs" and "-f" not in mkfs and "reflink=1" in mkfs and f"size={64 * MiB}" in mkfs
    assert commands.unmount(tmp_path) == ["umount", str(tmp_path)]
    assert commands.reflink_copy(image, tmp_path / "c") == ["cp", "--reflink=always", "--", str(image),
                                                            str(tmp_path / "c")]
    assert "--direct-io=on" in commands.attach(image)
    assert commands.mount("/dev/loop9", tmp_path, commands.VOLUME_MOUNT_OPTIONS)[-3:] == [
        "noatime,nosuid,nodev,discard,nouuid", "/dev/loop9", str(tmp_path)]


def test_a_failing_tool_becomes_an_engine_error_with_its_own_words() -> None:
    with pytest.raises(commands.CommandFailed, match="oops") as failed:
        commands.run(["sh", "-c", "echo oops >&2; exit 3"])
    assert isinstance(failed.value, EngineError) and failed.value.returncode == 3 and failed.value.stderr == "oops"
    with pytest.raises(commands.CommandFailed, match="did not finish within"):
        commands.run(["sleep", "5"], timeout=0.2)
    with pytest.raises(commands.CommandFailed, match="cannot run"):
        commands.run(["theappapp-no-such-tool"])


def test_sbin_is_searched_even_when_path_lacks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nowhere")
    assert "/usr/sbin" in commands.search_path().split(os.pathsep)


# -- what is read from /proc ------------------------------------------------------------------------

MOUNTINFO = """\
24 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
47 24 7:1 / /var/lib/s/mounts/v\\040x rw,nosuid - xfs /dev/loop1 rw,nouuid
62 45 7:1 / /var/lib/docker/volumes/v/_data rw shared:3 master:2 - xfs /dev/loop1 rw
garbage line
63 45 x:y / /bad rw - xfs /dev/loop2 rw
"""


def test_mountinfo_gives_each_mount_of_a_device_with_escaped_paths() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    assert [(e.device, e.mountpoint, e.fstype) for e in entries] == [
        ((254, 0), "/", "ext4"), ((7, 1), "/var/lib/s/mounts/v x", "xfs"),
        ((7, 1), "/var/lib/docker/volumes/v/_data", "xfs"),
    ]


def test_prepare_says_what_is_missing_and_how_to_fix_it() -> None:
    assert "run it as root" in host.privilege_problems(1000, "")[0]
    everything = f"CapEff:\t{(1 << 41) - 1:016x}\n"
    assert host.privilege_problems(0, everything) == []
    no_admin = f"CapEff:\t{((1 << 41) - 1) & ~(1 << 21):016x}\n"
    (problem,) = host.privilege_problems(0, no_admin)
    assert "CAP_SYS_ADMIN" in problem
    assert "not through a unix socket" in host.engine_problems("tcp://10.0.0.1:2375")[0]
    assert "cannot connect" in host.engine_problems("unix:///nonexistent/docker.sock")[0]


def test_an_engine_listening_in_our_own_mount_namespace_is_local(tmp_path: Path) -> None:
    path = str(tmp_path / "engine.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        assert host.engine_problems(f"unix://{path}") == []  # SO_PEERCRED: this very process


def test_missing_tools_name_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "which", lambda tool: None if tool.startswith(("mkfs", "xfs")) else "/bin/x")
    (problem,) = host.tool_problems()
    assert "mkfs.xfs" in problem and "apt-get install xfsprogs" in problem


# -- the Docker side --------------------------------------------------------------------------------


def test_only_a_volume_binding_our_mountpoint_is_a_quota_volume() -> None:
    ours = {"Driver": "local", "Options": {"type": "none", "o": "bind", "device": "/s/mounts/v"}}
    assert engine_volumes.kind(None, "/s/mounts/v") == "absent"
    assert engine_volumes.kind(ours, "/s/mounts/v") == "quota"
    assert engine_volumes.kind(ours, "/other/mounts/v") == "plain"
    assert engine_volumes.kind({"Driver": "local", "Options": None}, "/s/mounts/v") == "plain"


def test_a_quota_volume_is_always_mounted_with_its_bind_options() -> None:
    volume = VolumeMount("theappapp-project-p", "/workspace", {"k": "v"}, quota=320 * MiB)
    with_device = mount(volume, Device("/s/mounts/theappapp-project-p", direct=False))
    assert with_device["VolumeOptions"]["DriverConfig"] == {
        "Name": "local", "Options": {"type": "none", "o": "bind", "device": "/s/mounts/theappapp-project-p"}}
    assert with_device["VolumeOptions"]["Labels"] == {"k": "v"}
    assert "DriverConfig" not in mount(volume)["VolumeOptions"]
    # After its first container, bound straight from the filesystem: no volume for the engine to mount.
    direct = mount(volume, Device("/s/mounts/theappapp-project-p", direct=True))
    assert (direct["Type"], direct["Source"]) == ("bind", "/s/mounts/theappapp-project-p")

    settings = RuntimeConfig.load(env={"THEAPPAPP_INSTALLATION_ID": "x"})
    registry = get_registry()
    spec = build_spec(settings, registry, Owner(installation="x"), name="n", project_id="p",
                      language=registry.resolve("python"), labels={}, network="none")
    (workspace, *_) = host_config(spec, devices={"theappapp-project-p": Device("/s/mounts/p", False)})["mounts"]
    assert workspace["VolumeOptions"]["DriverConfig"]["Options"]["device"] == "/s/mounts/p"


# -- snapshots' records ------------------------------------------------------------------------------


def test_a_sidecar_counts_only_for_its_own_volume_and_id() -> None:
    good = {"id": "s1", "volume": "v", "created": 1.5, "used": 10, "labels": {"a": "b"}}
    assert record_from(good, "v", "s1") is not None
    assert record_from(good, "w", "s1") is None and record_from(good, "v", "s2") is None
    assert record_from({**good, "labels": {"a": 1}}, "v", "s1") is None
    assert record_from({**good, "used": "x"}, "v", "s1") is None
    assert record_from([good], "v", "s1") is None


def test_listing_finds_complete_snapshots_of_the_volume_asked_only(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path)
    store = Snapshots(layout, Volumes(layout, 1000, 1000))
    for volume, sid, named in [("v", "s1", "v"), ("v", "s2", "v"), ("w", "s1", "w"), ("w", "forged", "v")]:
        layout.snapshot_dir(volume).mkdir(parents=True, exist_ok=True)
        layout.snapshot_image(volume, sid).touch()
        layout.snapshot_sidecar(volume, sid).write_text(json.dumps(
            {"id": sid, "volume": named, "created": 2.0 if sid == "s1" else 1.0, "used": 1}))
    layout.snapshot_image("v", "s2").unlink()  # a sidecar without its image: incomplete
    (layout.snapshot_dir("v") / ".s3.json.tmp").write_text("{}")
    assert [(r.volume, r.id) for r in store.list("v")] == [("v", "s1")]
    assert [(r.volume, r.id) for r in store.list(None)] == [("v", "s1"), ("w", "s1")]
    with pytest.raises(InvalidRequest, match="no snapshot"):
        store.image("w", "s2")
    with pytest.raises(InvalidIdentifier):
        store.delete("v", "../w/s1")
    assert store.delete("w", "s1") and not store.delete("w", "s1")
    assert layout.snapshot_image("v", "s1").exists()


# -- locks ---------------------------------------------------------------------------------------------


async def test_operations_on_one_volume_never_overlap_and_their_locks_go_away() -> None:
    locks = VolumeLocks()
    inside = peak = 0

    async def operation(names: list[str]) -> None:
        nonlocal inside, peak
        async with locks.hold(names):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(operation(n) for n in (["a", "b"], ["b", "a"], ["a"], ["b"])))
    assert peak == 1 and locks._locks == {}


def test_a_volume_locked_elsewhere_is_seen_as_taken(tmp_path: Path) -> None:
    with file_lock(tmp_path / "v.lock") as first:
        assert first
        with file_lock(tmp_path / "v.lock", wait=False) as second:  # another open file: like another process
            assert not second
        with pytest.raises(EngineError, match="stayed locked"), file_lock(tmp_path / "v.lock", timeout=0.05):
            pass


def test_creates_share_a_use_lock_and_the_sweep_cannot_take_it_from_them(tmp_path: Path) -> None:
    path = tmp_path / "v.use"
    first = take_flock(path, exclusive=False, wait=False)
    second = take_flock(path, exclusive=False, wait=False)  # two creates of one project at once
    assert first is not None and second is not None
    with file_lock(path, wait=False) as sweep:  # exclusive, as the idle sweep takes it
        assert not sweep
    os.close(first)
    with file_lock(path, wait=False) as sweep:
        assert not sweep
    os.close(second)
    with file_lock(path, wait=False) as sweep:
        assert sweep
        assert take_flock(path, exclusive=False, wait=False) is None  # a create waits for the sweep
        with pytest.raises(EngineError, match="stayed locked"):
            take_flock(path, exclusive=False, wait=True, timeout=0.05)


def test_the_last_use_is_the_use_file_mtime(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "v.use"
    assert last_used(path) is None
    os.makedirs(path.parent)
    path.touch()
    os.utime(path, (1000.0, 1000.0))
    assert last_used(path) == 1000.0
    mark_used(path)
    used = last_used(path)
    assert used is not None and abs(used - time.time()) < 5


def test_a_volume_use_file_never_collides_with_its_lock_or_another_volume(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path)
    names = ["v", "v.use", "v.lock", "v.use.lock", "v.lock.use", "w"]
    paths = [layout.lock(n) for n in names] + [layout.in_use(n) for n in names]
    assert len(set(paths)) == len(paths) and {p.parent for p in paths} == {layout.locks}
    with pytest.raises(InvalidIdentifier):
        layout.in_use("../v")


def test_a_negative_idle_unmount_is_refused() -> None:
    for bad in (-1, float("nan")):
        with pytest.raises(ConfigError, match="storage_idle_unmount"):
            RuntimeConfig.load(storage_idle_unmount=bad)
    assert RuntimeConfig.load().storage.idle_unmount == 600.0


# -- the storage before it is prepared, or where it cannot be ----------------------------------------


def _no_engine() -> Any:
    raise AssertionError("the engine must not be asked")


async def test_unprepared_storage_leaves_every_volume_plain_and_touches_nothing(tmp_path: Path) -> None:
    storage = DockerStorage(_no_engine, root=str(tmp_path / "storage"))
    assert not storage.enforced
    assert await storage.ensure(VolumeMount("v", "/workspace", quota=100)) is None
    with pytest.raises(InvalidRequest, match="not enforced"):
        await storage.set_quota("v", 400 * MiB)
    with pytest.raises(InvalidRequest, match="not enforced"):
        await storage.snapshot("v", "s1", {})
    with pytest.raises(InvalidRequest, match="not enforced"):
        await storage.delete_snapshot("v", "s1")
    assert await storage.snapshots() == []
    assert not await storage.remove("v")
    async with storage.using([VolumeMount("v", "/workspace", quota=100)]) as devices:
        assert devices == {}
    assert await storage.unmount_idle(0) == []
    assert not (tmp_path / "storage" / "pool").exists() and not (tmp_path / "storage" / "locks").exists()


async def test_prepare_as_a_normal_user_reports_instead_of_raising(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    class Where:
        where = "unix:///var/run/docker.sock"

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    storage = DockerStorage(lambda: Where(), root=str(tmp_path / "storage"))  # type: ignore[arg-type,return-value]
    status = await storage.prepare()
    assert not status.enforced and not storage.enforced and "root" in status.problems[0]
    assert not (tmp_path / "storage").exists()


async def test_bad_names_and_ids_are_refused_before_anything_is_touched(tmp_path: Path) -> None:
    storage = DockerStorage(_no_engine, root=str(tmp_path / "storage"))
    with pytest.raises(InvalidIdentifier):
        await storage.restore("v", "../w/s1")
    with pytest.raises(InvalidIdentifier):
        await storage.delete_snapshot("../v", "s1")
    with pytest.raises(InvalidIdentifier):
        await storage.snapshots("v/../w")
    with pytest.raises(InvalidRequest, match="new volume name"):
        await storage.clone("v", None, VolumeMount("v", "/workspace", quota=400 * MiB))
    with pytest.raises(InvalidRequest, match="300 MiB"):
        await storage.clone("v", "s1", VolumeMount("w", "/workspace", quota=10 * MiB))
    assert not (tmp_path / "storage").exists()


def test_the_docker_storage_is_a_volume_storage() -> None:
    storage: VolumeStorage = DockerStorage(_no_engine)  # mypy checks the protocol here
    assert not storage.enforced
