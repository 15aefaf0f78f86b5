"""Large syntax checks run in a child process: same answers, a deadline, and no process left over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.registry import get_registry
from runtime.validation import CodeValidator
from runtime.validation.syntax import TreeSitterChecker
from runtime.validation.syntax_process import SyntaxProcess
from tests.unit.test_validator_syntax import BROKEN, grammar_of

RUBY_CHUNK = 'def total_{i}(items)\n  items.each do |item|\n    puts "#{{item}} {i}"\n  end\nend\n'
REPO = Path(__file__).resolve().parents[2]


def ruby_checker() -> str:
    """The checker name the validator sends the child for Ruby code: its grammar, as the registry says."""
    grammar = grammar_of("ruby")
    assert grammar is not None, "the registry names a tree-sitter grammar for ruby"
    return grammar


RUBY = ruby_checker()


def ruby_code(size: int) -> str:
    return "".join(RUBY_CHUNK.format(i=i) for i in range(size // len(RUBY_CHUNK) + 1))


def gone(pid: int) -> bool:
    """No such process, or only its zombie (this container's init may not reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def need_ruby_grammar() -> None:
    if not TreeSitterChecker().available(RUBY):
        pytest.skip("tree-sitter grammar for ruby not installed (extra `validate`)")


@pytest.fixture()
def process() -> Iterator[SyntaxProcess]:
    process = SyntaxProcess()
    yield process
    process.close()


@pytest.fixture(scope="module")
def in_child() -> Iterator[CodeValidator]:
    validator = CodeValidator(get_registry(), child_process_from=0)  # everything goes to the child
    yield validator
    validator.close()


@pytest.fixture(scope="module")
def here() -> CodeValidator:
    return CodeValidator(get_registry(), child_process_from=None)


@pytest.mark.parametrize("language", sorted(BROKEN))
def test_child_process_finds_what_this_process_finds(
    in_child: CodeValidator, here: CodeValidator, language: str
) -> None:
    grammar = grammar_of(language)
    if grammar and not TreeSitterChecker().available(grammar):
        pytest.skip(f"tree-sitter grammar {grammar} not installed (extra `validate`)")
    for code in (BROKEN[language][0], get_registry().languages[language].hello.code):
        assert in_child.validate(code, language) == here.validate(code, language)
    assert any(f.rule_id == "syntax.error" for f in in_child.validate(BROKEN[language][0], language))


def test_lone_surrogates_and_python_warnings_cross_over_intact(in_child: CodeValidator, here: CodeValidator) -> None:
    for code, language in (('x = "\ud800"\n', "python"), ('x = "\ud800"\nputs x }\n', "node")):
        assert in_child.validate(code, language) == here.validate(code, language)
    warned = "x = 1\nif x is 1:\n    pass\n"
    assert [f.rule_id for f in in_child.validate(warned, "python")] == ["syntax.warning"]


def test_large_code_goes_to_the_child_and_small_code_does_not() -> None:
    need_ruby_grammar()
    validator = CodeValidator(get_registry(), child_process_from=10_000, syntax_timeout=0.001)
    try:
        # a deadline no parse can meet tells where the check ran
        assert [f.rule_id for f in validator.validate(ruby_code(200_000), "ruby")] == ["syntax.timeout"]
        assert validator.validate(ruby_code(5_000), "ruby") == []
    finally:
        validator.close()


def test_a_check_over_its_deadline_is_stopped_and_the_next_one_runs(process: SyntaxProcess) -> None:
    need_ruby_grammar()
    assert process.submit(RUBY, "x = 1\n").result() == []
    first = process.pid
    assert first is not None
    process.timeout = 0.01
    (finding,) = process.submit(RUBY, ruby_code(1_000_000)).result()
    assert finding.rule_id == "syntax.timeout" and finding.severity == "warning"
    assert wait_gone(first), "the timed-out child is still running"
    process.timeout = 10
    assert process.submit(RUBY, "x = 1\nputs x }\n").result()[0].line == 2
    assert process.pid not in (None, first)


def test_a_child_killed_mid_parse_is_a_warning_and_the_next_check_runs(process: SyntaxProcess) -> None:
    need_ruby_grammar()
    process.submit(RUBY, "x = 1\n").result()  # started, grammar loaded
    pid = process.pid
    assert pid is not None
    killer = threading.Timer(0.03, os.kill, (pid, signal.SIGKILL))  # a 1 MB parse takes ~0.2 s
    killer.start()
    (finding,) = process.submit(RUBY, ruby_code(1_000_000)).result()
    killer.join()
    assert finding.rule_id == "syntax.crashed" and "SIGKILL" in finding.message
    assert process.submit(RUBY, "x = 1\n").result() == []


def test_a_child_that_died_between_checks_is_replaced_quietly(process: SyntaxProcess) -> None:
    need_ruby_grammar()
    process.submit(RUBY, "x = 1\n").result()
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    assert process.submit(RUBY, "x = 1\nputs x }\n").result()[0].rule_id == "syntax.error"


def test_close_stops_the_child_and_refuses_more_work() -> None:
    process = SyntaxProcess()
    process.submit("python", "x = 1\n").result()
    pid = process.pid
    assert pid is not None
    process.close()
    assert wait_gone(pid)
    with pytest.raises(RuntimeError):
        process.submit("python", "x = 1\n")


def test_the_child_exits_when_the_validators_process_dies_without_closing() -> None:
    script = textwrap.dedent(
        """
        import os
        from runtime.validation.syntax_process import SyntaxProcess
        process = SyntaxProcess()
        process.submit("python", "x = 1\\n").result()
        print(process.pid, flush=True)
        os._exit(0)  # no close(), no atexit: as if killed
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert wait_gone(int(out.stdout)), "the syntax child outlived its parent"


def test_no_child_to_be_had_means_checking_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    validator = CodeValidator(get_registry(), child_process_from=0)
    try:
        (finding,) = validator.validate("def f(:\n", "python")
        assert finding.rule_id == "syntax.error" and finding.line == 1
    finally:
        validator.close()


def test_an_interrupt_mid_send_frees_the_turn_and_stops_the_half_fed_child(
    process: SyntaxProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from multiprocessing.connection import Connection

    process.submit("python", "x = 1\n").result()
    first = process.pid
    assert first is not None

    def interrupted(self: Connection, data: bytes) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Connection, "send_bytes", interrupted)
        with pytest.raises(KeyboardInterrupt):
            process.submit("python", "x = 2\n")
    assert wait_gone(first)
    done = threading.Event()
    threading.Thread(target=lambda: (process.submit("python", "x = 3\n").result(), done.set()), daemon=True).start()
    assert done.wait(30), "the next check never got its turn"


def test_a_child_gone_by_a_signal_without_a_name_is_described_not_raised() -> None:
    from runtime.validation.syntax_process import _signal_name

    assert _signal_name(9) == "signal SIGKILL"
    assert _signal_name(signal.SIGRTMIN + 6) == f"signal {signal.SIGRTMIN + 6}"


def test_the_child_runs_under_a_cpu_limit_with_no_stdio_or_environment_of_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THEAPPAPP_TEST_SECRET", "do-not-leak")
    process = SyntaxProcess(timeout=3)
    try:
        process.submit("python", "x = 1\n").result()
        pid = process.pid
        assert pid is not None
        limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
        (cpu,) = [line for line in limits if line.startswith("Max cpu time")]
        soft = cpu.split()[3]
        # set before each parse to the CPU used so far + the deadline + 1 s: an orphaned runaway parse ends
        assert soft.isdigit() and 3 < int(soft) <= 3 + 2 + 5, cpu
        assert b"THEAPPAPP_TEST_SECRET" not in Path(f"/proc/{pid}/environ").read_bytes()
        assert os.readlink(f"/proc/{pid}/fd/1") == os.readlink(f"/proc/{pid}/fd/2") == "/dev/null"
    finally:
        process.close()


def test_python_syntax_warnings_are_capped(here: CodeValidator) -> None:
    from runtime.validation.syntax import MAX_WARNINGS

    findings = here.validate("x = 1\n" + "if x is 1: pass\n" * (MAX_WARNINGS + 30), "python")
    warnings = [f for f in findings if f.rule_id == "syntax.warning"]
    assert len(warnings) == MAX_WARNINGS + 1 and warnings[0].line == 0 and "30 more" in warnings[0].message
