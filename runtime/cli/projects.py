"""`theappapp-sandbox snapshot | snapshots | restore | fork | quota`: a project's workspace as a whole."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from runtime.config import RuntimeConfig
from runtime.units import describe

T = TypeVar("T")


def _with_manager(action: Callable[[Any], Awaitable[T]]) -> T:
    """Run `action(manager)` on a started manager (no pool, nothing recorded), then shut it down."""
    from runtime.sandbox.manager import ContainerManager

    async def run() -> T:
        manager = ContainerManager(RuntimeConfig.load(pool_enabled=False, monitor_enabled=False, adopt_orphans=False))
        try:
            await manager.startup()
            return await action(manager)
        finally:
            await manager.shutdown()

    return asyncio.run(run())


def cmd_snapshot(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    snapshot_id = _with_manager(lambda m: m.snapshot_project(args.project, args.name))
    print(snapshot_id)
    return 0


def cmd_snapshots(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from runtime.ops.listing import human_age, table

    if args.delete:
        deleted = _with_manager(lambda m: m.delete_snapshot(args.project, args.delete))
        print(f"deleted snapshot {args.delete}" if deleted else f"project {args.project} has no snapshot {args.delete}")
        return 0 if deleted else 1
    snapshots = _with_manager(lambda m: m.list_snapshots(args.project))
    now = time.time()
    print(table(("ID", "NAME", "TAKEN", "WORKSPACE"),
                [(s.id, s.name or "-", human_age(now - s.created) + " ago", describe(s.used)) for s in snapshots])
          if snapshots else f"project {args.project} has no snapshots")
    return 0


def cmd_restore(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    _with_manager(lambda m: m.restore_project(args.project, args.snapshot))
    print(f"project {args.project} restored to snapshot {args.snapshot}")
    return 0


def cmd_fork(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    _with_manager(lambda m: m.fork_project(args.source, args.new, args.snapshot))
    print(f"project {args.new} forked from {args.source}" + (f" at snapshot {args.snapshot}" if args.snapshot else ""))
    return 0


def cmd_quota(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    async def act(manager: Any) -> Any:
        if args.size:
            await manager.set_disk_quota(args.project, args.size)
        return await manager.disk_usage(args.project)

    usage = _with_manager(act)
    quota = "no quota" if usage.quota is None else f"quota {describe(usage.quota)}"
    print(f"project {args.project}: {describe(usage.used)} used, {quota}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    snapshot = sub.add_parser("snapshot", help="take a snapshot of a project's workspace; prints its id",
                              description="A read-only copy of the project's /workspace as it is now (tasks may "
                              "keep running: the filesystem is frozen for the moment it takes).")
    snapshot.add_argument("project", metavar="PROJECT")
    snapshot.add_argument("--name", help="a name to tell it by")
    snapshot.set_defaults(handler=cmd_snapshot)

    listing = sub.add_parser("snapshots", help="list a project's snapshots (or delete one)")
    listing.add_argument("project", metavar="PROJECT")
    listing.add_argument("--delete", metavar="ID", help="delete this snapshot")
    listing.set_defaults(handler=cmd_snapshots)

    restore = sub.add_parser("restore", help="make a project's workspace what one of its snapshots holds",
                             description="The project's files become the snapshot's (its quota stays). Refused "
                             "while a task of the project runs.")
    restore.add_argument("project", metavar="PROJECT")
    restore.add_argument("snapshot", metavar="SNAPSHOT")
    restore.set_defaults(handler=cmd_restore)

    fork = sub.add_parser("fork", help="a new project whose workspace starts as another's",
                          description="The new project gets the source's files (now, or at --snapshot) and its "
                          "quota; the source is not changed.")
    fork.add_argument("source", metavar="SOURCE")
    fork.add_argument("new", metavar="NEW")
    fork.add_argument("--snapshot", metavar="ID", help="fork the source as it was at this snapshot")
    fork.set_defaults(handler=cmd_fork)

    quota = sub.add_parser("quota", help="a project's disk usage and quota; with SIZE, grow the quota")
    quota.add_argument("project", metavar="PROJECT")
    quota.add_argument("size", metavar="SIZE", nargs="?", help='the new quota, e.g. "5g" (quotas only grow)')
    quota.set_defaults(handler=cmd_quota)
