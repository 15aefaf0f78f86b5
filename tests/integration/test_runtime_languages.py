"""Every built language: write its hello-world program with write_files, run it with exec_command."""

from __future__ import annotations

import docker
import pytest

from runtime.config import RuntimeConfig
from runtime.registry import get_registry
from runtime.sandbox.manager import ContainerManager

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


async def test_go_build_cache_is_seeded_kept_per_project_and_deleted_with_it(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    go = image_or_skip(docker_client, "go")
    assert go.cache is not None
    hello = {"main.go": go.hello.code}
    # -x prints every compile the go command runs: a seeded cache means the standard library is not among them
    build = "go build -x -o /tmp/hello main.go 2>&1 | grep -c '/compile ' ; /tmp/hello"
    async with manager.task(f"a1{unique}", f"pa{unique}", "go") as sandbox:
        await sandbox.write_files(hello)
        first = await sandbox.exec(build, timeout=120)
        assert first.exit_code == 0 and first.stdout.split() == ["1", "hello,", "world"], first.stdout
        assert (await sandbox.exec(f"touch {go.cache.path}/planted-by-a")).exit_code == 0
    async with manager.task(f"a2{unique}", f"pa{unique}", "go") as sandbox:
        assert (await sandbox.exec(f"test -e {go.cache.path}/planted-by-a")).exit_code == 0  # kept for the project
    async with manager.task(f"b1{unique}", f"pb{unique}", "go") as sandbox:
        assert (await sandbox.exec(f"test -e {go.cache.path}/planted-by-a")).exit_code == 1  # never another's
        await sandbox.write_files(hello)
        assert (await sandbox.exec("go vet ./main.go && go run main.go", timeout=120)).stdout == "hello, world\n"
    await manager.settle()
    volume = f"theappapp-cache.go.pa{unique}"
    assert docker_client.volumes.get(volume).attrs["Labels"]["org.theappapp.cache"] == "go"
    assert await manager.delete_project_volume(f"pa{unique}") is True
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume)
    assert await manager.delete_project_volume(f"pb{unique}") is True
