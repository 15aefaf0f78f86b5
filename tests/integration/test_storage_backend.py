"""Quota volumes on the real host and engine: the kernel enforces the quota, snapshots give back exact
content, nothing leaks between volumes, and a bare mountpoint can never be written.

Runs as root with xfsprogs and loop devices (skips otherwise, saying why), in a storage root of its
own under /var/lib (a loop image wants a real disk filesystem); every mount, loop device, container
and Docker volume it makes is removed by the fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import docker.models.containers
import pytest

from runtime.backends.base import ResourceInUse
from runtime.backends.docker.backend import DockerBackend
from runtime.backends.docker.engine import Engine
from runtime.backends.docker.hostconfig import mount
from runtime.backends.docker.storage import DockerStorage, idle, mounts, sizes
from runtime.backends.docker.storage.engine_volumes import Device
from runtime.backends.docker.storage.locks import file_lock
from runtime.backends.docker.storage.mounts import is_immutable
from runtime.config import EngineSettings, SecuritySettings
from runtime.errors import InvalidIdentifier, InvalidRequest
from runtime.registry import Resources
from runtime.sandbox.spec import ContainerSpec, VolumeMount
from tests.integration.conftest import engine_or_skip

from .storage_cleanup import loops_under, mounts_under, power_cut, remove_root

pytestmark = pytest.mark.integration

MiB = 1024**2
QUOTA = 320 * MiB
IMAGE = "theappapp-python:latest"
SESSION = uuid.uuid4().hex[:8]
PREFIX = f"theappapp-test-{SESSION}"
TEST_LABEL = "org.theappapp.test-storage"


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "quota volumes need root (mkfs, losetup, mount)"
    if shutil.which("mkfs.xfs", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        return "mkfs.xfs is missing: apt-get install xfsprogs"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices on this host (/dev/loop-control is missing)"
    return None


# -- fixtures and helpers ------------------------------------------------------------------------------


def _remove_engine_objects(client: docker.DockerClient) -> None:
    for container in client.containers.list(all=True, filters={"label": [f"{TEST_LABEL}={SESSION}"]}):
        container.remove(force=True)
    for volume in client.volumes.list():
        if volume.name.startswith(PREFIX):
            with contextlib.suppress(docker.errors.DockerException):
                volume.remove(force=True)


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    engine = engine_or_skip()
    if not engine.images.list(name=IMAGE):
        pytest.skip(f"image {IMAGE} is not built (nox -s build -- python)")
    yield engine
    _remove_engine_objects(engine)
    engine.close()


def _storage_at(root: Path) -> tuple[DockerStorage, Engine]:
    engine = Engine(None, 60)
    return DockerStorage(lambda: engine, root=str(root), pool_size=16 * 1024**3), engine


@pytest.fixture(scope="module")
def storage(client: docker.DockerClient) -> Iterator[DockerStorage]:
    root = Path(f"/var/lib/{PREFIX}-storage")
    store, engine = _storage_at(root)
    try:
        status = asyncio.run(store.prepare())
        assert status.enforced, status.problems
        yield store
    finally:
        _remove_engine_objects(client)
        engine.close()
        remove_root(root)


@pytest.fixture
def name() -> Iterator[str]:
    yield f"{PREFIX}-{uuid.uuid4().hex[:6]}"


def volume(volume_name: str, quota: int | None = QUOTA) -> VolumeMount:
    return VolumeMount(volume_name, "/workspace", {TEST_LABEL: SESSION}, quota=quota)


def bound(volume: VolumeMount, device: str) -> docker.types.Mount:
    """The volume as its first container gets it: Docker's volume with the bind options (see `Device`)."""
    return mount(volume, Device(device, direct=False))


def run(client: docker.DockerClient, mounts: list[docker.types.Mount], script: str, *,
        user: str = "1000:1000", hardened: bool = True, detach: bool = False) -> tuple[int, str]:
    """Run `script` in a sandbox-like container (uid 1000, read-only root, no capabilities)."""
    container = client.containers.run(
        IMAGE, ["sh", "-c", script], user=user, read_only=hardened, cap_drop=["ALL"] if hardened else None,
        mounts=mounts, network_mode="none", labels={TEST_LABEL: SESSION}, detach=True,
        name=f"{PREFIX}-{uuid.uuid4().hex[:6]}",
    )
    if detach:
        return 0, str(container.id)
    try:
        code = int(container.wait(timeout=120)["StatusCode"])
        return code, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def exec_in(container: docker.models.containers.Container, script: str) -> tuple[int, bytes]:
    code, out = container.exec_run(["sh", "-c", script], user="1000")
    assert isinstance(out, bytes) and code is not None
    return code, out


def manifest(top: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under `top`: type, mode, owner, and content hash or link target."""
    found: dict[str, tuple[object, ...]] = {}
    for directory, dirs, files in os.walk(top):
        for entry in dirs + files:
            path = Path(directory) / entry
            st = path.lstat()
            kind = stat.S_IFMT(st.st_mode)
            detail = (os.readlink(path) if stat.S_ISLNK(st.st_mode)
                      else hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else "")
            found[str(path.relative_to(top))] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, detail)
    root = top.lstat()
    found["."] = (stat.S_IFMT(root.st_mode), stat.S_IMODE(root.st_mode), root.st_uid, root.st_gid, "")
    return found


POPULATE = (
    "cd /workspace && mkdir -p src/pkg empty/nested && printf hello > src/a.txt && chmod 640 src/a.txt"
    " && head -c 3000000 /dev/urandom > src/blob && ln -s src/a.txt link && ln -s ../nowhere dangling"
    " && printf 'echo hi' > src/pkg/run.sh && chmod 755 src/pkg/run.sh && chmod 700 empty && mkfifo pipe"
)
CHANGE = (
    "cd /workspace && echo changed > src/a.txt && rm -rf empty link && ln -s elsewhere link"
    " && chmod 600 src/pkg/run.sh && head -c 1000000 /dev/urandom > new.bin"
)


def pool_used(store: DockerStorage) -> int:
    st = os.statvfs(store.layout.pool)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


# -- the quota itself ------------------------------------------------------------------------------------


async def test_a_container_cannot_write_past_its_quota_and_the_pool_holds_only_what_it_holds(
        client: docker.DockerClient, storage: DockerStorage, name: str) -> None:
    before = pool_used(storage)
    device = await storage.ensure(volume(name))
    assert device is not None
    code, out = run(client, [bound(volume(name), device)],
                    "df -B1 --output=size /workspace | tail -1; dd if=/dev/zero of=/workspace/fill bs=1M count=400")
    assert code != 0 and "No space left on device" in out
    assert int(out.split()[0]) == QUOTA  # df inside shows the quota
    grown = pool_used(storage) - before
    assert grown <= sizes.image_size(QUOTA) + 8 * MiB, f"the pool grew by {grown} for a {QUOTA}-byte quota"

    other = f"{name}-b"  # a full volume leaves the others alone
    other_device = await storage.ensure(volume(other))
    assert other_device is not None
    code, out = run(client, [bound(volume(other), other_device)],
                    "dd if=/dev/zero of=/workspace/f bs=1M count=20 && echo written")
    assert code == 0 and "written" in out

    full = pool_used(storage)
    code, _ = run(client, [bound(volume(name), device)], "rm /workspace/fill")
    assert code == 0
    deadline = time.monotonic() + 30  # XFS discards after its log commits: give it a few syncs
    while pool_used(storage) > full - 250 * MiB and time.monotonic() < deadline:
        os.sync()
        await asyncio.sleep(0.5)
    assert pool_used(storage) <= full - 250 * MiB, "deleting inside the volume did not free the pool (discard)"


async def test_set_quota_grows_a_mounted_volume_while_a_container_uses_it(
        client: docker.DockerClient, storage: DockerStorage, name: str) -> None:
    device = await storage.ensure(volume(name))
    assert device is not None
    _, cid = run(client, [bound(volume(name), device)], "sleep 300", detach=True)
    container = client.containers.get(cid)
    code, out = exec_in(container, "dd if=/dev/zero of=/workspace/a bs=1M count=400")
    assert code != 0 and b"No space left on device" in out

    assert await storage.set_quota(name, QUOTA + 200 * MiB) == QUOTA + 200 * MiB
    code, out = exec_in(container, "dd if=/dev/zero of=/workspace/b bs=1M count=150 && "
                                   "df -B1 --output=size /workspace | tail -1")
    assert code == 0 and int(out.split()[-1]) == QUOTA + 200 * MiB
    (usage,) = await storage.usage([name])
    assert usage.quota == QUOTA + 200 * MiB and usage.used > 400 * MiB

    with pytest.raises(InvalidRequest, match="cannot shrink"):
        await storage.set_quota(name, QUOTA + 100 * MiB)
    with pytest.raises(InvalidRequest, match="300 MiB"):
        await storage.set_quota(name, 100 * MiB)
    container.remove(force=True)


async def test_a_quota_xfs_cannot_hold_is_refused_and_an_unusable_root_is_reported(
        client: docker.DockerClient, storage: DockerStorage, name: str) -> None:
    with pytest.raises(InvalidRequest, match="300 MiB"):
        await storage.ensure(volume(name, 100 * MiB))
    assert not storage.layout.image(name).exists()
    elsewhere, engine = _storage_at(Path("/proc/theappapp-test-storage"))  # cannot be created
    status = await elsewhere.prepare()
    engine.close()
    assert not status.enforced and "cannot create the storage root" in status.problems[0]
    assert await elsewhere.ensure(volume(name)) is None  # plain volumes, no error


async def test_two_tasks_creating_one_volume_at_once_mount_it_once(storage: DockerStorage, name: str) -> None:
    paths = await asyncio.gather(*(storage.ensure(volume(name)) for _ in range(4)))
    assert len(set(paths)) == 1 and paths[0] is not None
    assert mounts_under(storage.layout.root).count(paths[0]) == 1
    started = time.perf_counter()
    await storage.ensure(volume(name))
    assert time.perf_counter() - started < 0.05  # cached: one stat


async def test_a_plain_volume_made_before_quotas_stays_plain(
        client: docker.DockerClient, storage: DockerStorage, name: str) -> None:
    client.volumes.create(name)
    assert await storage.ensure(volume(name)) is None
    (usage,) = await storage.usage([name])
    assert usage.quota is None
    with pytest.raises(InvalidRequest, match="no disk quota"):
        await storage.set_quota(name, 400 * MiB)
    assert await storage.usage([f"{name}-none"]) == []


# -- snapshots ---------------------------------------------------------------------------------------------


async def test_restore_gives_back_the_exact_bytes_modes_links_and_empty_directories(
        client: docker.DockerClient, storage: DockerStorage, name: str) -> None:
    device = await storage.ensure(volume(name))
    assert device is not None
    assert run(client, [bound(volume(name), device)], POPULATE)[0] == 0
    taken = manifest(Path(device))
    record = await storage.snapshot(name, "s1", {"why": "test"})
    assert (record.volume, record.id, dict(record.labels)) == (name, "s1", {"why": "test"}) and record.used > 3 * MiB
    assert stat.S_IMODE(os.stat(storage.layout.snapshot_image(name, "s1")).st_mode) == 0o444
    assert [r.id for r in await storage.snapshots(name)] == ["s1"]
    with pytest.raises(InvalidRequest, match="already has"):
        await storage.snapshot(name, "s1", {})

    assert run(client, [bound(volume(name), device)], CHANGE)[0] == 0
    assert manifest(Path(device)) != taken
    await storage.restore(name, "s1")
    assert manifest(Path(device)) == taken
    (usage,) = await storage.usage([name])
    assert usage.quota == QUOTA

    await storage.set_quota(name, QUOTA + 100 * MiB)
    await storage.restore(name, "s1")  # a snapshot taken smaller: the volume keeps its quota
    assert manifest(Path(device)) == taken
    (usage,) = await storage.usage([name])
    assert usage.quota == QUOTA + 100 * MiB


async def test_a_clone_is_independent_of_its_source(
        client: docker.DockerClient, storage: DockerStorage, name: str) -> None:
    device = await storage.ensure(volume(name))
    assert device is not None
    assert run(client, [bound(volume(name), device)], POPULATE)[0] == 0
    await storage.snapshot(name, "s1", {})
    assert run(client, [bound(volume(name), device)], CHANGE)[0] == 0
    source = manifest(Path(device))

    from_snapshot, from_live = volume(f"{name}-c1", None), volume(f"{name}-c2", 400 * MiB)
    await storage.clone(name, "s1", from_snapshot)
    await storage.clone(name, None, from_live)
    assert manifest(Path(storage.layout.mountpoint(from_live.name))) == source
    attrs = client.api.inspect_volume(from_live.name)
    assert attrs["Options"]["device"] == str(storage.layout.mountpoint(from_live.name))
    assert attrs["Labels"] == {TEST_LABEL: SESSION}

    clone_device = await storage.ensure(from_snapshot)  # quota None: an existing quota volume stays one
    assert clone_device is not None
    code, out = run(client, [bound(from_snapshot, clone_device)], "cat /workspace/src/a.txt; rm -rf /workspace/src")
    assert code == 0 and out == "hello"  # the snapshot's content
    assert manifest(Path(device)) == source  # the source did not change
    usages = {u.name: u.quota for u in await storage.usage([from_snapshot.name, from_live.name])}
    assert usages == {from_snapshot.name: QUOTA, from_live.name: 400 * MiB}
    with pytest.raises(InvalidRequest, match="already exists"):
        await storage.clone(name, "s1", from_live)


async def test_a_snapshot_is_only_found_through_its_own_volume(
        client: docker.DockerClient, storage: DockerStorage, name: str) -> None:
    other = f"{name}-other"
    for each in (name, other):
        await storage.ensure(volume(each))
    await storage.snapshot(name, "s1", {})
    with pytest.raises(InvalidRequest, match="no snapshot"):
        await storage.restore(other, "s1")
    with pytest.raises(InvalidRequest, match="no snapshot"):
        await storage.clone(other, "s1", volume(f"{name}-x"))
    assert not await storage.delete_snapshot(other, "s1")
    assert await storage.snapshots(other) == []
    for bad in ("../x", f"../{name}/s1", "..", "s1/../../x", ".s1"):
        with pytest.raises(InvalidIdentifier):
            await storage.restore(other, bad)
    with pytest.raises(InvalidIdentifier):
        await storage.restore(f"../{name}", "s1")
    assert await storage.delete_snapshot(name, "s1")
    assert not storage.layout.snapshot_image(name, "s1").exists()


async def test_restore_and_remove_refuse_while_a_container_holds_the_volume(
        client: docker.DockerClient, storage: DockerStorage, name: str) -> None:
    device = await storage.ensure(volume(name))
    assert device is not None
    assert run(client, [bound(volume(name), device)], "echo before > /workspace/f")[0] == 0
    await storage.snapshot(name, "s1", {})
    _, cid = run(client, [bound(volume(name), device)], "echo during > /workspace/f; sleep 300", detach=True)
    time.sleep(0.5)
    with pytest.raises(ResourceInUse):
        await storage.restore(name, "s1")
    with pytest.raises(ResourceInUse):
        await storage.remove(name)
    assert (Path(device) / "f").read_text() == "during\n"  # still mounted, untouched
    assert exec_in(client.containers.get(cid), "echo more >> /workspace/f")[0] == 0
    client.containers.get(cid).remove(force=True)
    await storage.restore(name, "s1")
    assert (Path(device) / "f").read_text() == "before\n"


# -- the guards ------------------------------------------------------------------------------------------------


async def test_a_bare_mountpoint_cannot_be_written_and_the_lost_mount_is_noticed(
        client: docker.DockerClient, storage: DockerStorage, name: str) -> None:
    device = await storage.ensure(volume(name))
    assert device is not None
    assert run(client, [bound(volume(name), device)], "echo kept > /workspace/f")[0] == 0
    subprocess.run(["umount", device], check=True)  # behind the storage's back
    assert os.listdir(device) == [] and is_immutable(Path(device))
    # At /workspace (in the image) Docker's first-mount copy into the bare directory fails: no container.
    # At /data (not in the image) the container starts, and its writes fail. Even as root.
    for target, user, hardened in (("/workspace", "1000:1000", True), ("/data", "1000:1000", True),
                                   ("/data", "0:0", False)):
        bare = VolumeMount(name, target, {TEST_LABEL: SESSION}, quota=QUOTA)
        try:
            code, out = run(client, [bound(bare, device)], f"echo leak > {target}/leak && echo wrote",
                            user=user, hardened=hardened)
        except docker.errors.APIError as err:
            code, out = 1, str(err)
        assert code != 0 and "wrote" not in out and "not permitted" in out
        assert os.listdir(device) == []  # nothing reached the host's disk

    assert await storage.ensure(volume(name)) == device  # the stale mount is noticed and mounted again
    assert (Path(device) / "f").read_text() == "kept\n"


# -- idle volumes are unmounted ---------------------------------------------------------------------------------


async def until_released(device: str) -> None:
    """Until no container holds the volume mounted at `device` (a removal lets go up to ~0.25 s later)."""
    number = os.stat(device).st_dev
    deadline = time.monotonic() + 10
    while ((os.major(number), os.minor(number)) in mounts.devices_in_other_namespaces()
           or len(mounts.mounts_of(number)) > 1):
        assert time.monotonic() < deadline, f"{device} is still held"
        await asyncio.sleep(0.05)


def attached(image: Path) -> bool:
    return bool(subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True, check=True).stdout)


async def test_an_idle_volume_is_unmounted_and_its_next_use_finds_its_files(
        client: docker.DockerClient, storage: DockerStorage, name: str) -> None:
    device = await storage.ensure(volume(name))
    assert device is not None
    image = storage.layout.image(name)
    before_write = time.time_ns()
    assert run(client, [bound(volume(name), device)], "echo kept > /workspace/f")[0] == 0
    assert name not in await storage.unmount_idle(3600)  # used just now
    assert os.path.ismount(device)
    await until_released(device)  # (the container just removed lets go of it a little later)
    assert name in await storage.unmount_idle(0)
    assert not os.path.ismount(device) and not attached(image)
    assert os.listdir(device) == [] and is_immutable(Path(device))  # the guard is back in place
    # Retention's "last written" is the image's mtime: the project's write counts (flushed before the
    # unmount if it had not reached the image yet), XFS's own writes when it unmounts and mounts do not.
    written = os.stat(image).st_mtime_ns
    assert written >= before_write
    assert await storage.ensure(volume(name)) == device
    assert (Path(device) / "f").read_text() == "kept\n"
    assert os.stat(image).st_mtime_ns == written
    assert [u.last_written for u in await storage.usage([name])] == [os.stat(image).st_mtime]
    assert run(client, [mount(volume(name), Device(device, direct=True))], "cat /workspace/f") == (0, "kept\n")


async def test_reading_an_idle_volume_usage_mounts_it_without_counting_as_a_use(
        client: docker.DockerClient, storage: DockerStorage, name: str) -> None:
    device = await storage.ensure(volume(name))
    assert device is not None
    os.utime(storage.layout.in_use(name), (1000.0, 1000.0))  # last used long ago
    assert name in await storage.unmount_idle(60)
    [usage] = await storage.usage([name])
    assert usage.quota == QUOTA and os.path.ismount(device)
    assert os.stat(storage.layout.in_use(name)).st_mtime == 1000.0
    assert name in await storage.unmount_idle(60)  # still idle: the next sweep takes it again


async def test_the_idle_sweep_leaves_alone_a_volume_a_container_a_create_or_an_operation_holds(
        client: docker.DockerClient, storage: DockerStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    names = {kind: f"{PREFIX}-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("running", "creating", "operating", "idle")}
    devices = {kind: await storage.ensure(volume(n)) for kind, n in names.items()}
    held = mount(volume(names["running"]), Device(str(devices["running"]), direct=True))  # a later task's bind
    _, cid = run(client, [held], "sleep 300", detach=True)
    try:
        async with storage.using([volume(names["creating"])]) as using:
            assert using[names["creating"]].path == devices["creating"]
            with file_lock(storage.layout.lock(names["operating"])):  # e.g. a snapshot being taken
                gone = await storage.unmount_idle(0)
        assert names["idle"] in gone and not {names[k] for k in ("running", "creating", "operating")} & set(gone)
        assert all(os.path.ismount(str(devices[k])) for k in ("running", "creating", "operating"))
        # The namespace hint misses the container (it may, for one that starts meanwhile): the unmount
        # itself finds the filesystem held, and mounts it back where it was.
        monkeypatch.setattr(mounts, "devices_in_other_namespaces", set)
        assert names["running"] not in await storage.unmount_idle(0)
        assert os.path.ismount(str(devices["running"]))
        assert exec_in(client.containers.get(cid), "echo still > /workspace/g")[0] == 0
        assert (Path(str(devices["running"])) / "g").read_text() == "still\n"  # the same filesystem, both sides
    finally:
        client.containers.get(cid).remove(force=True)


async def test_a_sweep_while_a_create_starts_its_container_does_not_unmount_its_volume(
        client: docker.DockerClient, storage: DockerStorage, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race the use lock closes: the volume is found mounted, then a sweep (any process) would unmount
    it before the engine binds it at start, and the task would get the bare, empty mountpoint."""
    backend = DockerBackend(EngineSettings(), "1000:1000")
    backend.storage = storage

    def spec() -> ContainerSpec:
        return ContainerSpec(
            image=IMAGE, name=f"{PREFIX}-{uuid.uuid4().hex[:6]}", labels={TEST_LABEL: SESSION},
            volumes=(volume(name),), network="none",
            resources=Resources(memory="256m", cpus=1.0, pids=64, tmp_size="16m", home_size="16m"),
            security=SecuritySettings(),
        )

    swept: list[list[str]] = []
    real_start = docker.APIClient.start

    def start_after_a_sweep(api: docker.APIClient, container: str) -> None:
        swept.append(idle.unmount_idle(storage.layout, storage._volumes, 0))
        real_start(api, container)

    try:
        first = await backend.create(spec())
        assert exec_in(client.containers.get(first), "echo kept > /workspace/f")[0] == 0
        await backend.remove(first)
        await until_released(str(storage.layout.mountpoint(name)))  # so only the use lock keeps the sweep off
        monkeypatch.setattr(docker.APIClient, "start", start_after_a_sweep)
        second = await backend.create(spec())
        assert swept and name not in swept[0]
        assert exec_in(client.containers.get(second), "cat /workspace/f") == (0, b"kept\n")
        await backend.remove(second)
    finally:
        backend.close()


async def test_prepare_after_a_reboot_brings_the_same_data_back(client: docker.DockerClient, name: str) -> None:
    root = Path(f"/var/lib/{PREFIX}-reboot")
    first, engine = _storage_at(root)
    try:
        assert (await first.prepare()).enforced
        device = await first.ensure(volume(name))
        assert device is not None
        assert run(client, [bound(volume(name), device)], POPULATE)[0] == 0
        await first.snapshot(name, "s1", {})
        taken = manifest(Path(device))
        power_cut(root)
        assert mounts_under(root) == [] and not os.path.ismount(root / "pool")

        second, _ = _storage_at(root)
        assert (await second.prepare()).enforced
        assert (await second.prepare()).enforced  # idempotent
        size = (await second.pool_space()).size
        assert await second.grow_pool(17 * 1024**3) > size + 1000 * MiB  # online
        assert await second.ensure(volume(name, None)) == device
        assert manifest(Path(device)) == taken
        assert [r.id for r in await second.snapshots(name)] == ["s1"]
        assert await first.ensure(volume(name)) == device  # the first one's cached mount was checked again
        assert len(loops_under(root)) == 2  # the pool and the volume: nothing attached twice
    finally:
        _remove_engine_objects(client)
        engine.close()
        remove_root(root)


async def test_the_backend_mounts_quota_volumes_and_removes_their_filesystem(
        client: docker.DockerClient, storage: DockerStorage, name: str) -> None:
    backend = DockerBackend(EngineSettings(), "1000:1000")
    backend.storage = storage
    spec = ContainerSpec(
        image=IMAGE, name=f"{PREFIX}-{uuid.uuid4().hex[:6]}", labels={TEST_LABEL: SESSION},
        volumes=(volume(name),), network="none",
        resources=Resources(memory="256m", cpus=1.0, pids=64, tmp_size="16m", home_size="16m"),
        security=SecuritySettings(),
    )
    try:
        container_id = await backend.create(spec)
        code, out = exec_in(client.containers.get(container_id),
                            "stat -c %U /workspace; df -B1 --output=size /workspace | tail -1")
        assert code == 0 and out.split() == [b"sandbox", str(QUOTA).encode()]  # owned by the sandbox user
        await storage.snapshot(name, "s1", {})
        await backend.remove(container_id)
        assert await backend.remove_volume(name)
        assert not storage.layout.image(name).exists() and not storage.layout.mountpoint(name).exists()
        assert [r.id for r in await storage.snapshots(name)] == ["s1"]  # snapshots stay
    finally:
        backend.close()
