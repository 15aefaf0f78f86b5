"""Every built language image, started with testcontainers the way the runtime starts it.

As the sandbox user, in /workspace (a fresh volume), with a read-only root and tmpfs
for /tmp and HOME: the version check, each tool's check, hello world, and one real
use of the toolchain. Images that are not built here skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import ImageNotFound

from runtime import labels
from runtime.registry import Language, load_registry
from tests.integration.conftest import engine_or_skip

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # Ryuk's image cannot be pulled here
from testcontainers.core.container import DockerContainer

REGISTRY = load_registry()
# Languages whose sources are unreachable on machines without Microsoft's download servers.
UNREACHABLE_HERE = {"csharp": "the .NET SDK download", "powershell": "the PowerShell download"}


def _image_or_skip(client: docker.DockerClient, lang: Language) -> str:
    ref = f"{lang.image}:latest"
    try:
        client.images.get(ref)
    except ImageNotFound:
        unreachable = UNREACHABLE_HERE.get(lang.name)
        why = f" ({unreachable} is not reachable from this machine)" if unreachable else ""
        pytest.skip(f"{ref} is not built{why}: `nox -s build -- {lang.name}`")
    return ref


class Sandbox:
    """A started container plus a helper that runs a shell command and returns (exit code, output)."""

    def __init__(self, container: DockerContainer) -> None:
        self.container = container

    def sh(self, command: str) -> tuple[int, str]:
        result = self.container.get_wrapped_container().exec_run(["bash", "-c", command], workdir="/workspace")
        return result.exit_code, result.output.decode("utf-8", errors="replace")

    def ok(self, command: str) -> str:
        code, output = self.sh(command)
        assert code == 0, f"`{command}` exited {code}:\n{output}"
        return output


@pytest.fixture(params=sorted(REGISTRY.languages), scope="module")
def sandbox(request: pytest.FixtureRequest) -> Iterator[tuple[Language, Sandbox]]:
    lang = REGISTRY.languages[request.param]
    client = engine_or_skip()
    image = _image_or_skip(client, lang)
    volume = client.volumes.create(f"theappapp-test-images-{uuid.uuid4().hex[:8]}", labels={labels.MANAGED: "true"})
    # The language's cache, as the runtime mounts it: a new volume, seeded by the engine from the image.
    cache = client.volumes.create(f"theappapp-test-cache-{uuid.uuid4().hex[:8]}") if lang.cache else None
    base = REGISTRY.base
    owner = f"uid={base.uid},gid={base.uid}"
    mounts = [(volume.name, base.workspace, "rw")]
    if cache is not None and lang.cache is not None:
        mounts.append((cache.name, lang.cache.path, "rw"))
    container = DockerContainer(
        image,
        command="sleep infinity",
        volumes=mounts,
        user=f"{base.uid}:{base.uid}",
        read_only=True,
        working_dir=base.workspace,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit="2g",
        labels={labels.MANAGED: "true", "org.theappapp.test": "images"},
    )
    # Full mount options (owner, mode): with_tmpfs_mount only takes a size.
    container.tmpfs.update({"/tmp": "rw,exec,size=512m,mode=1777", base.home: f"rw,exec,size=256m,{owner}"})
    try:
        container.start()
        yield lang, Sandbox(container)
    finally:
        container.stop()  # removes the container, if it was created
        volume.remove(force=True)
        if cache is not None:
            cache.remove(force=True)


def test_runs_as_sandbox_user_with_read_only_root(sandbox: tuple[Language, Sandbox]) -> None:
    _lang, box = sandbox
    assert box.ok("id -u").strip() == "1000"
    code, output = box.sh("touch /usr/local/bin/x")
    assert code != 0 and "Read-only file system" in output
    box.ok("touch /workspace/written && touch /tmp/written && touch ~/written")


def test_every_declared_check_passes(sandbox: tuple[Language, Sandbox]) -> None:
    lang, box = sandbox
    image = box.container.get_wrapped_container().image
    missing = set(filter(None, image.labels.get(labels.IMAGE_MISSING_OPTIONAL, "").split(",")))
    for component in lang.components:
        if component.name in missing:
            continue  # built without it; the label says so and the build summary reported it
        output = box.ok(component.check)
        if component.expect:
            assert component.expect in output, f"{component.name}: {output!r}"


def test_hello_world_prints_expected_output(sandbox: tuple[Language, Sandbox]) -> None:
    lang, box = sandbox
    filename = f"Hello{lang.extension}"
    box.ok(f"cat > {filename} <<'EOF'\n{lang.hello.code}\nEOF")
    assert lang.hello.expect in box.ok(lang.command_for(filename))


REAL_USE_DIR = Path(__file__).parent / "real_use"


def test_real_use_of_the_toolchain(sandbox: tuple[Language, Sandbox]) -> None:
    lang, box = sandbox
    script = REAL_USE_DIR / f"{lang.name}.sh"
    assert script.is_file(), f"no real-use scenario for {lang.name}: add {script.name}"
    box.ok(f"set -euo pipefail; mkdir -p /workspace/real && cd /workspace/real\n{script.read_text()}")
