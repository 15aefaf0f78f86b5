"""Orphan cleanup without Docker: what counts as an orphan, and what is never touched."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
from typing import Any

import docker.errors
import pytest

from runtime import labels
from runtime.config import RuntimeConfig
from runtime.errors import SandboxError
from runtime.ops import cleanup
from runtime.ops.cleanup import CleanupReport, CleanupScheduler, classify, owner_gone
from runtime.sandbox.owner import host_identity

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
) -> dict[str, Any]:
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
    return {"Id": f"id-{name}" + "0" * 20, "Names": [f"/{name}"], "State": state, "Labels": values}


def why(container: dict[str, Any]) -> str | None:
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
    container["Labels"][labels.OWNER_PID] = "not-a-pid"
    container["Labels"][labels.EXPIRES_AT] = "soon"
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
def test_containers_without_our_labels_are_never_orphans(container: dict[str, Any]) -> None:
    assert why(container) is None


def test_container_being_removed_is_left_to_the_engine() -> None:
    assert why(entry(state="removing", expires=NOW - 1)) is None


def test_owner_gone_needs_a_recorded_start_to_detect_pid_reuse() -> None:
    values = entry(started="")["Labels"]
    assert not owner_gone(values, host=HOST, probe=lambda pid: "999")  # alive, start unknown: keep
    assert owner_gone(values, host=HOST, probe=lambda pid: None)  # dead: orphan


class FakeAPI:
    """The few docker.APIClient calls cleanup makes, over an in-memory engine."""

    def __init__(self, containers: list[dict[str, Any]], volumes: dict[str, dict[str, Any]] | None = None) -> None:
        self.containers_ = containers
        self.volumes_ = volumes or {}
        self.removed: list[str] = []
        self.removed_volumes: list[str] = []
        self.fail: set[str] = set()
        self.in_use: set[str] = set()
        self.filters: list[Any] = []

    def containers(self, all: bool, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        assert all
        self.filters.append(filters)
        return list(self.containers_)  # deliberately unfiltered: classify() must hold the line alone

    def remove_container(self, container_id: str, force: bool, v: bool) -> None:
        assert force and not v  # anonymous volumes are not ours to judge; named ones never go this way
        if container_id in self.fail:
            raise docker.errors.APIError("boom", explanation="device busy")
        self.removed.append(container_id)

    def inspect_volume(self, name: str) -> dict[str, Any]:
        if name not in self.volumes_:
            raise docker.errors.NotFound("no such volume")
        return self.volumes_[name]

    def volumes(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        """The engine's label filter: every `key=value` must match, every bare `key` be present."""
        def matches(values: dict[str, str]) -> bool:
            return all(
                values.get(key) == value if sep else key in values
                for key, sep, value in (f.partition("=") for f in filters["label"])
            )

        found = [{"Name": n, **v} for n, v in self.volumes_.items() if matches(v.get("Labels") or {})]
        return {"Volumes": found or None}

    def remove_volume(self, name: str) -> None:
        if name in self.in_use:
            response = type("R", (), {"status_code": 409, "reason": "Conflict", "url": ""})()
            raise docker.errors.APIError("in use", response=response, explanation="volume is in use")
        self.removed_volumes.append(name)
        self.volumes_.pop(name, None)


def run_cleanup(api: FakeAPI, **kwargs: Any) -> CleanupReport:
    return cleanup.cleanup(api, OURS, now=NOW, host=HOST, probe=probe, **kwargs)  # type: ignore[arg-type]


def test_cleanup_removes_only_orphans_and_asks_the_engine_for_our_labels() -> None:
    api = FakeAPI([entry("keep"), entry("gone", pid=4242), entry("old", state="exited"),
                   entry("foreign", state="exited", installation="inst-other")])
    report = run_cleanup(api)
    assert sorted(api.removed) == sorted(["id-gone" + "0" * 20, "id-old" + "0" * 20])
    assert {o.name for o in report.removed} == {"gone", "old"}
    assert report.kept == 1  # "foreign" is not counted as ours at all
    assert api.filters == [{"label": [f"{labels.MANAGED}=true", f"{labels.INSTALLATION}={OURS}"]}]


def test_dry_run_lists_orphans_and_removes_nothing() -> None:
    api = FakeAPI([entry("gone", pid=4242), entry("old", state="exited")], {
        "theappapp-project-p1": {"Labels": {labels.MANAGED: "true", labels.INSTALLATION: OURS}},
    })
    report = run_cleanup(api, dry_run=True, volume_projects=["p1"])
    assert {o.name for o in report.orphans} == {"gone", "old"}
    assert report.removed == ()
    assert report.volumes == ("theappapp-project-p1",)
    assert api.removed == [] and api.removed_volumes == []


def test_a_failed_removal_is_reported_and_the_rest_still_go() -> None:
    api = FakeAPI([entry("stuck", state="dead"), entry("old", state="exited")])
    api.fail.add("id-stuck" + "0" * 20)
    report = run_cleanup(api)
    assert [o.name for o, _ in report.failed] == ["stuck"]
    assert [o.name for o in report.removed] == ["old"]


def test_volumes_are_never_removed_without_being_named() -> None:
    api = FakeAPI([], {"theappapp-project-p1": {"Labels": {labels.MANAGED: "true", labels.INSTALLATION: OURS}}})
    run_cleanup(api)
    assert api.removed_volumes == []
    run_cleanup(api, volume_projects=["p1"])
    assert api.removed_volumes == ["theappapp-project-p1"]


def test_foreign_volume_is_refused_and_kept() -> None:
    api = FakeAPI([], {"theappapp-project-p1": {"Labels": {labels.MANAGED: "true", labels.INSTALLATION: "x"}}})
    with pytest.raises(SandboxError, match="left alone"):
        run_cleanup(api, volume_projects=["p1"])
    assert api.removed_volumes == []


def test_volume_in_use_raises_a_clear_error() -> None:
    api = FakeAPI([], {"theappapp-project-p1": {"Labels": {labels.MANAGED: "true", labels.INSTALLATION: OURS}}})
    api.in_use.add("theappapp-project-p1")
    with pytest.raises(SandboxError, match="in use"):
        run_cleanup(api, volume_projects=["p1"])


def test_missing_volume_is_not_an_error() -> None:
    assert run_cleanup(FakeAPI([]), volume_projects=["nope"]).volumes == ()


def test_an_empty_installation_id_is_refused() -> None:
    with pytest.raises(SandboxError, match="installation id"):
        cleanup.cleanup(FakeAPI([entry(state="exited", installation="")]), "")  # type: ignore[arg-type]


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
    api = FakeAPI([entry("gone", pid=4242, expires=4e9)])  # judged at the real time: not expired

    class Client:
        def __init__(self) -> None:
            self.api = api

        def close(self) -> None:
            pass

    monkeypatch.setattr(cleanup, "engine_client", lambda config: Client())
    monkeypatch.setattr(cleanup, "default_probe", probe)
    monkeypatch.setattr(cleanup, "host_identity", lambda: HOST)
    out = io.StringIO()
    args = argparse.Namespace(dry_run=True, volumes=False, project=[], installation=OURS)
    assert cleanup.run(args, out) == 0
    text = out.getvalue()
    assert "would remove container gone" in text and "owner gone" in text
    assert f"installation {OURS}: 1 orphan(s)" in text
    assert api.removed == []


async def test_scheduler_runs_rounds_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    rounds: list[int] = []
    scheduler = CleanupScheduler(RuntimeConfig.load(installation_id=OURS), interval=0.05)

    def fake_round() -> CleanupReport:
        rounds.append(1)
        if len(rounds) == 2:
            raise RuntimeError("engine hiccup")  # logged; the next round still runs
        return CleanupReport(False, (), 0)

    monkeypatch.setattr(scheduler, "_round", fake_round)
    scheduler.start()
    assert scheduler.running
    await asyncio.sleep(0.3)
    await scheduler.stop()
    seen = len(rounds)
    assert seen >= 3 and not scheduler.running
    await asyncio.sleep(0.15)
    assert len(rounds) == seen  # stopped means stopped


async def test_scheduler_defaults_to_hourly_and_trigger_runs_a_round_now(monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler = CleanupScheduler(RuntimeConfig.load(installation_id=OURS), run_first=False)
    assert scheduler.interval == 3600.0
    done = asyncio.Event()

    def fake_round() -> CleanupReport:
        done.set()
        return CleanupReport(False, (), 0)

    monkeypatch.setattr(scheduler, "_round", fake_round)
    scheduler.start()
    await asyncio.sleep(0.05)
    assert not done.is_set()  # run_first=False: nothing until the interval or a trigger
    scheduler.trigger()
    await asyncio.wait_for(done.wait(), 2)
    await scheduler.stop()
    assert scheduler.rounds == 1


def test_scheduler_rejects_a_non_positive_interval() -> None:
    with pytest.raises(SandboxError):
        CleanupScheduler(RuntimeConfig.load(installation_id=OURS), interval=0)


def test_a_projects_language_caches_go_with_its_volume_and_nobody_elses() -> None:
    def cache(project: str, installation: str = OURS) -> dict[str, Any]:
        return {"Labels": {labels.MANAGED: "true", labels.INSTALLATION: installation,
                           labels.PROJECT: project, labels.CACHE: "go"}}

    api = FakeAPI([], {
        "theappapp-project-p1": {"Labels": {labels.MANAGED: "true", labels.INSTALLATION: OURS}},
        "theappapp-cache.go.p1": cache("p1"),
        "theappapp-cache.go.p2": cache("p2"),
        "theappapp-cache.go.p1-x": cache("p1", installation="other"),
    })
    dry = run_cleanup(api, dry_run=True, volume_projects=["p1"])
    assert dry.volumes == ("theappapp-project-p1", "theappapp-cache.go.p1") and api.removed_volumes == []
    report = run_cleanup(api, volume_projects=["p1"])
    assert report.volumes == ("theappapp-project-p1", "theappapp-cache.go.p1")
    assert sorted(api.volumes_) == ["theappapp-cache.go.p1-x", "theappapp-cache.go.p2"]


def test_a_cache_in_use_stops_the_deletion_before_the_projects_files_go() -> None:
    api = FakeAPI([], {
        "theappapp-project-p1": {"Labels": {labels.MANAGED: "true", labels.INSTALLATION: OURS}},
        "theappapp-cache.go.p1": {"Labels": {labels.MANAGED: "true", labels.INSTALLATION: OURS,
                                             labels.PROJECT: "p1", labels.CACHE: "go"}},
    })
    api.in_use.add("theappapp-cache.go.p1")
    with pytest.raises(SandboxError, match="in use"):
        run_cleanup(api, volume_projects=["p1"])
    assert api.removed_volumes == []  # the project's files are still there
