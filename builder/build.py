"""Build one image: skip it when its content hash is built, else build, check, label and tag it.

An image is tagged only after its checks pass, so a failed build never leaves a
half-built image under a good name; the full Docker output goes to a log file.
"""

from __future__ import annotations

import io
import re
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from builder.checks import run_checks, run_service_check
from builder.plan import ImagePlan
from runtime import labels
from runtime.registry import Registry

Status = Literal["built", "up to date", "failed", "not built"]
HEARTBEAT_SECONDS = 30
_STEP = re.compile(r"^Step (\d+/\d+) : (.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # pip and npm colour their errors
_LAYER = re.compile(r"^---> ([0-9a-f]{12,64})$")  # the image a finished step committed
_DOCKER_NOISE = ("Removing intermediate container", "--->", "Running in ", "Step ")
_ERROR_LINE = re.compile(r"^(E: |ERROR|error|dpkg: error|npm ERR!|.*\b(error|Error|ERROR)\b)")
_MARKERS = {
    "THEAPPAPP-UNREACHABLE:": "source unreachable: {}",
    "THEAPPAPP-CHECKSUM-MISMATCH:": "checksum mismatch for {}",
}


@dataclass(frozen=True)
class BuildOptions:
    force: bool = False
    no_cache: bool = False
    build_args: dict[str, str] = field(default_factory=dict)  # mirrors


@dataclass(frozen=True)
class BuildOutcome:
    key: str
    reference: str
    status: Status
    seconds: float
    size_bytes: int | None = None
    note: str = ""
    content_hash: str = ""
    log_file: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("built", "up to date")


def hash_reference(plan: ImagePlan, content_hash: str) -> str:
    return f"{plan.repository}:{plan.hash_tag_prefix}{content_hash[:16]}"


def build_image(
    client: docker.DockerClient,
    plan: ImagePlan,
    parent_identity: str,
    parent_reference: str,
    registry: Registry,
    options: BuildOptions,
    log_dir: Path,
    say: Callable[[str], None],
) -> BuildOutcome:
    started = time.monotonic()
    content_hash = plan.content_hash(parent_identity)
    hash_ref = hash_reference(plan, content_hash)

    def outcome(status: Status, note: str = "", image: Any = None, log: Path | None = None) -> BuildOutcome:
        size = image.attrs.get("Size") if image is not None else None
        return BuildOutcome(plan.key, plan.reference, status, time.monotonic() - started, size, note,
                            content_hash, log)

    if not options.force:
        try:
            existing = client.images.get(hash_ref)
            _tag(existing, plan)
            return outcome("up to date", _missing_note(existing), existing)
        except ImageNotFound:
            pass

    log_file = log_dir / f"{plan.key}.log"
    log_dir.mkdir(parents=True, exist_ok=True)
    say(f"[{plan.key}] building {plan.reference} (log: {log_file})")
    build_args = {**options.build_args, "CONTENT_HASH": content_hash, "BASE_IMAGE": parent_reference}
    with log_file.open("w", encoding="utf-8") as log:
        image_id, failure, last_layer = _docker_build(client, plan, build_args, options.no_cache, log, say)
    if failure or image_id is None:
        if last_layer is not None:
            _discard_untagged(client, last_layer)  # else every failed build leaves a <none> image behind
        return outcome("failed", f"{failure or 'no image produced'} (log: {log_file})", log=log_file)

    image = client.images.get(image_id)
    if plan.language is not None:
        say(f"[{plan.key}] running checks as the sandbox user")
        report = run_checks(client, image_id, plan.language, registry)
        with log_file.open("a", encoding="utf-8") as log:
            for result in report.results:
                log.write(f"\n== check {result.name}: {'ok' if result.passed else 'FAILED ' + result.reason}\n")
                log.write(result.output + "\n")
        if report.failures:
            _discard(client, image_id)
            first = report.failures[0]
            return outcome("failed", f"check {first.name} failed: {first.reason} (log: {log_file})", log=log_file)
        if report.missing_optional:
            image = _add_missing_label(client, image_id, report.missing_optional)
    if plan.service is not None:
        say(f"[{plan.key}] running its check as {plan.service.user}")
        passed, output = run_service_check(client, image_id, plan.service)
        with log_file.open("a", encoding="utf-8") as log:
            log.write(f"\n== check {plan.service.name}: {'ok' if passed else 'FAILED'}\n{output}\n")
        if not passed:
            _discard(client, image_id)
            return outcome("failed", f"check failed: {plan.service.expect!r} not in the output of "
                                     f"{plan.service.check!r} (log: {log_file})", log=log_file)
    repository, tag = hash_ref.split(":", 1)
    client.api.tag(image.id, repository, tag)
    _tag(image, plan)
    _untag_older_builds(client, plan, hash_ref)
    return outcome("built", _missing_note(image), image, log_file)


def _context(plan: ImagePlan) -> io.BytesIO:
    """An uncompressed tar with the Dockerfile and the plan's context files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        files = [("Dockerfile", plan.dockerfile.encode()), *plan.context_files]
        directories = {str(Path(name).parent) for name, _ in files} - {"."}
        if plan.parent is None:
            directories.add("ca")  # COPY ca/ needs the directory even when it is empty
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, content in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755 if name == "theappapp-fetch" or name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    return buffer


def _docker_build(
    client: docker.DockerClient,
    plan: ImagePlan,
    build_args: dict[str, str],
    no_cache: bool,
    log: io.TextIOBase,
    say: Callable[[str], None],
) -> tuple[str | None, str | None, str | None]:
    """Stream a build into `log`; return (image id, failure reason, the last step's image)."""
    image_id: str | None = None
    failure: str | None = None
    last_layer: str | None = None
    step = "starting"
    last_lines: list[str] = []
    with _heartbeat(lambda: f"[{plan.key}] still building: {step}", say):
        try:
            stream = client.api.build(
                fileobj=_context(plan), custom_context=True, buildargs=build_args, rm=True, forcerm=True,
                nocache=no_cache, pull=False, decode=True,
            )
            for chunk in stream:
                text = chunk.get("stream", "")
                if text:
                    log.write(text)
                    for line in text.splitlines():
                        line = _ANSI.sub("", line).strip()
                        if layer := _LAYER.match(line):
                            last_layer = layer.group(1)
                        if match := _STEP.match(line):
                            step = f"step {match.group(1)}"
                            if match.group(2).startswith(("RUN", "COPY", "FROM")):  # the steps that take time
                                say(f"[{plan.key}] {step}: {match.group(2)[:90]}")
                        for marker, template in _MARKERS.items():
                            if line.startswith(marker):
                                failure = template.format(line[len(marker):].strip())
                        if line and not line.startswith(_DOCKER_NOISE):
                            last_lines = [*last_lines[-40:], line]
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                if "error" in chunk:
                    log.write(f"\nERROR: {chunk['error']}\n")
                    detail = _first_error(last_lines) or chunk["error"].strip()
                    failure = failure or f"{step} failed: {detail[:200]}"
        except (APIError, DockerException) as err:
            log.write(f"\nERROR: {err}\n")
            failure = failure or f"docker build error: {err}"
    return (None if failure else image_id), failure, last_layer


def _first_error(lines: list[str]) -> str | None:
    """The first line that reads like an error among the last ones; else the last line."""
    return next((line for line in lines if _ERROR_LINE.match(line)), lines[-1] if lines else None)


@contextmanager
def _heartbeat(message: Callable[[], str], say: Callable[[str], None]) -> Iterator[None]:
    """Say `message()` every HEARTBEAT_SECONDS while a long step runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            say(message())

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _add_missing_label(client: docker.DockerClient, image_id: str, missing: tuple[str, ...]) -> Any:
    """Label the image with the optional components it lacks (labels are set at build time)."""
    dockerfile = f'FROM {image_id}\nLABEL {labels.IMAGE_MISSING_OPTIONAL}="{",".join(missing)}"\n'
    image, _logs = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), rm=True, pull=False)
    return image


def _missing_note(image: Any) -> str:
    missing = (image.labels or {}).get(labels.IMAGE_MISSING_OPTIONAL, "")
    return f"built without optional {missing} (source unreachable)" if missing else ""


def _tag(image: Any, plan: ImagePlan) -> None:
    for tag in plan.tags:
        image.tag(plan.repository, tag)


def _untag_older_builds(client: docker.DockerClient, plan: ImagePlan, keep: str) -> None:
    """Drop hash tags of earlier builds so superseded images do not pile up on disk."""
    for image in client.images.list(name=plan.repository):
        for tag in image.tags:
            if tag != keep and tag.startswith(f"{plan.repository}:{plan.hash_tag_prefix}"):
                with suppress(DockerException):  # still used by a container: the next build tries again
                    client.images.remove(tag, noprune=False)


def _discard_untagged(client: docker.DockerClient, layer: str, attempts: int = 20) -> None:
    """Remove a failed build's last step image, and with it its untagged parents (none that another
    image or container still uses): the layer cache of a failed build, which `docker images` shows
    as <none>. A retry builds those steps again. The failed step's container may still be on its
    way out (a conflict): try again for a few seconds."""
    for _ in range(attempts):
        try:
            if client.images.get(layer).tags:
                return
            client.images.remove(layer, noprune=False)
            return
        except ImageNotFound:
            return
        except APIError as err:
            if err.status_code != 409 or "child" in str(err.explanation or ""):
                return  # refused for good, or a cached layer another image is built on: keep it
            time.sleep(0.25)


def _discard(client: docker.DockerClient, image_id: str) -> None:
    with suppress(DockerException):  # an untagged leftover is harmless; `docker image prune` removes it
        client.images.remove(image_id, force=True)
