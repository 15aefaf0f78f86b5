"""Orphan cleanup: remove this installation's sandboxes that nobody will destroy.

    python -m runtime.cleanup [--dry-run] [--volumes --project X] [--remove-idle [--idle-days N]]

A container is an orphan when it carries `theappapp-managed=true` *and* this
installation's id, and it is past its expiry, has exited or died, or its owning
manager process is gone (same host, and that pid is not running or is another
process now). Anything else — unlabelled, another installation, a live manager's
running sandbox — is never touched. Volumes hold a project's files: they go only
when asked for by project, or with `--remove-idle` for projects idle longer than the retention
age (`runtime/ops/retention.py`; `--dry-run` lists those), never by default.

`CleanupScheduler` (runtime/ops/scheduler.py) runs the same job in-process, hourly by default.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runtime import labels
from runtime.backends import open_backend
from runtime.backends.base import Backend, ContainerRecord
from runtime.config import RuntimeConfig
from runtime.errors import InvalidRequest, SandboxError
from runtime.ops.volumes import remove_project_volume
from runtime.sandbox.owner import ProcessProbe, default_probe, host_identity, owner_gone, task_of


@dataclass(frozen=True)
class Orphan:
    """A container cleanup removes (or, in a dry run, would remove), and why."""

    container_id: str
    name: str
    reason: str  # "expired", "exited", "dead", "owner gone", "unused egress proxy" or "unused network holder"
    task_id: str
    project_id: str
    created_at: int | None
    holder: str | None = None  # a sandbox in a network namespace holder's namespace: that holder's id

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


def is_ours(values: Mapping[str, str], installation_id: str) -> bool:
    return values.get(labels.MANAGED) == "true" and values.get(labels.INSTALLATION) == installation_id


def classify(
    container: ContainerRecord, installation_id: str, *, now: float, host: str, probe: ProcessProbe,
    egress_users: frozenset[str] = frozenset(), joined: frozenset[str] = frozenset(),
) -> str | None:
    """Why `container` is an orphan, or None to keep it. `egress_users`: egress networks that sandboxes
    of any installation are attached to (their proxy is in use); `joined`: the network namespace
    holders that sandboxes kept by this cleanup are in."""
    values = container.labels
    if not installation_id or not is_ours(values, installation_id):
        return None  # not ours: never touched, whatever its state
    if container.state == "removing":
        return None
    if values.get(labels.ROLE) == "egress-proxy":
        # Shared by every manager of the engine, and started again on demand: it goes when no sandbox
        # uses it and the manager that started it is gone (or it stopped), never by age.
        if values.get(labels.EGRESS_NETWORK) in egress_users:
            return None
        if container.state in ("exited", "dead"):
            return "unused egress proxy"
        return "unused egress proxy" if owner_gone(values, host=host, probe=probe) else None
    if values.get(labels.ROLE) == labels.ROLE_NETNS:
        # Kept for a project's next sandbox (runtime/backends/docker/netns.py): it goes when no sandbox
        # that stays is in it and it stopped or its manager is gone, never by age.
        if container.id in joined:
            return None
        if container.state in ("exited", "dead") or owner_gone(values, host=host, probe=probe):
            return "unused network holder"
        return None
    if container.state in ("exited", "dead"):
        return container.state
    expires = _int_label(values, labels.EXPIRES_AT)
    if expires is not None and expires < now:
        return "expired"
    if owner_gone(values, host=host, probe=probe):
        return "owner gone"
    return None


async def find_orphans(
    backend: Backend,
    installation_id: str,
    *,
    now: float | None = None,
    host: str | None = None,
    probe: ProcessProbe | None = None,
) -> tuple[list[Orphan], int]:
    """(orphans, number of our containers kept) for this installation."""
    if not installation_id:
        raise InvalidRequest("cleanup needs an installation id; refusing to guess whose containers to remove")
    now = time.time() if now is None else now
    host = host_identity() if host is None else host
    orphans: list[Orphan] = []
    kept = 0
    every = await backend.list_containers({labels.MANAGED: "true"})
    egress_users = frozenset(net for r in every if labels.ROLE not in r.labels and r.state == "running"
                             for net in r.networks)
    mine = [r for r in every if r.labels.get(labels.INSTALLATION) == installation_id]
    holders = [r for r in mine if r.labels.get(labels.ROLE) == labels.ROLE_NETNS]
    holder_ids = {r.id for r in holders}
    # Sandboxes first: a holder stays while a sandbox that stays is in it (any installation's, to be safe).
    verdicts = [(r, classify(r, installation_id, now=now, host=host, probe=probe or default_probe,
                             egress_users=egress_users)) for r in mine if r.id not in holder_ids]
    going = {r.id for r, reason in verdicts if reason is not None}
    joined = frozenset(r.labels[labels.NETNS] for r in every if labels.NETNS in r.labels and r.id not in going)
    verdicts += [(r, classify(r, installation_id, now=now, host=host, probe=probe or default_probe,
                              joined=joined)) for r in holders]
    for record, reason in verdicts:
        if reason is None:
            kept += 1
            continue
        orphans.append(Orphan(
            container_id=record.id,
            name=record.name,
            reason=reason,
            task_id=task_of(record.labels, record.name),
            project_id=record.labels.get(labels.PROJECT, "?"),
            created_at=_int_label(record.labels, labels.CREATED_AT),
            holder=record.labels.get(labels.NETNS),
        ))
    return orphans, kept


async def cleanup(
    backend: Backend,
    installation_id: str,
    *,
    dry_run: bool = False,
    volume_projects: Sequence[str] = (),
    now: float | None = None,
    host: str | None = None,
    probe: ProcessProbe | None = None,
) -> CleanupReport:
    """Remove this installation's orphaned containers, then the named projects' volumes if asked."""
    orphans, kept = await find_orphans(backend, installation_id, now=now, host=host, probe=probe)
    failed: list[tuple[Orphan, str]] = []
    if not dry_run:
        for orphan in orphans:  # sandboxes first, holders after (find_orphans' order)
            if orphan.container_id in {o.holder for o, _ in failed}:
                failed.append((orphan, "a sandbox in its network namespace could not be removed"))
                continue
            try:
                await backend.remove(orphan.container_id)
            except SandboxError as err:
                failed.append((orphan, str(err)))
    volumes: list[str] = []
    for project in volume_projects:
        volumes += await remove_project_volume(backend, installation_id, project, dry_run=dry_run)
    return CleanupReport(dry_run, tuple(orphans), kept, tuple(failed), tuple(volumes))


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
    parser.add_argument(
        "--remove-idle", action="store_true",
        help="also remove the volumes and snapshots of projects idle longer than --idle-days (listed by "
        "--dry-run; never removed without this flag)",
    )
    parser.add_argument(
        "--idle-days", type=float, metavar="DAYS",
        help="what counts as idle (default: $THEAPPAPP_RETENTION_DAYS, else 30)",
    )


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.volumes and not args.project:
        parser.error("--volumes needs --project ID: volumes are only removed by name, never by age")
    if args.project and not args.volumes:
        parser.error("--project only applies with --volumes")


async def _report(config: RuntimeConfig, args: argparse.Namespace) -> tuple[CleanupReport, list[str]]:
    """The orphan cleanup's report, and lines about idle projects (listed, or removed with --remove-idle)."""
    from runtime.ops.retention import idle_projects, remove_idle

    backend = open_backend(config)
    try:
        report = await cleanup(
            backend, config.installation_id, dry_run=args.dry_run,
            volume_projects=tuple(args.project) if args.volumes else (),
        )
        lines: list[str] = []
        if args.dry_run or args.remove_idle:
            if config.storage.enabled:
                await backend.storage.prepare()  # quota volumes mounted: when each was last written
            days = args.idle_days or config.storage.retention_days
            now = time.time()
            for project in await idle_projects(backend, config.installation_id, days, now=now):
                if args.dry_run or not args.remove_idle:
                    lines.append(f"idle {project.describe(now)}: kept (--remove-idle removes it)")
                else:
                    try:
                        gone = await remove_idle(backend, config.installation_id, project)
                    except SandboxError as err:  # in use after all: kept whole, the others go on
                        lines.append(f"FAILED to remove idle project {project.project_id}: {err}")
                        continue
                    lines.append(f"removed idle project {project.project_id}: " + ", ".join(gone))
        return report, lines
    finally:
        backend.close()


def run(args: argparse.Namespace, out: Any = None) -> int:
    """Do what the parsed arguments ask, print it, and return the exit status."""
    out = out or sys.stdout
    config = RuntimeConfig.load(**({"installation_id": args.installation} if args.installation else {}))
    report, idle = asyncio.run(_report(config, args))
    verb = "would remove" if report.dry_run else "removed"
    failed = {o.container_id: why for o, why in report.failed}
    for orphan in report.orphans:
        if orphan.container_id in failed:
            print(f"FAILED to remove {orphan.describe()}: {failed[orphan.container_id]}", file=out)
        else:
            print(f"{verb} container {orphan.describe()}", file=out)
    for name in report.volumes:
        print(f"{verb} volume {name}", file=out)
    for line in idle:
        print(line, file=out)
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
        prog="python -m runtime.cleanup",
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
