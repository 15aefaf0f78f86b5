"""`python -m builder`: render generated/ and build the images (what `nox -s render/build` run).

Bad input (a malformed registry, an unknown language, no engine) ends in one line
saying what is wrong and what to do, and a non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from builder.bootstrap import BootstrapError, ensure_debian_image
from builder.build import BuildOptions, BuildOutcome, build_image, hash_reference
from builder.engine import connect
from builder.plan import BuildInputError, ImagePlan, plan_images, select_images
from builder.render import PROJECT_ROOT, render, stale_files, write
from runtime.errors import SandboxError
from runtime.registry import load_registry

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_print_lock = threading.Lock()


def say(message: str) -> None:
    with _print_lock:
        print(message, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m builder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    render_cmd = sub.add_parser("render", help="render templates/ into generated/")
    render_cmd.add_argument("--check", action="store_true", help="fail if generated/ is not current")
    build = sub.add_parser("build", help="render, then build and check images")
    build.add_argument("languages", nargs="*", metavar="IMAGE",
                       help="languages (or aliases) and services, e.g. egress-proxy (default: all)")
    build.add_argument("--force", action="store_true", help="rebuild even if the content hash is built")
    build.add_argument("--no-cache", action="store_true", help="do not use Docker's layer cache")
    build.add_argument("--jobs", type=int, default=2, help="language images built at once (default 2)")
    ca = build.add_mutually_exclusive_group()
    ca.add_argument(
        "--ca-cert", type=Path,
        help="extra CA bundle baked into the bases, for TLS-intercepting proxies "
        f"(default: $THEAPPAPP_EXTRA_CA_CERT, else {HOST_CA_BUNDLE} if present)",
    )
    ca.add_argument("--no-ca-cert", action="store_true", help="bake no extra CA certificate")
    build.add_argument(
        "--apt-mirror", default=os.environ.get("APT_MIRROR"),
        help="Debian mirror URL (default: the one the Debian image uses; mmdebstrap's own when bootstrapping)",
    )
    build.add_argument("--pip-index", default=os.environ.get("PIP_INDEX_URL"), help="PyPI mirror (simple index)")
    build.add_argument("--npm-registry", default=os.environ.get("NPM_REGISTRY"), help="npm registry mirror")
    build.add_argument("--log-dir", type=Path, default=PROJECT_ROOT / "logs" / "build")
    build.add_argument(
        "--no-engine-start", action="store_true",
        help="fail instead of starting a local engine (as root: scripts/start-docker-engine.sh) when none answers",
    )
    return parser


def _extra_ca(args: argparse.Namespace) -> Path | None:
    if args.no_ca_cert:
        return None
    if args.ca_cert:
        return Path(args.ca_cert)
    if os.environ.get("THEAPPAPP_EXTRA_CA_CERT"):
        return Path(os.environ["THEAPPAPP_EXTRA_CA_CERT"])
    return HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None


def cmd_render(check: bool) -> int:
    rendered = render(load_registry())
    if check:
        stale = stale_files(rendered)
        if stale:
            say(f"generated/ is not current ({', '.join(stale)}): run `nox -s render` and commit it")
            return 1
        say("generated/ is current")
        return 0
    changed = write(rendered)
    say(f"rendered generated/: {len(changed)} file(s) changed" + (f" ({', '.join(changed)})" if changed else ""))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    registry = load_registry()
    rendered = render(registry)
    write(rendered)
    languages, services = select_images(registry, args.languages)
    if args.jobs < 1:
        raise BuildInputError("--jobs must be at least 1")
    ca = _extra_ca(args)
    plans = plan_images(registry, rendered, languages, ca, services)
    client = connect(start=not args.no_engine_start, say=say)
    say(f"building {len(plans)} image(s) with {args.jobs} job(s); extra CA: {ca or 'none'}")

    build_args = {}
    if args.apt_mirror:
        build_args["APT_MIRROR"] = args.apt_mirror
    if args.pip_index:
        build_args["PIP_INDEX_URL"] = args.pip_index
    if args.npm_registry:
        build_args["NPM_CONFIG_REGISTRY"] = args.npm_registry  # npm reads npm_config_* from the environment
    options = BuildOptions(force=args.force, no_cache=args.no_cache, build_args=build_args)
    by_key = {plan.key: plan for plan in plans}
    outcomes: dict[str, BuildOutcome] = {}

    def build_base(plan: ImagePlan) -> BuildOutcome:
        suite = plan.tags[0]
        try:
            how = ensure_debian_image(client, plan.from_image, suite, args.apt_mirror,
                                      args.log_dir / f"bootstrap-{suite}.log", say)
        except BootstrapError as err:
            return BuildOutcome(plan.key, plan.reference, "failed", 0.0, note=str(err))
        if how != "present":
            say(f"[{plan.key}] {plan.from_image} {how}")
        parent_id = str(client.images.get(plan.from_image).id)
        return build_image(client, plan, parent_id, plan.from_image, registry, options, args.log_dir, say)

    def build_language(plan: ImagePlan) -> BuildOutcome:
        assert plan.parent is not None
        parent = outcomes[plan.parent]
        if not parent.ok:
            return BuildOutcome(plan.key, plan.reference, "not built", 0.0, note=f"its base {parent.reference} failed")
        parent_ref = hash_reference(by_key[plan.parent], parent.content_hash)
        return build_image(client, plan, parent.content_hash, parent_ref, registry, options, args.log_dir, say)

    bases = [p for p in plans if p.parent is None]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for plan, outcome in zip(bases, pool.map(build_base, bases), strict=True):
            outcomes[plan.key] = outcome
        rest = [p for p in plans if p.parent is not None]
        for plan, outcome in zip(rest, pool.map(build_language, rest), strict=True):
            outcomes[plan.key] = outcome
            note = f": {outcome.note}" if outcome.note else ""
            say(f"[{plan.key}] {outcome.status} in {outcome.seconds:.0f}s{note}")

    _summary(list(outcomes.values()), time.monotonic() - started)
    return 0 if all(o.ok for o in outcomes.values()) else 1


def _size(size: int | None) -> str:
    return "-" if size is None else f"{size / 1e6:.0f} MB"


def _summary(outcomes: list[BuildOutcome], seconds: float) -> None:
    rows = [("IMAGE", "STATUS", "SIZE", "TIME", "NOTE")]
    rows += [(o.reference, o.status, _size(o.size_bytes), f"{o.seconds:.0f}s", o.note) for o in outcomes]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    say("")
    for row in rows:
        say("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])
    failed = sum(not o.ok for o in outcomes)
    say(f"\n{len(outcomes)} image(s), {failed} failed, in {seconds:.0f}s")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "render":
            return cmd_render(args.check)
        return cmd_build(args)
    except (SandboxError, BuildInputError) as err:
        say(f"error: {err}")
        return 2
    except KeyboardInterrupt:
        say("interrupted: no image was tagged from the unfinished build")
        return 130


if __name__ == "__main__":
    sys.exit(main())
