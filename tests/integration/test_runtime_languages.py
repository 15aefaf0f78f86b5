"""Every built language: write its hello-world program with write_files, run it with exec_command."""

from __future__ import annotations

import docker
import pytest

from runtime.config import RuntimeConfig
from runtime.manager import ContainerManager
from runtime.registry import get_registry

from .conftest import image_or_skip

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("language", sorted(get_registry().languages))
async def test_hello_world_runs_through_the_manager(
    language: str, docker_client: docker.DockerClient, runtime_config: RuntimeConfig, unique: str
) -> None:
    lang = image_or_skip(docker_client, language)
    manager = ContainerManager(runtime_config)
    await manager.startup()
    try:
        async with manager.task(f"hello-{unique}", f"p{unique}", language) as sandbox:
            filename = f"Hello{lang.extension}"
            await sandbox.write_files({filename: lang.hello.code})
            result = await sandbox.exec(lang.command_for(filename), timeout=120)
            assert result.exit_code == 0, result.stderr
            assert lang.hello.expect in result.stdout
    finally:
        await manager.shutdown()
