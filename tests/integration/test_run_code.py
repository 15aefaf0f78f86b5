"""run_code against real images: write, validate (never blocking unless strict), run, findings returned."""

from __future__ import annotations

import docker
import pytest

from runtime.errors import InvalidPath, ValidationFailed
from runtime.registry import get_registry
from runtime.sandbox.manager import ContainerManager

from .conftest import image_or_skip

pytestmark = pytest.mark.integration


async def test_python_snippet_runs_from_main_py_with_its_warnings(manager: ContainerManager, unique: str) -> None:
    async with manager.task(f"t-{unique}", f"p-{unique}", "python") as sandbox:
        result = await manager.run_code(sandbox.task_id, "import sys\nprint(eval('6*7'))\nsys.exit(3)\n")
        assert result.filename == "main.py" and result.command == "python3 main.py"
        assert result.stdout == "42\n" and result.exit_code == 3  # the program's own exit code
        assert [f.rule_id for f in result.findings] == ["pattern.python.eval-exec"]  # a warning: reported, not blocking
        assert await sandbox.read_file("main.py") == b"import sys\nprint(eval('6*7'))\nsys.exit(3)\n"


async def test_syntax_error_is_a_finding_and_still_runs_unless_strict(manager: ContainerManager, unique: str) -> None:
    async with manager.task(f"t-{unique}", f"p-{unique}", "python") as sandbox:
        result = await manager.run_code(sandbox.task_id, "print('a'\n")
        syntax = [f for f in result.findings if f.severity == "error"]
        assert syntax and syntax[0].line == 1
        assert result.exit_code == 1 and "SyntaxError" in result.stderr  # ran anyway: the interpreter agrees

        with pytest.raises(ValidationFailed) as refused:
            await manager.run_code(sandbox.task_id, "def f(:\n", "strict.py", strict=True)
        assert refused.value.findings
        ls = await sandbox.exec("ls")
        assert "strict.py" not in ls.stdout  # refused before anything was written


async def test_named_file_in_a_subdirectory_and_unsafe_names(manager: ContainerManager, unique: str) -> None:
    async with manager.task(f"t-{unique}", f"p-{unique}", "python") as sandbox:
        result = await manager.run_code(sandbox.task_id, "print(__file__)", "pkg/app.py")
        assert result.command == "python3 pkg/app.py" and result.stdout.strip().endswith("pkg/app.py")
        for bad in ("x.py; touch pwned", "../escape.py", "$(touch pwned).py"):
            with pytest.raises(InvalidPath):
                await manager.run_code(sandbox.task_id, "print(1)", bad)
        assert "pwned" not in (await sandbox.exec("ls -a")).stdout


async def test_secret_in_code_is_reported_masked(manager: ContainerManager, unique: str) -> None:
    key = "AKIA" + "ABCDEFGHIJKLMNOP"
    async with manager.task(f"t-{unique}", f"p-{unique}", "python") as sandbox:
        result = await manager.run_code(sandbox.task_id, f"key = '{key}'\nprint('ok')\n")
        assert result.stdout == "ok\n"
        secrets = [f for f in result.findings if f.rule_id.startswith("secret")]
        assert secrets and all(key not in f.message for f in secrets)


@pytest.mark.parametrize("language", sorted(get_registry().languages))
async def test_every_built_languages_hello_runs_through_run_code(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str, language: str
) -> None:
    lang = image_or_skip(docker_client, language)
    async with manager.task(f"t-{unique}", f"p-{unique}", lang.name) as sandbox:
        result = await manager.run_code(sandbox.task_id, lang.hello.code, timeout=120)
        assert result.ok, (result.command, result.stdout, result.stderr)
        assert lang.hello.expect in result.stdout
        assert not [f for f in result.findings if f.severity == "error"], result.findings


async def test_typescript_file_is_compiled_then_run_and_a_type_error_stops_it(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    from runtime.monitoring.failures import classify

    image_or_skip(docker_client, "node")
    typed = (
        'import * as os from "os";\nconst n: number = 41;\n'
        "console.log(n + 1, typeof os.cpus, process.argv.length);\n"
    )
    async with manager.task(f"t-{unique}", f"p-{unique}", "ts") as sandbox:
        result = await manager.run_code(sandbox.task_id, typed, "src/main.ts", timeout=120)
        assert result.ok and result.stdout == "42 function 2\n", (result.command, result.stdout, result.stderr)
        assert result.command.startswith("tsc ") and result.command.endswith("node src/main.js")

        wrong = await manager.run_code(sandbox.task_id, 'const n: number = "41";\nconsole.log("ran");\n', "bad.ts")
        assert wrong.exit_code != 0 and "ran" not in wrong.stdout
        assert "error TS2322" in wrong.stderr  # on stderr, where the monitor reads failures
        failure = classify("node", wrong.exit_code, False, False, wrong.stderr)
        assert (failure.outcome, failure.error_type) == ("syntax_error", "TS2322")
