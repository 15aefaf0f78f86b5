"""Run a language image's declared checks inside it, as the sandbox user, with a read-only root.

One container runs every check (version, each tool, hello world) so checking costs one
start; each check's output and exit code are framed by marker lines and parsed here.
"""

from __future__ import annotations

import shlex
import uuid
from dataclasses import dataclass

import docker
from docker.types import Mount

from runtime.registry import Language, Registry, Service

MISSING_OPTIONAL_FILE = "/etc/theappapp/missing-optional"
CHECK_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    output: str
    reason: str = ""


@dataclass(frozen=True)
class CheckReport:
    results: tuple[CheckResult, ...]
    missing_optional: tuple[str, ...]

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.passed)


def _script(lang: Language, marker: str, skip: set[str]) -> str:
    hello_file = f"Hello{lang.extension}"
    lines = ["set +e"]
    steps = [(c.name, c.check) for c in lang.components if c.name not in skip]
    steps.append(("hello", f"cat > {hello_file} <<'{marker}_EOF'\n{lang.hello.code}\n{marker}_EOF\n"
                           f"{lang.command_for(hello_file)}"))
    for name, command in steps:
        # The newline before the end marker: some tools (mvn) end their output without one.
        lines += [f"echo {marker} begin {shlex.quote(name)}", f"( {command}\n) 2>&1", "rc=$?", "echo",
                  f"echo {marker} end $rc"]
    return "\n".join(lines) + "\n"


def run_checks(client: docker.DockerClient, image: str, lang: Language, registry: Registry) -> CheckReport:
    """Run the checks; components recorded as missing optional ones are not checked."""
    marker = f"THEAPPAPP-CHECK-{uuid.uuid4().hex[:8]}"
    missing = _missing_optional(client, image)
    output = _run(client, image, _script(lang, marker, set(missing)), lang, registry)
    results = _parse(output, marker)
    expected = {c.name: c.expect for c in lang.components} | {"hello": lang.hello.expect}
    checked = []
    for result in results:
        want = expected.get(result.name)
        if result.passed and want and want not in result.output:
            result = CheckResult(result.name, False, result.output, f"output lacks {want!r}")
        checked.append(result)
    ran = {r.name for r in checked}
    for name in expected:
        if name not in ran and name not in missing:
            checked.append(CheckResult(name, False, "", "check did not run (the check container stopped early)"))
    return CheckReport(tuple(checked), tuple(missing))


def _missing_optional(client: docker.DockerClient, image: str) -> tuple[str, ...]:
    """Optional components whose download was unreachable at build time."""
    text: bytes = client.containers.run(
        image, ["bash", "-c", f"cat {MISSING_OPTIONAL_FILE} 2>/dev/null; true"], remove=True, network_mode="none"
    )
    return tuple(sorted({line.strip() for line in text.decode().splitlines() if line.strip()}))


def _run(client: docker.DockerClient, image: str, script: str, lang: Language, registry: Registry) -> str:
    base = registry.base
    owner = f"uid={base.uid},gid={base.uid}"
    container = client.containers.create(
        image,
        ["bash", "-c", script],
        user=f"{base.uid}:{base.uid}",
        read_only=True,
        tmpfs={"/tmp": "rw,exec,size=512m,mode=1777", base.home: f"rw,exec,size=256m,{owner}",
               base.workspace: f"rw,exec,size=256m,{owner}"},
        working_dir=base.workspace,
        network_mode="none",
        mem_limit="2g",
        labels={"org.theappapp.builder-check": "true"},
        # The cache as sandboxes get it: a fresh volume, which the engine seeds from the image.
        mounts=[Mount(lang.cache.path, None, type="volume")] if lang.cache else None,
    )
    try:
        container.start()
        container.wait(timeout=CHECK_TIMEOUT_SECONDS)
        logs: bytes = container.logs(stdout=True, stderr=True)
        return logs.decode("utf-8", errors="replace")
    finally:
        container.remove(force=True, v=True)  # v: the anonymous cache volume too


def _parse(output: str, marker: str) -> list[CheckResult]:
    results: list[CheckResult] = []
    name: str | None = None
    body: list[str] = []
    for line in output.splitlines():
        if line.startswith(f"{marker} begin "):
            name, body = line.split(" ", 2)[2], []
        elif line.startswith(f"{marker} end ") and name is not None:
            code = line.split(" ", 2)[2]
            text = "\n".join(body).strip()
            reason = "" if code == "0" else f"exit {code}: {text.splitlines()[-1] if text else 'no output'}"
            results.append(CheckResult(name, code == "0", text, reason))
            name = None
        elif name is not None:
            body.append(line)
    return results


def run_service_check(client: docker.DockerClient, image: str, service: Service) -> tuple[bool, str]:
    """A service image's declared check, as its user with a read-only root: (passed, output)."""
    container = client.containers.create(
        image, ["bash", "-c", service.check], user=service.user, read_only=True,
        tmpfs={"/tmp": "rw,size=64m,mode=1777"}, network_mode="none", mem_limit="512m",
        labels={"org.theappapp.builder-check": "true"},
    )
    try:
        container.start()
        code = container.wait(timeout=CHECK_TIMEOUT_SECONDS).get("StatusCode")
        output = container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace")
    finally:
        container.remove(force=True)
    return code == 0 and service.expect in output, output
