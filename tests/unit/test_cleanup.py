"""Orphan cleanup against the in-memory backend: what counts as an orphan, and what is never touched."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import time
from typing import Any

import pytest

from runtime import labels
from runtime.backends.base import ContainerRecord
from runtime.config import RuntimeConfig
from runtime.errors import SandboxError
from runtime.ops import cleanup
from runtime.ops import scheduler as scheduler_module
from runtime.ops.cleanup import CleanupReport, classify, find_orphans
from runtime.ops.scheduler import CleanupScheduler
from runtime.sandbox.owner import host_identity, owner_gone, process_start_ticks
from tests.unit.fake_backend import FakeBackend

OURS = "inst-ours"
HOST = "host-a"
NOW = 1_000_000.0
LIVE_PID, LIVE_START = 100, "5555"


def probe(pid: int) -> str | None:
    return LIVE_START if pid == LIVE_PID else None


def entry(
    name: str = "c1",
    *,
    state: str = "running",
    installation: str | None = OURS,
    managed: str | None = "true",
    expires: float = NOW + 60,
    host: str = HOST,
    pid: int = LIVE_PID,
    started: str = LIVE_START,
) -> ContainerRecord:
    values = {
        labels.TASK: f"task-{name}",
        labels.PROJECT: "proj",
        labels.CREATED_AT: str(int(NOW - 100)),
        labels.EXPIRES_AT: str(int(expires)),
        labels.OWNER_HOST: host,
        labels.OWNER_PID: str(pid),
        labels.OWNER_STARTED: started,
    }
    if managed is not None:
        values[labels.MANAGED] = managed
    if installation is not None:
        values[labels.INSTALLATION] = installation
    return ContainerRecord(f"id-{name}" + "0" * 20, name, state, values)


def why(container: ContainerRecord) -> str | None:
    return classify(container, OURS, now=NOW, host=HOST, probe=probe)


def test_live_owner_running_unexpired_container_is_kept() -> None:
    assert why(entry()) is None


@pytest.mark.parametrize("state", ["exited", "dead"])
def test_exited_and_dead_containers_are_orphans(state: str) -> None:
    assert why(entry(state=state)) == state


def test_container_past_expiry_is_an_orphan_even_with_a_live_owner() -> None:
    assert why(entry(expires=NOW - 1)) == "expired"


def test_container_whose_owner_pid_is_gone_is_an_orphan() -> None:
    assert why(entry(pid=4242)) == "owner gone"


def test_reused_owner_pid_with_another_start_time_is_an_orphan() -> None:
    assert why(entry(started="1234")) == "owner gone"


def test_owner_on_another_host_is_not_judged_by_local_pids() -> None:
    assert why(entry(host="host-b", pid=4242)) is None
    assert why(entry(host="host-b", pid=4242, expires=NOW - 1)) == "expired"


def test_same_hostname_in_another_pid_namespace_is_not_judged_by_local_pids() -> None:
    container = entry(host="vm/pidns:111", pid=4242)
    assert classify(container, OURS, now=NOW, host="vm/pidns:222", probe=probe) is None
    assert classify(container, OURS, now=NOW, host="vm/pidns:111", probe=probe) == "owner gone"


def test_host_identity_names_the_pid_namespace_on_linux() -> None:
    identity = host_identity()
    assert identity.startswith(socket.gethostname())
    if os.path.exists("/proc/self/ns/pid"):
        assert identity == f"{socket.gethostname()}/pidns:{os.stat('/proc/self/ns/pid').st_ino}"


def test_missing_or_garbled_owner_labels_do_not_make_an_orphan() -> None:
    container = entry()
    values: dict[str, str] = container.labels  # type: ignore[assignment]
    values[labels.OWNER_PID] = "not-a-pid"
    values[labels.EXPIRES_AT] = "soon"
    assert why(container) is None


@pytest.mark.parametrize(
    "container",
    [
        entry(state="exited", installation="inst-other"),
        entry(state="dead", installation=None),
        entry(state="exited", managed=None),
        entry(state="exited", managed="false"),
        entry(expires=NOW - 1, pid=4242, installation="inst-other"),
    ],
    ids=["other-installation", "no-installation", "unmanaged", "managed-false", "expired-foreign"],
)
def test_containers_without_our_labels_are_never_orphans(container: ContainerRecord) -> None:
    assert why(container) is None


def test_container_being_removed_is_left_to_the_engine() -> None:
    assert why(entry(state="removing", expires=NOW - 1)) is None


def test_owner_gone_needs_a_recorded_start_to_detect_pid_reuse() -> None:
    values = entry(started="").labels
    assert not owner_gone(values, host=HOST, probe=lambda pid: "999")  # alive, start unknown: keep
    assert owner_gone(values, host=HOST, probe=lambda pid: None)  # dead: orphan


def engine(containers: list[ContainerRecord], volumes: dict[str, dict[str, str]] | None = None) -> FakeBackend:
    backend = FakeBackend()
    for c in containers:
        backend.add_container(c.name, c.labels, state=c.state, container_id=c.id)
    for name, values in (volumes or {}).items():
        backend.add_volume(name, values)
    return backend


def removed(backend: FakeBackend) -> list[str]:
    return [str(arg) for call, arg in backend.calls if call == "remove"]


def run_cleanup(backend: FakeBackend, **kwargs: Any) -> CleanupReport:
    return asyncio.run(cleanup.cleanup(backend, OURS, now=NOW, host=HOST, probe=probe, **kwargs))


OUR_VOLUME = {labels.MANAGED: "true", labels.INSTALLATION: OURS}


def test_cleanup_removes_only_orphans_of_this_installation() -> None:
    backend = engine([entry("keep"), entry("gone", pid=4242), entry("old", state="exited"),
                      entry("foreign", state="exited", installation="inst-other")])
    report = run_cleanup(backend)
    assert sorted(removed(backend)) == sorted(["id-gone" + "0" * 20, "id-old" + "0" * 20])
    assert {o.name for o in report.removed} == {"gone", "old"}
    assert report.kept == 1  # "foreign" is not counted as ours at all
    assert sorted(c.name for c in backend.containers.values()) == ["foreign", "keep"]


def test_dry_run_lists_orphans_and_removes_nothing() -> None:
    backend = engine([entry("gone", pid=4242), entry("old", state="exited")], {"theappapp-project-p1": OUR_VOLUME})
    report = run_cleanup(backend, dry_run=True, volume_projects=["p1"])
    assert {o.name for o in report.orphans} == {"gone", "old"}
    assert report.removed == ()
    assert report.volumes == ("theappapp-project-p1",)
    assert removed(backend) == [] and len(backend.containers) == 2 and "theappapp-project-p1" in backend.volumes


def test_a_failed_removal_is_reported_and_the_rest_still_go() -> None:
    backend = engine([entry("stuck", state="dead"), entry("old", state="exited")])
    backend.fail_remove.add("id-stuck" + "0" * 20)
    report = run_cleanup(backend)
    assert [o.name for o, _ in report.failed] == ["stuck"]
    assert [o.name for o in report.removed] == ["old"]


def test_volumes_are_never_removed_without_being_named() -> None:
    backend = engine([], {"theappapp-project-p1": OUR_VOLUME})
    run_cleanup(backend)
    assert "theappapp-project-p1" in backend.volumes
    run_cleanup(backend, volume_projects=["p1"])
    assert backend.volumes == {}


def test_foreign_volume_is_refused_and_kept() -> None:
    backend = engine([], {"theappapp-project-p1": {labels.MANAGED: "true", labels.INSTALLATION: "x"}})
    with pytest.raises(SandboxError, match="left alone"):
        run_cleanup(backend, volume_projects=["p1"])
    assert "theappapp-project-p1" in backend.volumes


def test_volume_in_use_raises_a_clear_error() -> None:
    backend = engine([], {"theappapp-project-p1": OUR_VOLUME})
    backend.in_use.add("theappapp-project-p1")
    with pytest.raises(SandboxError, match="in use"):
        run_cleanup(backend, volume_projects=["p1"])


def test_missing_volume_is_not_an_error() -> None:
    assert run_cleanup(engine([]), volume_projects=["nope"]).volumes == ()


def test_an_empty_installation_id_is_refused() -> None:
    with pytest.raises(SandboxError, match="installation id"):
        asyncio.run(cleanup.cleanup(engine([entry(state="exited", installation="")]), ""))


@pytest.mark.parametrize(
    "argv, message",
    [(["--volumes"], "--volumes needs --project"), (["--project", "p"], "only applies with --volumes")],
)
def test_command_line_refuses_volume_removal_by_age(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cleanup.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_command_line_prints_what_it_would_remove(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = engine([entry("gone", pid=4242, expires=4e9)])  # judged at the real time: not expired
    monkeypatch.setattr(cleanup, "open_backend", lambda config: backend)
    monkeypatch.setattr(cleanup, "default_probe", probe)
    monkeypatch.setattr(cleanup, "host_identity", lambda: HOST)
    out = io.StringIO()
    args = argparse.Namespace(dry_run=True, volumes=False, project=[], installation=OURS, remove_idle=False,
                              idle_days=None)
    assert cleanup.run(args, out) == 0
    text = out.getvalue()
    assert "would remove container gone" in text and "owner gone" in text
    assert f"installation {OURS}: 1 orphan(s)" in text
    assert removed(backend) == []


async def test_scheduler_runs_rounds_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    rounds: list[int] = []
    job = CleanupScheduler(RuntimeConfig.load(installation_id=OURS), interval=0.05)

    async def fake_cleanup(backend: Any, installation: str) -> CleanupReport:
        rounds.append(1)
        if len(rounds) == 2:
            raise RuntimeError("engine hiccup")  # logged; the next round still runs
        return CleanupReport(False, (), 0)

    monkeypatch.setattr(scheduler_module, "cleanup", fake_cleanup)
    monkeypatch.setattr(scheduler_module, "open_backend", lambda config: FakeBackend())
    job.start()
    assert job.running
    for _ in range(100):  # three rounds, 0.05 s apart (generous: a loaded machine is slow)
        if len(rounds) >= 3:
            break
        await asyncio.sleep(0.05)
    await job.stop()
    seen = len(rounds)
    assert seen >= 3 and not job.running
    await asyncio.sleep(0.15)
    assert len(rounds) == seen  # stopped means stopped


async def test_scheduler_defaults_to_hourly_and_trigger_runs_a_round_now(monkeypatch: pytest.MonkeyPatch) -> None:
    job = CleanupScheduler(RuntimeConfig.load(installation_id=OURS), run_first=False)
    assert job.interval == 3600.0
    done = asyncio.Event()

    async def fake_cleanup(backend: Any, installation: str) -> CleanupReport:
        done.set()
        return CleanupReport(False, (), 0)

    monkeypatch.setattr(scheduler_module, "cleanup", fake_cleanup)
    monkeypatch.setattr(scheduler_module, "open_backend", lambda config: FakeBackend())
    job.start()
    await asyncio.sleep(0.05)
    assert not done.is_set()  # run_first=False: nothing until the interval or a trigger
    job.trigger()
    await asyncio.wait_for(done.wait(), 2)
    await job.stop()
    assert job.rounds == 1


def test_scheduler_rejects_a_non_positive_interval() -> None:
    with pytest.raises(SandboxError):
        CleanupScheduler(RuntimeConfig.load(installation_id=OURS), interval=0)


def test_a_projects_language_caches_go_with_its_volume_and_nobody_elses() -> None:
    def cache(project: str, installation: str = OURS) -> dict[str, str]:
        return {labels.MANAGED: "true", labels.INSTALLATION: installation, labels.PROJECT: project, labels.CACHE: "go"}

    backend = engine([], {
        "theappapp-project-p1": OUR_VOLUME,
        "theappapp-cache.go.p1": cache("p1"),
        "theappapp-cache.go.p2": cache("p2"),
        "theappapp-cache.go.p1-x": cache("p1", installation="other"),
    })
    dry = run_cleanup(backend, dry_run=True, volume_projects=["p1"])
    assert dry.volumes == ("theappapp-project-p1", "theappapp-cache.go.p1") and len(backend.volumes) == 4
    report = run_cleanup(backend, volume_projects=["p1"])
    assert report.volumes == ("theappapp-project-p1", "theappapp-cache.go.p1")
    assert sorted(backend.volumes) == ["theappapp-cache.go.p1-x", "theappapp-cache.go.p2"]


def test_a_cache_in_use_stops_the_deletion_before_the_projects_files_go() -> None:
    backend = engine([], {
        "theappapp-project-p1": OUR_VOLUME,
        "theappapp-cache.go.p1": {**OUR_VOLUME, labels.PROJECT: "p1", labels.CACHE: "go"},
    })
    backend.in_use.add("theappapp-cache.go.p1")
    with pytest.raises(SandboxError, match="in use"):
        run_cleanup(backend, volume_projects=["p1"])
    assert "theappapp-project-p1" in backend.volumes  # the project's files are still there


async def test_the_egress_proxy_goes_only_when_no_sandbox_uses_it_and_its_maker_is_gone() -> None:
    names = labels
    backend = FakeBackend()
    gone = {names.MANAGED: "true", names.INSTALLATION: "inst", names.ROLE: "egress-proxy",
            names.EGRESS_NETWORK: "egress-net", names.OWNER_HOST: host_identity(), names.OWNER_PID: "999999999",
            names.OWNER_STARTED: "1"}
    proxy = backend.add_container("egress-net-proxy", gone)
    user = backend.add_container("theappapp-p-t", {names.MANAGED: "true", names.INSTALLATION: "other"})
    user.network = "egress-net"
    orphans, _ = await find_orphans(backend, "inst")
    assert orphans == []  # a sandbox (of any installation) is on its network
    user.network = "theappapp-sandbox"
    orphans, _ = await find_orphans(backend, "inst")
    assert [(o.container_id, o.reason) for o in orphans] == [(proxy.id, "unused egress proxy")]
    proxy.labels[names.OWNER_PID] = str(os.getpid())  # its maker lives: kept even unused
    proxy.labels[names.OWNER_STARTED] = process_start_ticks(os.getpid()) or ""
    assert (await find_orphans(backend, "inst"))[0] == []


def test_idle_projects_are_listed_by_a_dry_run_and_removed_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FakeBackend()
    old = str(int(time.time()) - 90 * 86400)
    for project in ("stale", "busy", "fresh", "unknown"):
        name = f"theappapp-project-{project}"
        backend.add_volume(name, {labels.MANAGED: "true", labels.INSTALLATION: OURS, labels.PROJECT: project,
                                  labels.CREATED_AT: old})
        if project != "unknown":  # a plain volume: when it was last written, nobody can tell
            backend.storage.written[name] = time.time() - (86400 if project == "fresh" else 90 * 86400)
    backend.add_container("theappapp-busy-t", {labels.MANAGED: "true"}, volumes=("theappapp-project-busy",))
    monkeypatch.setattr(cleanup, "open_backend", lambda config: backend)
    monkeypatch.setattr(cleanup, "default_probe", probe)

    def run(**flags: Any) -> str:
        out = io.StringIO()
        values: dict[str, Any] = {"dry_run": False, "volumes": False, "project": [], "installation": OURS,
                                  "remove_idle": False, "idle_days": 30.0}
        args = argparse.Namespace(**(values | flags))
        cleanup.run(args, out)
        return out.getvalue()

    listed = run(dry_run=True)
    assert "idle project stale (idle 90 days): volume theappapp-project-stale: kept" in listed
    assert "busy" not in listed and "fresh" not in listed and "unknown" not in listed
    assert "theappapp-project-stale" in backend.volumes  # a dry run removes nothing
    assert "idle" not in run()  # nor does a plain cleanup list or remove them
    assert "removed idle project stale: volume theappapp-project-stale" in run(remove_idle=True)
    assert set(backend.volumes) == {"theappapp-project-busy", "theappapp-project-fresh", "theappapp-project-unknown"}


def holder(name: str, *, state: str = "running", pid: int = LIVE_PID) -> ContainerRecord:
    """A network namespace holder (runtime/backends/docker/netns.py): no task, no expiry."""
    base = entry(name, state=state, pid=pid)
    values = {k: v for k, v in base.labels.items() if k not in (labels.TASK, labels.EXPIRES_AT)}
    return ContainerRecord(base.id, name, state, {**values, labels.ROLE: "netns"})


def joined(name: str, to: ContainerRecord, **kwargs: Any) -> ContainerRecord:
    base = entry(name, **kwargs)
    return ContainerRecord(base.id, name, base.state, {**base.labels, labels.NETNS: to.id})


def test_a_network_holder_goes_when_unused_and_its_manager_is_gone_never_by_age() -> None:
    kept_free = holder("free-live-owner")  # its manager may still hand it to a task
    gone_free = holder("free-dead-owner", pid=4242)
    stopped = holder("stopped", state="exited")
    in_use = holder("in-use-dead-owner", pid=4242)
    task = entry("task-live-owner")
    backend = engine([kept_free, gone_free, stopped, in_use, task, joined("in-it", in_use)])
    report = run_cleanup(backend)
    assert {(o.name, o.reason) for o in report.removed} == {
        ("free-dead-owner", "unused network holder"), ("stopped", "unused network holder")}
    assert report.kept == 4


def test_a_holder_whose_only_sandbox_is_an_orphan_goes_in_the_same_run_after_it() -> None:
    dead = holder("dead-holder", pid=4242)
    backend = engine([dead, joined("orphan-task", dead, pid=4242)])
    report = run_cleanup(backend)
    assert [o.name for o in report.removed] == ["orphan-task", "dead-holder"]  # the sandbox first
    assert removed(backend) == [joined("orphan-task", dead).id, dead.id]


def test_a_holder_stays_when_the_orphan_in_its_namespace_could_not_be_removed() -> None:
    dead = holder("dead-holder", pid=4242)
    stuck = joined("stuck-task", dead, pid=4242)
    backend = engine([dead, stuck])
    backend.fail_remove = {stuck.id}
    report = run_cleanup(backend)
    assert [(o.name, why) for o, why in report.failed][1] == (
        "dead-holder", "a sandbox in its network namespace could not be removed")
    assert removed(backend) == [stuck.id]  # tried; the holder was not: the sandbox keeps its network
