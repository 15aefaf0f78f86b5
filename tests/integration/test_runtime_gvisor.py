"""Sandboxes under gVisor (runsc), where the engine has it registered (scripts/enable-gvisor.sh).

Debian's runsc runs with its own network off, so these managers use network="none". gVisor
differs from runc where it matters to the manager: an OOM can kill the whole sandbox, and the
exec's output stream then never ends, so the exec has to notice its container died.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import docker
import pytest

from runtime.config import RuntimeConfig
from runtime.errors import SandboxError
from runtime.registry import Language
from runtime.sandbox.manager import ContainerManager

from .test_runtime_security import _PROBE, _listener

pytestmark = pytest.mark.integration


@pytest.fixture
async def gvisor(docker_client: docker.DockerClient, python_image: Language) -> AsyncIterator[ContainerManager]:
    if "runsc" not in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("gVisor (runsc) is not registered with the engine; scripts/enable-gvisor.sh registers it")
    manager = ContainerManager(RuntimeConfig.load(network="none", runtime="runsc", pool_enabled=False))
    await manager.startup()
    yield manager
    await manager.shutdown()


async def test_code_runs_in_gvisors_kernel_with_the_same_hardening(gvisor: ContainerManager, unique: str) -> None:
    async with gvisor.task(f"t{unique}", f"p{unique}", "python") as box:
        result = await box.exec(
            "dmesg | head -n 1; id -u; awk '$2 == \"/\" {print $4}' /proc/mounts; python3 -c 'print(6*7)'"
        )
        lines = result.stdout.splitlines()
        assert "gVisor" in lines[0], result.stdout  # gVisor's own kernel answers, not the host's
        assert lines[1] == "1000" and lines[2].split(",")[0] == "ro" and lines[3] == "42", result.stdout
        await box.write_files({"notes/a.txt": "kept"})
        assert await box.read_file("notes/a.txt") == b"kept"


async def test_an_oom_ends_the_exec_at_once_and_says_so(gvisor: ContainerManager, unique: str) -> None:
    async with gvisor.task(f"t{unique}", f"p{unique}", "python") as box:
        started = time.monotonic()
        result = await box.exec("python3 -c 'x = bytearray(4 * 1024**3)'", timeout=60)
        took = time.monotonic() - started
        # The exit code depends on which side sees the end first: the exec's stream failing (gVisor
        # reports 128) or the container's death (137); either way it is an OOM, and not a timeout.
        assert result.oom_killed and not result.timed_out and result.exit_code in (128, 137), result
        assert took < 30, f"the exec waited {took:.0f} s for a sandbox that had died"  # its deadline was 60 s
        # Usually the OOM takes the whole sandbox: the next exec is refused ("not running"), or, if
        # the engine has not noticed yet, fails with its "in state stopped" message. Sometimes gVisor
        # kills only the process and the sandbox lives on. Whichever: the next call answers at once.
        started = time.monotonic()
        try:
            after = await box.exec("echo alive", timeout=10)
        except SandboxError as err:
            assert "not running" in str(err)
        else:
            said = after.stdout + after.stderr
            assert said == "alive\n" or (after.exit_code != 0 and "stopped" in said), after
        assert time.monotonic() - started < 10


async def test_a_timeout_kills_the_command_and_the_sandbox_lives_on(gvisor: ContainerManager, unique: str) -> None:
    async with gvisor.task(f"t{unique}", f"p{unique}", "python") as box:
        slow = await box.exec("sleep 60", timeout=2)
        assert slow.timed_out and slow.exit_code in (None, 137)  # killed: gVisor reports the SIGKILL
        assert (await box.exec("echo alive")).stdout == "alive\n"


async def test_no_network_reaches_the_host(gvisor: ContainerManager, unique: str) -> None:
    addresses = {"172.17.0.1"} | set(os.popen("hostname -I").read().split())
    with _listener("0.0.0.0") as port:
        async with gvisor.task(f"t{unique}", f"p{unique}", "python") as box:
            probe = await box.exec(_PROBE.format(hosts=sorted(addresses), port=port), timeout=30)
    assert "OPEN" not in probe.stdout and probe.stdout.count("closed") == len(addresses), probe.stdout
