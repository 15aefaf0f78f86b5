"""run_code's file naming and result, without Docker."""

from __future__ import annotations

import pytest

from runtime.errors import InvalidPath
from runtime.registry import get_registry
from runtime.sandbox.execution import ExecResult
from runtime.sandbox.runcode import RunResult, check_filename, default_filename
from runtime.validation import Finding


@pytest.mark.parametrize(
    "language, expected",
    [("python", "main.py"), ("node", "main.js"), ("go", "main.go"), ("ruby", "main.rb"), ("php", "main.php"),
     ("csharp", "main.cs"), ("powershell", "main.ps1")],
)
def test_default_file_takes_the_languages_extension(language: str, expected: str) -> None:
    assert default_filename(get_registry().resolve(language), "") == expected


@pytest.mark.parametrize(
    "code, expected",
    [
        (get_registry().resolve("java").hello.code, "Hello.java"),
        ("import java.util.*;\nclass Helper {}\npublic final class App {\n public static void main(String[] a) {}\n}",
         "App.java"),
        ("public record Point(int x, int y) {}", "Point.java"),
        ("class Only { public static void main(String[] a) {} }", "Only.java"),
        ('// public class Commented\nclass Real {}', "Real.java"),
        ('System.out.println("no class");', "Main.java"),
    ],
)
def test_java_file_is_named_after_its_public_class(code: str, expected: str) -> None:
    assert default_filename(get_registry().resolve("java"), code) == expected


@pytest.mark.parametrize("name, normal", [("app.py", "app.py"), ("./src//pkg/mod_1.py", "src/pkg/mod_1.py"),
                                         ("c++.cpp", "c++.cpp")])
def test_safe_file_names_are_accepted_and_normalised(name: str, normal: str) -> None:
    assert check_filename(name) == normal


@pytest.mark.parametrize(
    "name",
    ["../x.py", "/etc/passwd", "a b.py", "x.py; rm -rf ~", "$(id).py", "`id`.py", "-rf.py", "x\n.py", "", ".",
     "a/'q'.py", "a|b.py"],
)
def test_names_that_escape_the_workspace_or_the_shell_are_refused(name: str) -> None:
    with pytest.raises(InvalidPath):
        check_filename(name)


def test_run_result_forwards_the_execution_and_keeps_findings() -> None:
    finding = Finding("eval-exec", "warning", 1, 1, "eval")
    result = RunResult(ExecResult(3, "out", "err", 0.1), (finding,), "main.py", "python3 main.py")
    assert (result.exit_code, result.stdout, result.stderr, result.ok) == (3, "out", "err", False)
    assert result.findings == (finding,)
    assert RunResult(ExecResult(0, "", "", 0.1), (), "main.py", "x").ok
