"""The idle sweep's decisions (runtime/backends/docker/storage/idle.py) and the create's side of its locks,
without root: what is mounted, and the unmount itself, are stood in for; the flocks and files are real."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runtime.backends.base import ResourceInUse
from runtime.backends.docker.storage import DockerStorage, idle, locks, mounts
from runtime.backends.docker.storage.layout import Layout
from runtime.backends.docker.storage.locks import SharedWait, delete_held, file_lock, take_flock
from runtime.backends.docker.storage.mounts import held_elsewhere, parse_mountinfo
from runtime.errors import EngineError

LONG_AGO = 1000.0
DEVICE = os.makedev(7, 3)


class FakeVolumes:
    """`Volumes.down` as the sweep sees it: it writes the image (as XFS's unmount record does), or refuses."""

    def __init__(self, layout: Layout, refuse: dict[str, Exception]) -> None:
        self.layout = layout
        self.refuse = refuse
        self.downs: list[str] = []

    def down(self, name: str, grace: float = 2.0) -> None:
        assert grace == idle.SWEEP_GRACE  # not the 2 s a removal gets: a volume held now is left at once
        self.downs.append(name)
        if name in self.refuse:
            raise self.refuse[name]
        os.utime(self.layout.image(name))  # now


@pytest.fixture(autouse=True)
def flushes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The sweep's `sync --file-system` before each unmount, recorded instead of run."""
    ran: list[list[str]] = []
    monkeypatch.setattr(idle.commands, "run", lambda argv, **_: ran.append(argv) or "")
    monkeypatch.setattr(mounts, "thaw_if_frozen", lambda path: ran.append(["thaw", str(path)]) and False)
    return ran


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    found = Layout.at(tmp_path)
    found.volumes.mkdir(parents=True)
    found.locks.mkdir()
    return found


def volume(layout: Layout, name: str, *, used: float | None, written: float = LONG_AGO) -> None:
    layout.image(name).touch()
    os.utime(layout.image(name), (written, written))
    if used is not None:
        layout.in_use(name).touch()
        os.utime(layout.in_use(name), (used, used))


def mounted(monkeypatch: pytest.MonkeyPatch, layout: Layout, names: set[str],
            elsewhere: frozenset[str] = frozenset()) -> None:
    by_path = {layout.mountpoint(n): os.makedev(7, i + 10) for i, n in enumerate(sorted(names))}
    monkeypatch.setattr(mounts, "mounted_device", lambda path: by_path.get(path))
    held = {(os.major(by_path[layout.mountpoint(n)]), os.minor(by_path[layout.mountpoint(n)])) for n in elsewhere}
    monkeypatch.setattr(mounts, "devices_in_other_namespaces", lambda: set(held))


def test_the_sweep_unmounts_only_what_is_mounted_idle_and_free(layout: Layout, monkeypatch: pytest.MonkeyPatch,
                                                               flushes: list[list[str]]) -> None:
    now = time.time()
    volume(layout, "idle", used=LONG_AGO)
    volume(layout, "recent", used=now)
    volume(layout, "legacy-idle", used=None)  # no use file yet: its image's last write stands in
    volume(layout, "legacy-recent", used=None, written=now)
    volume(layout, "not-mounted", used=LONG_AGO)
    volume(layout, "in-a-container", used=LONG_AGO)
    volume(layout, "creating", used=LONG_AGO)
    volume(layout, "operating", used=LONG_AGO)
    volume(layout, "held", used=LONG_AGO)
    volume(layout, "broken", used=LONG_AGO)
    mounted(monkeypatch, layout, {"idle", "recent", "legacy-idle", "legacy-recent", "in-a-container", "creating",
                                  "operating", "held", "broken"}, elsewhere={"in-a-container"})
    volumes = FakeVolumes(layout, {"held": ResourceInUse("held"), "broken": EngineError("umount failed")})
    creating = take_flock(layout.in_use("creating"), exclusive=False, wait=False)  # a create, another process
    assert creating is not None
    try:
        with file_lock(layout.lock("operating")):  # a snapshot under way
            gone = idle.unmount_idle(layout, volumes, 600, None)  # type: ignore[arg-type]
    finally:
        os.close(creating)
    assert gone == ["idle", "legacy-idle"]  # "broken" was tried, said, and the sweep went on
    assert sorted(volumes.downs) == ["broken", "held", "idle", "legacy-idle"]
    # Each flushed first (the project's last writes reach the image and count); the unmount's own write
    # to the image is not the project's: its mtime is given back.
    # A frozen one is thawed first (a flush would hang on it).
    mountpoints = [str(layout.mountpoint(n)) for n in volumes.downs]
    assert [argv for argv in flushes if argv[0] == "thaw"] == [["thaw", m] for m in mountpoints]
    assert [argv[-1] for argv in flushes if argv[0] != "thaw"] == mountpoints
    assert os.stat(layout.image("idle")).st_mtime == LONG_AGO == os.stat(layout.image("legacy-idle")).st_mtime
    # A volume that had no use file gets one, dated by its image's last write; a recent one is not touched.
    assert os.stat(layout.in_use("legacy-idle")).st_mtime == LONG_AGO
    assert not layout.in_use("legacy-recent").exists()


def test_a_volume_used_while_the_sweep_took_its_locks_stays(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    volume(layout, "v", used=LONG_AGO)
    mounted(monkeypatch, layout, {"v"})
    real_lock = idle.file_lock

    def lock_after_a_use(path: Path, wait: bool = True) -> object:
        if path == layout.lock("v"):
            os.utime(layout.in_use("v"))  # a create came and went between the first look and the locks
        return real_lock(path, wait=wait)

    monkeypatch.setattr(idle, "file_lock", lock_after_a_use)
    volumes = FakeVolumes(layout, {})
    assert idle.unmount_idle(layout, volumes, 600, None) == [] and volumes.downs == []  # type: ignore[arg-type]


def test_a_use_file_made_since_the_first_look_means_used(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    volume(layout, "v", used=None)  # from before use files, idle by its image
    mounted(monkeypatch, layout, {"v"})
    real_last_used = idle.last_used

    def first_look(path: Path) -> float | None:
        found = real_last_used(path)
        layout.in_use("v").touch()  # a create made it right after the sweep looked
        return found

    monkeypatch.setattr(idle, "last_used", first_look)
    volumes = FakeVolumes(layout, {})
    assert idle.unmount_idle(layout, volumes, 600, None) == [] and volumes.downs == []  # type: ignore[arg-type]


def test_a_stopped_sweep_unmounts_nothing_more(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    volume(layout, "a", used=LONG_AGO)
    volume(layout, "b", used=LONG_AGO)
    mounted(monkeypatch, layout, {"a", "b"})
    stop = threading.Event()
    volumes = FakeVolumes(layout, {})
    real_down = volumes.down

    def down_then_stop(name: str, grace: float = 2.0) -> None:
        real_down(name, grace)
        stop.set()  # close() during the first unmount

    volumes.down = down_then_stop  # type: ignore[method-assign]
    assert idle.unmount_idle(layout, volumes, 600, stop) == ["a"]  # type: ignore[arg-type]


def test_only_mounts_that_an_unmount_of_ours_reaches_are_left_out_of_what_holds_a_volume() -> None:
    own = parse_mountinfo("40 30 7:1 / /s/mounts/v rw shared:7 - xfs /dev/loop1 rw\n"
                          "44 30 7:2 / /s/mounts/w rw shared:9 - xfs /dev/loop2 rw\n")
    service = parse_mountinfo("41 31 7:1 / /s/mounts/v rw master:7 - xfs /dev/loop1 rw\n"  # systemd's slave copy
                              "45 31 7:2 / /s/mounts/w rw shared:9 - xfs /dev/loop2 rw\n")  # a peer
    first_task = parse_mountinfo("42 32 7:1 / /workspace rw master:7 - xfs /dev/loop1 rw\n")  # a slave bind
    later_task = parse_mountinfo("43 33 7:2 / /workspace rw - xfs /dev/loop2 rw\n")  # rprivate bind
    elsewhere = parse_mountinfo("46 34 7:1 / /s/mounts/v rw master:8 - xfs /dev/loop1 rw\n")  # another group
    assert held_elsewhere(own, [service]) == set()
    assert held_elsewhere(own, [service, first_task]) == {(7, 1)}
    assert held_elsewhere(own, [later_task]) == {(7, 2)}
    assert held_elsewhere(own, [elsewhere]) == {(7, 1)}
    assert held_elsewhere([], [service]) == {(7, 1), (7, 2)}  # not mounted here: every mount holds it


# -- the create's side ------------------------------------------------------------------------------


def _no_engine() -> object:
    raise AssertionError("the engine must not be asked")


async def test_a_create_waits_for_a_sweep_and_one_that_gives_up_leaves_no_lock(tmp_path: Path) -> None:
    storage = DockerStorage(_no_engine, root=str(tmp_path))  # type: ignore[arg-type]
    path = storage.layout.in_use("v")
    with file_lock(path):  # a sweep at this volume
        waiting = asyncio.ensure_future(storage._hold_use("v"))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        waiting = asyncio.ensure_future(storage._hold_use("v"))
        await asyncio.sleep(0.1)
        assert not waiting.done()
    fd = await asyncio.wait_for(waiting, 5)  # the sweep went on: the create gets its shared lock
    with file_lock(path, wait=False) as free:
        assert not free
    os.close(fd)
    deadline = time.monotonic() + 5  # the cancelled wait's thread gets the lock too, and lets go at once
    while True:
        with file_lock(path, wait=False) as free:
            if free:
                break
        assert time.monotonic() < deadline, "the abandoned wait kept the use lock"
        await asyncio.sleep(0.05)


def test_a_shared_wait_given_up_on_leaves_no_lock_whichever_ends_first(tmp_path: Path) -> None:
    path = tmp_path / "v.use"
    for abandon_first in (True, False):
        waiting = SharedWait(path)
        with file_lock(path):  # the sweep holds it while the create gives up
            thread = threading.Thread(target=waiting.run)
            thread.start()
            if abandon_first:
                waiting.abandon()
        thread.join(5)
        if not abandon_first:
            waiting.abandon()
        with file_lock(path, wait=False) as free:
            assert free, f"the lock was kept (abandoned {'before' if abandon_first else 'after'} it was taken)"


async def test_a_use_lock_whose_date_cannot_be_set_is_let_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = DockerStorage(_no_engine, root=str(tmp_path))  # type: ignore[arg-type]

    def fails(*_: object) -> None:
        raise OSError("read-only")

    monkeypatch.setattr(os, "utime", fails)
    with pytest.raises(OSError, match="read-only"):
        await storage._hold_use("v")
    with file_lock(storage.layout.in_use("v"), wait=False) as free:
        assert free


async def test_creates_start_a_sweep_at_most_once_a_minute_and_close_stops_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = threading.Event()
    calls: list[threading.Event | None] = []
    stopped: list[bool] = []

    def sweep(layout: Layout, volumes: object, seconds: float, stop: threading.Event | None) -> list[str]:
        calls.append(stop)
        started.set()
        stopped.append(stop is not None and stop.wait(5))  # runs until close() asks it to stop
        return []

    monkeypatch.setattr(idle, "unmount_idle", sweep)
    storage = DockerStorage(_no_engine, root=str(tmp_path))  # type: ignore[arg-type]
    sweeper = storage.sweeper
    sweeper.soon()
    assert started.wait(5)
    sweeper.soon()  # one a minute, and never two at once
    t0 = time.monotonic()
    storage.close()
    assert time.monotonic() - t0 < 2 and len(calls) == 1 and stopped == [True]
    assert sweeper.thread is not None and not sweeper.thread.is_alive()
    sweeper.last = -1e9  # a minute on: the backend, reopened, sweeps again
    sweeper.soon()
    assert sweeper.thread.is_alive() and len(calls) == 2
    storage.close()
    assert stopped == [True, True]
    never = DockerStorage(_no_engine, root=str(tmp_path), idle_unmount=0)  # type: ignore[arg-type]
    never.sweeper.soon()
    assert never.sweeper.thread is None


# -- a removed volume's lock files ----------------------------------------------------------------------


def test_a_lock_file_deleted_while_waited_for_is_taken_at_its_new_file(tmp_path: Path) -> None:
    """Without the checks, the waiter would hold the deleted file while the next comer locks a new one:
    two holders of one volume's lock."""
    path = tmp_path / "v.lock"
    taken: list[int] = []
    with file_lock(path):  # a removal holds it ...
        waiter = threading.Thread(target=lambda: taken.append(take_flock(path, exclusive=True, wait=True) or -1))
        waiter.start()
        time.sleep(0.1)  # (it has opened the file and waits for the flock)
        delete_held(path)  # ... and deletes it before it lets go
    waiter.join(5)
    assert taken and taken[0] >= 0
    try:
        assert os.fstat(taken[0]).st_ino == os.stat(path).st_ino  # the file at the path now, not the old one
        assert take_flock(path, exclusive=True, wait=False) is None  # so the next comer waits for it
    finally:
        os.close(taken[0])


def test_a_lock_taken_just_after_its_file_was_deleted_is_taken_again_at_the_new_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opened before the deletion, locked after the holder let go (a taker that does not wait: the sweep)."""
    path = tmp_path / "v.lock"
    real_flock = locks._flock_file

    def opened_then_deleted(*args: object) -> int | None:
        fd = real_flock(*args)  # type: ignore[arg-type]
        if not deleted:
            deleted.append(path)
            path.unlink()  # (what a holder's `delete_held` did between this open and its flock)
        return fd

    deleted: list[Path] = []
    monkeypatch.setattr(locks, "_flock_file", opened_then_deleted)
    fd = take_flock(path, exclusive=True, wait=False)
    assert deleted and fd is not None
    try:
        assert os.fstat(fd).st_ino == os.stat(path).st_ino
    finally:
        os.close(fd)


WAITER = """
import os, sys
from pathlib import Path
from runtime.backends.docker.storage.locks import take_flock
fd = take_flock(Path(sys.argv[1]), exclusive=True, wait=True)
print(os.fstat(fd).st_ino, flush=True)
sys.stdin.read()
"""


def _until_open_elsewhere(path: Path, proc: subprocess.Popen[str]) -> None:
    found = os.stat(path)
    deadline = time.monotonic() + 30
    while not locks.opened_elsewhere({(found.st_dev, found.st_ino): path}):
        assert time.monotonic() < deadline and proc.poll() is None, "the other process never opened the file"
        time.sleep(0.01)


def _missed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first look misses what is open: a process that opened the file just after it, before the unlink."""
    real = locks.opened_elsewhere
    calls: list[int] = []

    def missing_the_first(files: dict[tuple[int, int], Path]) -> set[tuple[int, int]]:
        calls.append(1)
        return set() if len(calls) == 1 else real(files)

    monkeypatch.setattr(locks, "opened_elsewhere", missing_the_first)


def _waiter(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WAITER, str(path)], cwd=Path(__file__).resolve().parents[2],
                            text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _inode_it_took(waiter: subprocess.Popen[str]) -> int:
    assert waiter.stdout is not None and waiter.stdin is not None
    try:
        return int(waiter.stdout.readline())
    finally:
        waiter.stdin.close()
        waiter.wait(10)


@pytest.mark.parametrize("opened_after_the_look", [False, True])
def test_a_lock_file_another_process_waits_for_is_left_or_it_moves_to_the_new_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened_after_the_look: bool) -> None:
    """A waiter seen before the unlink keeps the file (a later prune deletes it); one that opened it after that
    look (this version) moves to the new file within one of its polls; either way one holder at a time."""
    path = tmp_path / "v.lock"
    with file_lock(path):
        waiter = _waiter(path)
        try:
            _until_open_elsewhere(path, waiter)
            if opened_after_the_look:
                _missed_once(monkeypatch)
            t0 = time.monotonic()
            deleted = delete_held(path, wait=5)
            assert time.monotonic() - t0 < 2
            assert deleted == ([path] if opened_after_the_look else [])
            inode = os.stat(path).st_ino  # (a new file when deleted: the waiter made it)
        except BaseException:
            waiter.kill()
            raise
    assert _inode_it_took(waiter) == inode


def test_a_deleted_lock_file_still_open_elsewhere_is_waited_for(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that keeps the deleted file open (an older version's waiter, which does not move) could get
    its flock beside the new file's holder once the deleter lets go: the deleter waits until it closed it."""
    old = tmp_path / "old.lock"
    old.touch()
    holder = subprocess.Popen(["sh", "-c", f"exec 3<'{old}'; read line; exit 0"], stdin=subprocess.PIPE, text=True)
    try:
        _until_open_elsewhere(old, holder)
        _missed_once(monkeypatch)
        assert holder.stdin is not None
        threading.Timer(0.5, holder.stdin.close).start()  # it lets go of the file in half a second
        t0 = time.monotonic()
        assert delete_held(old, wait=10) == [old]
        assert 0.4 < time.monotonic() - t0 < 10
        assert holder.wait(5) == 0
    finally:
        holder.kill()
        holder.wait()


def test_a_removed_volume_leaves_no_lock_files_unless_a_create_holds_its_use_lock(layout: Layout) -> None:
    from runtime.backends.docker.storage.volumes import Volumes

    for name in ("gone", "creating"):
        layout.lock(name).touch()
        layout.in_use(name).touch()
    with file_lock(layout.lock("gone")):  # (as every removal holds it)
        assert Volumes(layout, 0, 0).remove("gone") is False  # (no filesystem: nothing else to remove)
    assert not layout.lock("gone").exists() and not layout.in_use("gone").exists()
    create = take_flock(layout.in_use("creating"), exclusive=False, wait=False)
    assert create is not None
    try:
        with file_lock(layout.lock("creating")):
            Volumes(layout, 0, 0).remove("creating")
        assert not layout.lock("creating").exists() and layout.in_use("creating").exists()
    finally:
        os.close(create)


def test_a_volume_removed_after_the_sweep_listed_it_leaves_no_lock_files(layout: Layout,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    mounted(monkeypatch, layout, set())
    volumes = FakeVolumes(layout, {})
    assert idle._unmount_if_free(layout, volumes, "removed", None) is False  # type: ignore[arg-type]
    assert volumes.downs == []
    assert not layout.lock("removed").exists() and not layout.in_use("removed").exists()


@pytest.fixture
def pool_mounted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idle.Pool, "mounted", lambda self: True)


def test_the_sweep_prunes_lock_files_of_volumes_that_are_gone_and_free(layout: Layout, pool_mounted: None) -> None:
    volume(layout, "live", used=LONG_AGO)
    layout.lock("live").touch()
    for name in ("gone1", "gone2", "held", "creating", "nouse"):
        layout.lock(name).touch()
        layout.in_use(name).touch()
    layout.in_use("nouse").unlink()  # (only an operation lock left)
    (layout.locks / "not a volume!.lock").touch()
    with file_lock(layout.lock("held")):  # an operation on it (a restore from a snapshot) keeps its files
        create = take_flock(layout.in_use("creating"), exclusive=False, wait=False)  # so does a create
        assert create is not None
        try:
            assert idle.prune_lock_files(layout) == 3
        finally:
            os.close(create)
    left = sorted(p.name for p in layout.locks.iterdir())
    assert left == ["creating.lock", "creating.use", "held.lock", "held.use", "live.lock", "live.use",
                    "not a volume!.lock"]


def test_the_sweep_prunes_at_most_so_many_and_stops_when_asked(layout: Layout, pool_mounted: None) -> None:
    for k in range(5):
        layout.lock(f"gone{k}").touch()
    assert idle.prune_lock_files(layout, at_most=2) == 2
    stop = threading.Event()
    stop.set()
    assert idle.prune_lock_files(layout, stop) == 0
    assert idle.prune_lock_files(layout) == 3
    assert list(layout.locks.iterdir()) == []


def test_lock_files_that_cannot_go_do_not_fail_the_removal(layout: Layout, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from runtime.backends.docker.storage.volumes import Volumes

    def refused(*_: object, **__: object) -> int:
        raise PermissionError("read-only")

    monkeypatch.setattr(locks, "take_flock", refused)
    assert Volumes(layout, 0, 0).remove("gone") is False
    assert "lock files of removed volume gone were left" in caplog.text


def test_the_sweep_prunes_no_lock_files_without_its_pool_nor_of_a_volume_used_lately(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    layout.lock("gone").touch()
    layout.lock("plain").touch()
    layout.in_use("plain").touch()  # (a plain volume: no filesystem of its own, used just now)
    monkeypatch.setattr(idle.Pool, "mounted", lambda self: False)
    assert idle.prune_lock_files(layout) == 0  # no pool: every volume would look gone
    monkeypatch.setattr(idle.Pool, "mounted", lambda self: True)
    assert idle.prune_lock_files(layout, idle=600) == 1
    assert sorted(p.name for p in layout.locks.iterdir()) == ["plain.lock", "plain.use"]


def test_the_prune_leaves_a_volume_made_meanwhile_and_lets_its_locks_go_at_once(
        layout: Layout, pool_mounted: None, monkeypatch: pytest.MonkeyPatch) -> None:
    layout.lock("made").touch()
    real = idle._both_locks

    def made_meanwhile(layout_: Layout, name: str) -> object:
        held = real(layout_, name)
        layout.image(name).touch()  # (its create made the volume between the listing and the locks)
        return held

    monkeypatch.setattr(idle, "_both_locks", made_meanwhile)
    calls: list[tuple[Path, ...]] = []
    monkeypatch.setattr(idle, "delete_held", lambda *paths, **_: calls.append(paths) or [])
    assert idle.prune_lock_files(layout) == 0
    assert layout.lock("made").exists() and calls in ([], [()])
    for path in (layout.lock("made"), layout.in_use("made")):
        with file_lock(path, wait=False) as free:
            assert free  # let go before the prune ended, not kept


def test_the_prune_holds_at_most_a_batch_of_volumes_locks_at_once(layout: Layout, pool_mounted: None,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for k in range(idle.PRUNE_BATCH * 2 + 3):
        layout.lock(f"gone{k:03}").touch()
    real = idle.delete_held
    batches: list[int] = []

    def counted(*paths: Path, **kwargs: float | None) -> list[Path]:
        batches.append(len(paths) // 2)
        return real(*paths, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(idle, "delete_held", counted)
    assert idle.prune_lock_files(layout) == idle.PRUNE_BATCH * 2 + 3
    assert batches == [idle.PRUNE_BATCH, idle.PRUNE_BATCH, 3]


def test_a_lock_file_that_cannot_go_does_not_stop_the_prune(layout: Layout, pool_mounted: None) -> None:
    layout.lock("a-dir").mkdir()  # (not a file: flock refuses it)
    layout.lock("z-gone").touch()
    assert idle.prune_lock_files(layout) == 1
    assert not layout.lock("z-gone").exists()


def test_a_deleted_lock_file_needs_two_clean_looks_before_it_is_let_go(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An open under way during one look shows in the next: clean, busy, clean, clean."""
    path = tmp_path / "v.lock"
    path.touch()
    looks = [set(), set(), {(0, 0)}, set(), set()]  # the first: before the unlink
    monkeypatch.setattr(locks, "opened_elsewhere", lambda files: looks.pop(0) and set(files))
    assert delete_held(path, wait=10) == [path]
    assert looks == []
