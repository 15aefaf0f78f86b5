"""Python sessions on a real engine: an IPython kernel in the sandbox, through the sandbox agent."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import docker
import pytest

from runtime.errors import InvalidRequest
from runtime.sandbox.handle import Sandbox
from runtime.sandbox.kernel_session import KernelSession
from runtime.sandbox.manager import ContainerManager

from .conftest import image_or_skip

pytestmark = pytest.mark.integration


@pytest.fixture
async def kernel(manager: ContainerManager, sandbox: Sandbox) -> AsyncIterator[KernelSession]:
    session = await manager.open_session(sandbox.task_id, kind="python")
    yield session
    await session.close()


async def test_state_output_values_and_errors_come_back_as_a_repl_shows_them(kernel: KernelSession) -> None:
    assert (await kernel.run("x = 41\nprint('set')")).stdout == "set\n"
    result = await kernel.run("x + 1")
    assert (result.value, result.error, result.stdout) == ("42", None, "")
    failed = await kernel.run("1 / 0")
    assert failed.error is not None and failed.error.name == "ZeroDivisionError" and failed.error.traceback
    assert (await kernel.run("def twice(v):\n    return 2 * v\ntwice(x)")).value == "82"
    shell_level = await kernel.run("import os\nos.system('echo from-a-child-process')")
    assert "from-a-child-process" in shell_level.stdout  # ipykernel forwards fd-level output too


async def test_a_figure_comes_back_as_png_and_a_dataframe_as_html_and_text(kernel: KernelSession) -> None:
    chart = await kernel.run("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()")
    assert chart.error is None, chart.error
    pngs = [o for o in chart.outputs if o.mime == "image/png"]
    assert pngs and base64.b64decode(pngs[0].data).startswith(b"\x89PNG\r\n\x1a\n")
    frame = await kernel.run("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
    assert frame.value is not None and "a" in frame.value and "x" in frame.value
    assert any(o.mime == "text/html" and "<table" in o.data for o in frame.outputs)


async def test_interrupt_and_timeout_stop_a_cell_and_keep_the_state(kernel: KernelSession) -> None:
    await kernel.run("kept = 'yes'")
    cell = asyncio.ensure_future(kernel.run("import time\ntime.sleep(120)"))
    await asyncio.sleep(1.0)
    await kernel.interrupt()
    stopped = await asyncio.wait_for(cell, 20)
    assert stopped.error is not None and stopped.error.name == "KeyboardInterrupt"
    slow = await kernel.run("time.sleep(120)", timeout=1.0)
    assert slow.timed_out and slow.error is not None and slow.error.name == "KeyboardInterrupt"
    assert (await kernel.run("kept")).value == "'yes'"


async def test_restart_clears_the_state(kernel: KernelSession) -> None:
    await kernel.run("gone = 1")
    await kernel.restart()
    after = await kernel.run("gone")
    assert after.error is not None and after.error.name == "NameError"


async def test_a_language_without_python_sessions_says_which_kinds_it_has(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    image_or_skip(docker_client, "go")
    async with manager.task(f"g{unique}", f"p{unique}", "go") as box:
        with pytest.raises(InvalidRequest, match="go has no 'python' session; it has: shell"):
            await manager.open_session(box.task_id, kind="python")


async def test_node_cells_share_one_context_await_promises_and_strip_types(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    image_or_skip(docker_client, "node")
    async with manager.task(f"n{unique}", f"p{unique}", "node") as box:
        async with box.session("node") as node:
            assert (await node.run("let x = 41; const add = (a, b) => a + b; console.log('set')")).stdout == "set\n"
            assert (await node.run("add(x, 1)")).value == "42"
            assert (await node.run("new Promise((ok) => setTimeout(() => ok(x * 2), 50))")).value == "82"
            failed = await node.run("JSON.parse('{')")
            assert failed.error is not None and failed.error.name == "SyntaxError"
            busy = asyncio.ensure_future(node.run("while (true) {}"))
            await asyncio.sleep(1.0)
            await node.interrupt()
            stopped = await asyncio.wait_for(busy, 20)
            assert stopped.error is not None and "interrupted" in stopped.error.message
            assert (await node.run("x")).value == "41"  # the state survived the interrupt
            waiting = await node.run("new Promise(() => {})", timeout=1.0)  # an await is interrupted too
            assert waiting.timed_out and waiting.error is not None and "interrupted" in waiting.error.message
            big = await node.run("console.log('y'.repeat(300000))")  # an answer larger than a pipe's buffer
            assert big.stdout == "y" * 300000 + "\n"
            await node.restart()
            assert (await node.run("typeof x")).value == "'undefined'"
        async with box.session("typescript") as ts:
            await ts.run("interface P { n: number }\nconst p: P = { n: 2 };")
            assert (await ts.run("const double = (v: number): number => v * 2;\ndouble(p.n)")).value == "4"


async def test_ruby_cells_share_one_binding_and_an_interrupt_keeps_it(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    image_or_skip(docker_client, "ruby")
    async with manager.task(f"r{unique}", f"p{unique}", "ruby") as box, box.session("ruby") as ruby:
        assert (await ruby.run("x = 41\nputs 'set'")).stdout == "set\n"
        assert (await ruby.run("x + 1")).value == "42"
        assert (await ruby.run("def twice(v) = v * 2\ntwice(x)")).value == "82"
        failed = await ruby.run("Integer('nope')")
        assert failed.error is not None and failed.error.name == "ArgumentError"
        busy = asyncio.ensure_future(ruby.run("loop {}"))
        await asyncio.sleep(1.0)
        await ruby.interrupt()
        stopped = await asyncio.wait_for(busy, 20)
        assert stopped.error is not None and stopped.error.name == "Interrupt"
        assert (await ruby.run("x")).value == "41"
        await ruby.restart()
        gone = await ruby.run("x")
        assert gone.error is not None and gone.error.name == "NameError"


async def test_java_cells_share_one_jshell(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    image_or_skip(docker_client, "java")
    async with manager.task(f"j{unique}", f"p{unique}", "java") as box, box.session("java") as java:
        assert (await java.run('int x = 41;\nSystem.out.println("set");')).stdout == "set\n"
        assert (await java.run("x + 1")).value == "42"
        assert (await java.run("int twice(int v) { return 2 * v; }\ntwice(x)")).value == "82"
        thrown = await java.run('Integer.parseInt("nope")')
        assert thrown.error is not None and thrown.error.name == "java.lang.NumberFormatException"
        rejected = await java.run('int y = "s";')
        assert rejected.error is not None and rejected.error.name == "CompilationError"
        busy = asyncio.ensure_future(java.run("while (true) {}"))
        await asyncio.sleep(2.0)
        await java.interrupt()
        stopped = await asyncio.wait_for(busy, 20)
        assert stopped.error is not None and stopped.error.name == "Interrupted"
        assert (await java.run("x")).value == "41"


async def test_a_cell_that_floods_output_is_capped_and_the_kernel_goes_on(kernel: KernelSession) -> None:
    flood = await kernel.run("for _ in range(50):\n    print('x' * 100_000)")
    assert flood.truncated and len(flood.stdout) <= 1024 * 1024
    assert (await kernel.run("'still here'")).value == "'still here'"
