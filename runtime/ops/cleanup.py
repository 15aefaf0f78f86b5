"""Orphan cleanup: remove this installation's sandboxes that nobody will destroy.

    python -m runtime.ops.cleanup [--dry-run] [--volumes --project X]

A container is an orphan when it carries `theappapp-managed=true` *and* this
installation's id, and it is past its expiry, has exited or died, or its owning
manager process is gone (same host, and that pid is not running or is another
process now). Anything else — unlabelled, another installation, a live manager's
running sandbox — is never touched. Volumes hold a project's files: they go only
when asked for by project, never by age.

`CleanupScheduler` runs the same job in-process, hourly by default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from runtime import labels
from runtime.config import RuntimeConfig
from runtime.errors import EngineUnavailable, SandboxError
from runtime.sandbox.naming import volume_name
from runtime.sandbox.owner import host_identity, process_start_ticks

log = logging.getLogger(__name__)

# A process probe: pid -> its start ticks, or None if no such process.
ProcessProbe = Callable[[int], str | None]


@dataclass(frozen=True)
class Orphan:
    """A container cleanup removes (or, in a dry run, would remove), and why."""

    container_id: str
    name: str
    reason: str  # "expired", "exited", "dead" or "owner gone"
    task_id: str
    project_id: str
    created_at: int | None

    def describe(self) -> str:
        return f"{self.name} ({self.container_id[:12]}) task={self.task_id} project={self.project_id}: {self.reason}"


@dataclass(frozen=True)
class CleanupReport:
    dry_run: bool
    orphans: tuple[Orphan, ...]  # removed, or would be in a dry run
    kept: int  # our containers that are not orphans
    failed: tuple[tuple[Orphan, str], ...] = ()  # removal errors (the orphan stays)
    volumes: tuple[str, ...] = ()  # volumes removed (or that would be) on explicit request

    @property
    def removed(self) -> tuple[Orphan, ...]:
        failed = {o.container_id for o, _ in self.failed}
        return () if self.dry_run else tuple(o for o in self.orphans if o.container_id not in failed)


def _int_label(values: Mapping[str, str], key: str) -> int | None:
    try:
        return int(values[key])
    except (KeyError, ValueError):
        return None


def task_of(values: Mapping[str, str], name: str) -> str:
    """The task a container serves: its label, or for a warm-pool container the name it was renamed to."""
    if labels.TASK in values:
        return values[labels.TASK]
    if values.get(labels.POOL):
        prefix = f"theappapp-{values.get(labels.PROJECT, '')}-"
        return name[len(prefix):] if name.startswith(prefix) else "(spare)"
    return "?"


def default_probe(pid: int) -> str | None:
    """Start ticks of a running pid; off Linux (no /proc) only liveness, as "?"."""
    if os.path.isdir("/proc/self"):
        return process_start_ticks(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # exists, owned by someone else
    return "?"


def owner_gone(values: Mapping[str, str], *, host: str, probe: ProcessProbe) -> bool:
    """True only when we can tell: the owner ran here (same host and pid namespace) and that process is gone."""
    if values.get(labels.OWNER_HOST) != host:
        return False
    pid = _int_label(values, labels.OWNER_PID)
    if pid is None or pid <= 0:
        return False
    started = probe(pid)
    if started is None:
        return True
    recorded = values.get(labels.OWNER_STARTED, "")
    # A different start time means the pid was reused by another process.
    return bool(recorded) and started != "?" and started != recorded


def is_ours(container: Mapping[str, Any], installation_id: str) -> bool:
    values: Mapping[str, str] = container.get("Labels") or {}
    return values.get(labels.MANAGED) == "true" and values.get(labels.INSTALLATION) == installation_id


def classify(
    container: Mapping[str, Any], installation_id: str, *, now: float, host: str, probe: ProcessProbe
) -> str | None:
    """Why `container` (an entry of the engine's container list) is an orphan, or None to keep it."""
    if not installation_id or not is_ours(container, installation_id):
        return None  # not ours: never touched, whatever its state
    values: Mapping[str, str] = container.get("Labels") or {}
    state = str(container.get("State") or "")
    if state == "removing":
        return None
    if state in ("exited", "dead"):
        return state
    expires = _int_label(values, labels.EXPIRES_AT)
    if expires is not None and expires < now:
        return "expired"
    if owner_gone(values, host=host, probe=probe):
        return "owner gone"
    return None


def _our_filter(installation_id: str) -> dict[str, list[str]]:
    return {"label": [f"{labels.MANAGED}=true", f"{labels.INSTALLATION}={installation_id}"]}


def find_orphans(
    api: docker.APIClient,
    installation_id: str,
    *,
    now: float | None = None,
    host: str | None = None,
    probe: ProcessProbe | None = None,
) -> tuple[list[Orphan], int]:
    """(orphans, number of our containers kept) for this installation."""
    if not installation_id:
        raise SandboxError("cleanup needs an installation id; refusing to guess whose containers to remove")
    now = time.time() if now is None else now
    host = host_identity() if host is None else host
    probe = probe or default_probe
    orphans: list[Orphan] = []
    kept = 0
    for entry in api.containers(all=True, filters=_our_filter(installation_id)):
        # The label filter is the engine's; we check again, so a filter bug cannot widen the net.
        if not is_ours(entry, installation_id):
            continue
        reason = classify(entry, installation_id, now=now, host=host, probe=probe)
        if reason is None:
            kept += 1
            continue
        values = entry.get("Labels") or {}
        name = str((entry.get("Names") or ["?"])[0]).lstrip("/")
        orphans.append(
            Orphan(
                container_id=str(entry["Id"]),
                name=name,
                reason=reason,
                task_id=task_of(values, name),
                project_id=values.get(labels.PROJECT, "?"),
                created_at=_int_label(values, labels.CREATED_AT),
            )
        )
    return orphans, kept


def cleanup(
    api: docker.APIClient,
    installation_id: str,
    *,
    dry_run: bool = False,
    volume_projects: Sequence[str] = (),
    now: float | None = None,
    host: str | None = None,
    probe: ProcessProbe | None = None,
) -> CleanupReport:
    """Remove this installation's orphaned containers, then the named projects' volumes if asked."""
    orphans, kept = find_orphans(api, installation_id, now=now, host=host, probe=probe)
    failed: list[tuple[Orphan, str]] = []
    if not dry_run:
        for orphan in orphans:
            try:
                api.remove_container(orphan.container_id, force=True, v=False)
            except docker.errors.NotFound:
                pass  # someone else removed it meanwhile: the goal is met
            except docker.errors.APIError as err:
                failed.append((orphan, str(err.explanation or err)))
    volumes: list[str] = []
    for project in volume_projects:
        volumes += remove_project_volume(api, installation_id, project, dry_run=dry_run)
    return CleanupReport(dry_run, tuple(orphans), kept, tuple(failed), tuple(volumes))


def remove_project_volume(
    api: docker.APIClient, installation_id: str, project_id: str, *, dry_run: bool = False
) -> list[str]:
    """Remove the project's volume and its language caches, if ours: the names removed (none: nothing there).

    `SandboxError` if the project volume is foreign, or a volume is in use. The caches go first:
    if one is in use, the project's files are still there when the error is raised.
    """
    name = volume_name(project_id)
    try:
        volume = api.inspect_volume(name)
    except docker.errors.NotFound:
        volume = None
    if volume is not None:
        values = volume.get("Labels") or {}
        if values.get(labels.MANAGED) != "true" or values.get(labels.INSTALLATION) != installation_id:
            raise SandboxError(
                f"volume {name} does not carry this installation's labels "
                f"({labels.INSTALLATION}={installation_id}); it was left alone"
            )
    caches = api.volumes(filters={"label": [
        f"{labels.MANAGED}=true", f"{labels.INSTALLATION}={installation_id}",
        f"{labels.PROJECT}={project_id}", labels.CACHE,
    ]}).get("Volumes") or ()
    removed = [c for c in sorted(str(c["Name"]) for c in caches) if dry_run or _remove_volume(api, c)]
    if volume is not None and (dry_run or _remove_volume(api, name)):
        removed.insert(0, name)
    return removed


def _remove_volume(api: docker.APIClient, name: str) -> bool:
    try:
        api.remove_volume(name)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as err:
        if err.status_code == 409:
            raise SandboxError(
                f"volume {name} is in use by a container; destroy the project's tasks first"
            ) from err
        raise SandboxError(f"volume {name} could not be removed: {err.explanation or err}") from err
    return True


# -- in-process scheduler --------------------------------------------------------------------


class CleanupScheduler:
    """Runs `cleanup` every `interval` seconds on the running event loop until `stop()`.

    Errors are logged and the next round still runs. The engine calls run in a thread,
    so the loop is never blocked.

        scheduler = CleanupScheduler()   # hourly, this installation
        scheduler.start()                # inside the orchestrator's event loop
        ...
        await scheduler.stop()
    """

    def __init__(
        self, config: RuntimeConfig | None = None, *, interval: float = 3600.0, run_first: bool = True
    ) -> None:
        if interval <= 0:
            raise SandboxError("the cleanup interval must be positive")
        self.config = config or RuntimeConfig.load()
        self.interval = interval
        self.run_first = run_first  # one round at start(), then every interval
        self.last_report: CleanupReport | None = None
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="theappapp-cleanup")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def trigger(self) -> None:
        """Run a round now instead of waiting for the interval."""
        if self._wake is not None:
            self._wake.set()

    async def run_once(self) -> CleanupReport:
        report = await asyncio.to_thread(self._round)
        self.last_report, self.rounds = report, self.rounds + 1
        if report.orphans or report.failed:
            log.info(
                "cleanup removed %d orphan(s), %d failed", len(report.removed), len(report.failed)
            )
        return report

    def _round(self) -> CleanupReport:
        client = engine_client(self.config)
        try:
            return cleanup(client.api, self.config.installation_id)
        finally:
            client.close()

    async def _loop(self) -> None:
        assert self._wake is not None
        first = self.run_first
        while True:
            if not first:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                self._wake.clear()
            first = False
            try:
                await self.run_once()
            except Exception:
                log.exception("orphan cleanup failed; retrying in %.0fs", self.interval)


def engine_client(config: RuntimeConfig) -> docker.DockerClient:
    """A blocking docker-py client for one-off jobs (cleanup, ls, doctor); the caller closes it."""
    environment = dict(os.environ)
    if config.docker_host:
        environment["DOCKER_HOST"] = config.docker_host
    try:
        return docker.DockerClient.from_env(environment=environment, timeout=int(config.api_timeout) + 1)
    except docker.errors.DockerException as err:
        raise EngineUnavailable(f"Docker engine unreachable: {err}") from err


# -- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    parser.add_argument(
        "--volumes", action="store_true", help="also remove the volumes of the projects named with --project"
    )
    parser.add_argument(
        "--project", action="append", default=[], metavar="ID", help="project whose volume --volumes removes"
    )
    parser.add_argument(
        "--installation", metavar="ID", help="installation id to clean (default: this installation's)"
    )


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.volumes and not args.project:
        parser.error("--volumes needs --project ID: volumes are only removed by name, never by age")
    if args.project and not args.volumes:
        parser.error("--project only applies with --volumes")


def run(args: argparse.Namespace, out: Any = None) -> int:
    """Do what the parsed arguments ask, print it, and return the exit status."""
    out = out or sys.stdout
    config = RuntimeConfig.load(**({"installation_id": args.installation} if args.installation else {}))
    client = engine_client(config)
    try:
        report = cleanup(
            client.api, config.installation_id, dry_run=args.dry_run,
            volume_projects=tuple(args.project) if args.volumes else (),
        )
    finally:
        client.close()
    verb = "would remove" if report.dry_run else "removed"
    failed = {o.container_id: why for o, why in report.failed}
    for orphan in report.orphans:
        if orphan.container_id in failed:
            print(f"FAILED to remove {orphan.describe()}: {failed[orphan.container_id]}", file=out)
        else:
            print(f"{verb} container {orphan.describe()}", file=out)
    for name in report.volumes:
        print(f"{verb} volume {name}", file=out)
    done = "to remove" if report.dry_run else "removed"
    print(
        f"installation {config.installation_id}: {len(report.orphans) - len(report.failed)} orphan(s) and "
        f"{len(report.volumes)} volume(s) {done}, {report.kept} container(s) kept"
        + (f", {len(report.failed)} failed" if report.failed else ""),
        file=out,
    )
    return 1 if report.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.ops.cleanup",
        description="Remove this installation's orphaned sandboxes (expired, exited, dead, or owner gone).",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    try:
        return run(args)
    except SandboxError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
