"""Shared fixtures for tests against the real Docker engine.

The engine is shared with other test runs: everything created here carries this
session's installation id (labels) or a unique name, and teardown removes only that.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import docker
import pytest
from docker.errors import DockerException, NotFound
from docker.models.volumes import Volume

from runtime import labels
from runtime.backends.docker.network import remove_sandbox_network
from runtime.backends.docker.storage import remove_files_now
from runtime.config import RuntimeConfig
from runtime.errors import SandboxError
from runtime.registry import Language, get_registry
from runtime.sandbox.manager import ContainerManager, Sandbox

SESSION = uuid.uuid4().hex[:10]
INSTALLATION = f"test-{SESSION}"
# Set before any manager exists, so every container and volume of this session is labelled with it.
os.environ["THEAPPAPP_INSTALLATION_ID"] = INSTALLATION
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # Ryuk's image cannot be pulled here
# Plain project volumes unless a test asks for quotas (test_project_storage, test_storage_*, with a
# storage root of their own): the session's teardown removes volumes through the engine only, and
# every quota volume is a mounted filesystem that must go through the storage.
os.environ.setdefault("THEAPPAPP_STORAGE_ENABLED", "false")
NETWORK = f"theappapp-test-{SESSION}"
# What runs in a sandbox nobody uses: docker's init, and the sandbox agent as its only child.
AGENT = "/usr/bin/python3 -I -S /opt/theappapp/sandbox-agent.pyc"
IDLE_PROCESSES = [f"/sbin/docker-init -- {AGENT}", AGENT]


def engine_or_skip() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except DockerException:
        pytest.skip("no Docker engine reachable: start one with `bash scripts/start-docker-engine.sh`")
    return client


def _remove_test_network(client: docker.DockerClient, name: str) -> None:
    """Remove a test session's network. Docker 20.10 can lose count of a network's endpoints
    under concurrent starts and removals and then refuse to remove it, empty, until dockerd
    restarts: that engine fault is reported as a warning; a network with containers still
    attached (our leak) fails the run."""
    try:
        network = client.networks.get(name)
    except DockerException:
        return
    try:
        remove_sandbox_network(client, name)
    except (SandboxError, DockerException) as err:
        network.reload()
        if network.attrs.get("Containers"):
            raise
        warnings.warn(f"engine refused to remove empty network {name} (phantom endpoints): {err}", stacklevel=1)


def remove_volumes(client: docker.DockerClient, volumes: list[Volume]) -> None:
    """Remove these Docker volumes and their quota filesystems (removing the Docker volume alone keeps
    the filesystem mounted on the host, and each such mount slows every later container's start)."""
    for volume in volumes:
        with contextlib.suppress(NotFound):
            volume.remove(force=True)
    remove_files_now((v.name for v in volumes), RuntimeConfig.load().storage.root)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = engine_or_skip()
    # Earlier sessions' networks that the engine refused to remove then (see above); a day
    # old at least, so a test session running beside this one keeps its network.
    day_ago = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    for network in client.networks.list(filters={"label": [f"{labels.MANAGED}=true"]}):
        created = str(network.attrs.get("Created", ""))[:19]  # ISO 8601, UTC: compares as text
        if network.name.startswith("theappapp-test-") and network.name != NETWORK and created < day_ago:
            with contextlib.suppress(SandboxError, DockerException):
                remove_sandbox_network(client, network.name)
    yield client
    ours = {"label": [f"{labels.INSTALLATION}={INSTALLATION}"]}
    for container in client.containers.list(all=True, filters=ours):
        container.remove(force=True)
    remove_volumes(client, client.volumes.list(filters=ours))
    _remove_test_network(client, NETWORK)
    client.close()


@pytest.fixture(scope="session")
def installation_id() -> str:
    return INSTALLATION


def image_or_skip(client: docker.DockerClient, language: str) -> Language:
    lang = get_registry().resolve(language)
    ref = f"{lang.image}:latest"
    if not client.images.list(name=ref):
        pytest.skip(f"image {ref} is not built on this engine (build it with `nox -s build -- {lang.name}`)")
    return lang


# The OCI runtimes that the attacks and the kept-namespace tests are tried under: the engine's default, and
# crun (the same containers on less CPU), which is offered only as hardened as runc (scripts/enable-crun.sh).
RUNTIMES: list[str | None] = [None, "crun"]
RUNTIME_IDS = ["engine-default", "crun"]


def runtime_or_skip(client: docker.DockerClient, runtime: str | None) -> str | None:
    if runtime is not None and runtime not in (client.info().get("Runtimes") or {}):
        script = {"crun": "scripts/enable-crun.sh", "runsc": "scripts/enable-gvisor.sh"}.get(runtime, "its daemon.json")
        pytest.skip(f"the OCI runtime {runtime} is not registered with the engine ({script} registers it)")
    return runtime


@pytest.fixture
def python_image(docker_client: docker.DockerClient) -> Language:
    return image_or_skip(docker_client, "python")


@pytest.fixture
def unique() -> str:
    """A short id, unique in this session: use it in task and project ids."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def runtime_config(docker_client: docker.DockerClient) -> RuntimeConfig:
    return RuntimeConfig.load(network_name=NETWORK)


@pytest.fixture
async def manager(runtime_config: RuntimeConfig, python_image: Language) -> AsyncIterator[ContainerManager]:
    """A started manager on this session's network; everything it created is destroyed after the test."""
    mgr = ContainerManager(runtime_config)
    await mgr.startup()
    yield mgr
    await mgr.shutdown()


@pytest.fixture
async def sandbox(manager: ContainerManager, unique: str) -> AsyncIterator[Sandbox]:
    """A python task of a project of its own, destroyed after the test."""
    async with manager.task(f"t{unique}", f"p{unique}", "python") as box:
        yield box
