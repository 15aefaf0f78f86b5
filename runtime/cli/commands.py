"""`theappapp-sandbox`: run a snippet in a sandbox, list, clean up, show statistics, check the host.

    theappapp-sandbox run python script.py        # one-shot: create, run, print, destroy
    theappapp-sandbox run node -c 'console.log(1)'
    theappapp-sandbox ls | cleanup [--dry-run] | stats | doctor

`run` exits with the program's exit code; 124 if it timed out; 125 if it could not run the
program: the sandbox failed, or the input was refused (an unknown language, a bad project id, a
snippet `--strict` refused), as `timeout` and `docker run` do; 2 for a usage error or a file it
cannot read. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from runtime.config import RuntimeConfig
from runtime.errors import InvalidPath, SandboxError, ValidationFailed
from runtime.ops import cleanup as cleanup_job
from runtime.sandbox.runcode import RunResult, check_filename
from runtime.validation.validator import blocking

EXIT_TIMEOUT = 124
EXIT_SANDBOX = 125


class Progress:
    """Lines on stderr about slow steps; silent with --quiet."""

    def __init__(self, quiet: bool, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"[sandbox {time.monotonic() - self.t0:5.1f}s] {message}", file=self.stream, flush=True)

    async def heartbeat(self, message: str, every: float = 10.0) -> None:
        """`message` every `every` seconds until cancelled (a compile can take a while)."""
        while True:
            await asyncio.sleep(every)
            self.say(message)


# -- run -------------------------------------------------------------------------------------


def _read_code(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[str, str | None]:
    """(code, filename in the sandbox or None for the language's default)."""
    if args.code is not None:
        if args.file is not None:
            parser.error("run: give either FILE or -c CODE, not both")
        return args.code, None
    if args.file is None:
        parser.error("run: give a FILE to run (or - for stdin), or -c CODE")
    if args.file == "-":
        return sys.stdin.read(), None
    path = Path(args.file)
    try:
        name = check_filename(path.name)  # the name it gets in the sandbox: refused early if unsafe
        return path.read_text(encoding="utf-8"), name
    except InvalidPath as err:
        parser.error(f"run: {err}")
    except (OSError, UnicodeDecodeError) as err:
        parser.error(f"run: cannot read {args.file}: {getattr(err, 'strerror', None) or err}")
    raise AssertionError("unreachable: parser.error exits")


def _one_shot_config(args: argparse.Namespace) -> RuntimeConfig:
    overrides: dict[str, Any] = {
        "pool_enabled": False,  # one task, then exit: a spare would only be made to be removed
        "destroy_in_background": False,  # exit only once the container is gone
    }
    if args.network:
        overrides["network"] = args.network
    if args.no_monitor:
        overrides["monitor_enabled"] = False
    return RuntimeConfig.load(**overrides)


async def _run(args: argparse.Namespace, code: str, filename: str | None, progress: Progress) -> int:
    from runtime.sandbox.manager import ContainerManager

    config = _one_shot_config(args)
    manager = ContainerManager(config)  # records the run for `stats` unless --no-monitor
    lang = manager.registry.resolve(args.language)  # UnknownLanguage before any engine work
    unique = uuid.uuid4().hex[:10]
    task_id = f"cli-{unique}"
    project_id = args.project or f"cli-{unique}"
    try:
        image = f"{lang.image}:{config.engine.image_tag}"
        mode = "allowlist: " + ", ".join(args.allow) if args.allow else config.network.mode
        progress.say(f"starting a {lang.display_name} sandbox ({image}, network {mode})")
        await manager.startup()
        await manager.create_container(task_id, project_id, lang.name, egress=args.allow)
        try:
            progress.say(f"running {filename or 'the snippet'}")
            ticker = asyncio.create_task(progress.heartbeat("still running"))
            try:
                result = await manager.run_code(
                    task_id, code, filename, strict=args.strict, timeout=args.timeout,
                )
            finally:
                ticker.cancel()
            _print_result(result, args.verbose)
        finally:
            progress.say("removing the sandbox")
            await manager.destroy_container(task_id)
            if args.project is None:  # the throwaway project's volume goes with it
                await manager.delete_project_volume(project_id)
    finally:
        await manager.shutdown()
    if result.exec.truncated:
        progress.say("output was truncated at the byte cap")
    if result.exec.oom_killed:
        progress.say("the program ran out of memory and was killed")
    if result.exec.timed_out:
        progress.say(f"timed out after {result.exec.duration:.1f}s; the program was killed")
        return EXIT_TIMEOUT
    return EXIT_SANDBOX if result.exit_code is None else result.exit_code


def _print_result(result: RunResult, verbose: bool) -> None:
    for finding in result.findings:
        if finding.severity != "info" or verbose:
            print(f"{result.filename}:{finding}", file=sys.stderr)
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.write(result.stderr)
    sys.stderr.flush()


def cmd_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    code, filename = _read_code(args, parser)
    progress = Progress(args.quiet)
    try:
        return asyncio.run(_run(args, code, filename, progress))
    except ValidationFailed as err:
        for finding in err.findings:
            print(str(finding), file=sys.stderr)
        # (The message repeats the errors, for API callers: here they are printed just above.)
        errors = len(blocking(list(err.findings)))
        print(f"error: refused by --strict: {errors} error finding(s) above", file=sys.stderr)
        return EXIT_SANDBOX
    except KeyboardInterrupt:
        print("interrupted; the sandbox was removed", file=sys.stderr)
        return 130


# -- ls, cleanup, stats, doctor ----------------------------------------------------------------


async def _listing(config: RuntimeConfig, installation: str | None) -> tuple[list[Any], list[Any]]:
    from runtime.backends import open_backend
    from runtime.ops.listing import container_rows, volume_rows

    backend = open_backend(config)
    try:
        if config.storage.enabled:
            await backend.storage.prepare()  # quota volumes' filesystems mounted, so their usage reads
        return await container_rows(backend, installation), await volume_rows(backend, installation)
    finally:
        backend.close()


def cmd_ls(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from runtime.ops.listing import table

    config = RuntimeConfig.load()
    installation = None if args.all else config.installation_id
    containers, volumes = asyncio.run(_listing(config, installation))
    scope = "all installations" if args.all else f"installation {config.installation_id}"
    extra = ("INSTALLATION",) if args.all else ()
    print(f"containers ({scope}): {len(containers)}")
    if containers:
        print(table(
            ("NAME", "STATE", "AGE", "TASK", "PROJECT", "LANGUAGE", "OWNER", "EXPIRES", *extra),
            [(r.name, r.state, r.age, r.task, r.project, r.language, r.owner, r.expires,
              *((r.installation,) if args.all else ())) for r in containers],
        ))
    print(f"\nvolumes ({scope}): {len(volumes)}")
    if volumes:
        print(table(
            ("NAME", "PROJECT", "AGE", "IN USE", "USED", "QUOTA", "SNAPSHOTS", *extra),
            [(r.name, r.project, r.age, r.in_use, r.used, r.quota, r.snapshots,
              *((r.installation,) if args.all else ())) for r in volumes],
        ))
    return 0


def cmd_cleanup(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    cleanup_job.check_arguments(parser, args)
    return cleanup_job.run(args)


def cmd_stats(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        from runtime.monitoring import stats_view
        from runtime.monitoring.monitor import default_monitor_path
    except ImportError as err:
        print(f"error: statistics are not available in this installation: {err}", file=sys.stderr)
        return 1
    path = Path(args.db).expanduser() if args.db else default_monitor_path()
    if not path.is_file():
        print(
            f"no monitor database at {path}: nothing recorded yet. Every manager records there by default "
            "(THEAPPAPP_MONITOR_ENABLED=false turns it off; THEAPPAPP_MONITOR_DB or --db names another file).",
            file=sys.stderr,
        )
        return 1
    print(stats_view.show(path, args.since))
    return 0


def cmd_doctor(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from runtime.ops.doctor import run_checks

    async def checks() -> tuple[int, int]:
        failed = warned = 0
        async for check in run_checks(RuntimeConfig.load()):
            print(check.render(), flush=True)
            failed += check.status == "FAIL"
            warned += check.status == "WARN"
        return failed, warned

    failed, warned = asyncio.run(checks())
    print(f"\n{'not ready' if failed else 'ready'}: {failed} failed, {warned} warning(s)")
    return 1 if failed else 0


# -- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="theappapp-sandbox",
        description="Run code in hardened per-task Docker sandboxes, and look after them.",
        epilog="Configuration comes from THEAPPAPP_* environment variables (see runtime/config.py).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run a file or snippet in a fresh sandbox, then remove it",
        description="One-shot: create a sandbox, write and validate the code, run it with the language's "
        "command, print its output, remove the sandbox. Exits with the program's exit code "
        f"({EXIT_TIMEOUT} on timeout, {EXIT_SANDBOX} if it could not run it: the sandbox failed or the input "
        "was refused, e.g. an unknown language or a snippet --strict refused).",
    )
    run.add_argument("language", metavar="LANG", help="a registry language or alias (python, node, java, …)")
    run.add_argument("file", metavar="FILE", nargs="?", help="the program to run; - reads it from stdin")
    run.add_argument("-c", dest="code", metavar="CODE", help="the program text itself")
    run.add_argument("--timeout", type=_positive, metavar="SECONDS", help="kill the program after this long")
    run.add_argument("--network", choices=("sandbox", "allowlist", "none"),
                     help="sandbox (default: the outside, not the host or peers), allowlist (only the --allow "
                     "hosts, through the egress proxy) or none")
    run.add_argument("--allow", action="append", metavar="HOST", dest="allow",
                     help="a host the program may reach, through the egress proxy (repeatable; implies "
                     "--network allowlist): api.example.com, *.example.org, an IP, or 'registries' for the "
                     "language's package indexes")
    run.add_argument("--project", metavar="ID",
                     help="run in this project's persistent volume (kept); default: a throwaway volume")
    run.add_argument("--strict", action="store_true", help="refuse to run code with error-severity findings")
    run.add_argument("--no-monitor", action="store_true", help="do not record the run for `stats`")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    run.add_argument("-v", "--verbose", action="store_true", help="also print info-level findings")
    run.set_defaults(handler=cmd_run)

    ls = sub.add_parser("ls", help="managed containers and volumes, with age, task and project")
    ls.add_argument("--all", action="store_true", help="every installation on this engine, not only this one")
    ls.set_defaults(handler=cmd_ls)

    clean = sub.add_parser("cleanup", help="remove orphaned sandboxes (expired, exited, dead, owner gone)")
    cleanup_job.add_arguments(clean)
    clean.set_defaults(handler=cmd_cleanup)

    stats = sub.add_parser("stats", help="execution statistics recorded by the monitor")
    stats.add_argument("--db", metavar="PATH", help="the monitor's SQLite file (default: its configured path)")
    stats.add_argument("--since", type=_positive, metavar="HOURS", help="only the last HOURS hours")
    stats.set_defaults(handler=cmd_stats)

    doctor = sub.add_parser("doctor", help="check engine, images, network policy, runtimes and disk")
    doctor.set_defaults(handler=cmd_doctor)

    from runtime.cli import projects, serve, shell

    projects.add_parsers(sub)
    shell.add_parser(sub)
    serve.add_parsers(sub)
    return parser


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.handler(args, parser)
        return code
    except SandboxError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_SANDBOX


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
