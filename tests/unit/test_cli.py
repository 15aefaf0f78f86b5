"""The `theappapp-sandbox` command line without Docker: argument handling, bad input, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.cli import commands as cli
from runtime.monitoring.monitor import SandboxMonitor
from runtime.monitoring.stats_view import render
from runtime.ops.listing import human_age, table
from runtime.sandbox.events import ExecEvent, LifecycleEvent, ResourceUsage

NO_ENGINE = "unix:///nonexistent/theappapp-test.sock"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THEAPPAPP_MONITOR_DB", str(tmp_path / "monitor.sqlite3"))
    monkeypatch.setenv("THEAPPAPP_INSTALLATION_ID", "unit-cli")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([], capsys)
    assert code == 2 and "run" in err and "doctor" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "python"], "give a FILE"),
        (["run", "python", "x.py", "-c", "print(1)"], "not both"),
        (["run", "python", "/nonexistent/dir/x.py"], "cannot read /nonexistent/dir/x.py"),
        (["run", "python", "-c", "1", "--timeout", "0"], "must be positive"),
        (["run", "python", "-c", "1", "--timeout", "soon"], "not a number"),
        (["run", "python", "-c", "1", "--network", "host"], "invalid choice"),
        (["run"], "LANG"),
        (["cleanup", "--volumes"], "--volumes needs --project"),
        (["cleanup", "--project", "p"], "only applies with --volumes"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_a_reason(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert message in err


def test_unknown_language_is_refused_before_any_engine_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)  # proves no engine is needed to say so
    code, _, err = run(["run", "cobol", "-c", "DISPLAY 'x'", "-q"], capsys)
    assert code == cli.EXIT_SANDBOX
    assert "unknown language 'cobol'" in err and "python" in err


def test_run_without_an_engine_says_so_with_the_sandbox_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    code, out, err = run(["run", "python", "-c", "print(1)"], capsys)
    assert code == cli.EXIT_SANDBOX and out == ""
    assert "error:" in err and "starting a Python sandbox" in err  # progress line, then the failure


def test_unsafe_file_name_from_the_command_line_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    bad = tmp_path / "x;touch pwned.py"
    bad.write_text("print(1)")
    code, _, err = run(["run", "python", str(bad), "-q"], capsys)
    assert code == 2 and "file name" in err and "starting" not in err  # refused before any sandbox work


def test_ls_without_an_engine_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    code, _, err = run(["ls"], capsys)
    assert code == cli.EXIT_SANDBOX and "Docker engine unreachable" in err


def test_doctor_without_an_engine_fails_the_engine_line_with_its_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    code, out, _ = run(["doctor"], capsys)
    assert code == 1
    assert "PASS  registry" in out
    assert "FAIL  engine: not reachable" in out and "fix: start the engine" in out
    assert "not ready: 2 failed" in out


def test_stats_without_a_database_explains_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "none.sqlite3"
    code, _, err = run(["stats", "--db", str(db)], capsys)
    assert code == 1 and "no monitor database" in err and "THEAPPAPP_MONITOR_ENABLED" in err
    assert not db.exists()


def test_stats_prints_the_monitor_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "m.sqlite3"
    with SandboxMonitor(db, metrics=False) as monitor:
        monitor.on_lifecycle(LifecycleEvent("create", "t1", "p1", "python", 100.0, 0.2))
        monitor.on_exec(ExecEvent("t1", "p1", "python", "python3 main.py", 101.0, 0.05, 0, False, False, 3, 0, False))
        monitor.on_exec(ExecEvent("t1", "p1", "python", "python3 main.py", 102.0, 0.10, 1, False, False, 0, 60, False,
                                  "Traceback (most recent call last):\nKeyError: 'x'\n"))
        monitor.on_lifecycle(LifecycleEvent("destroy", "t1", "p1", "python", 103.0, 0.1,
                                            usage=ResourceUsage(0.5, 20 * 1024**2, 7)))
    code, out, _ = run(["stats", "--db", str(db)], capsys)
    assert code == 0
    assert "python    2     1       50.0%" in out
    assert "KeyError" in out and "runtime_error" in out
    assert "create" in out and "destroy" in out
    assert "20.0 MiB" in out and "0.50 s" in out


def test_stats_render_on_an_empty_monitor(tmp_path: Path) -> None:
    with SandboxMonitor(tmp_path / "e.sqlite3", metrics=False) as monitor:
        text = render(monitor)
    # executions, lifecycle, pool, egress, tasks
    assert text.count("(none recorded)") == 5 and "(no failures)" in text


@pytest.mark.parametrize(
    "seconds, text",
    [(None, "-"), (0, "0s"), (59.9, "59s"), (60, "1m"), (3599, "59m"), (7200, "2h"), (90000, "1d"), (-120, "in 2m")],
)
def test_human_age(seconds: float | None, text: str) -> None:
    assert human_age(seconds) == text


def test_table_aligns_columns() -> None:
    assert table(("A", "LONG"), [("xyz", 1), ("q", 22)]).splitlines() == ["A    LONG", "xyz  1", "q    22"]


def test_serve_on_a_taken_port_says_so_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    pytest.importorskip("uvicorn", reason="the service needs the server extra")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _, err = run(["serve", "--port", str(port)], capsys)
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_serve_with_an_empty_token_file_does_not_claim_no_authentication(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uvicorn = pytest.importorskip("uvicorn", reason="the service needs the server extra")
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)  # the banner, not the serving
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    for empty in (tmp_path / "none-yet.json", tmp_path / "emptied.json"):  # no file yet; every token removed
        if empty.name == "emptied.json":
            empty.write_text('{"tokens": []}')
        code, _, err = run(["serve", "--port", "0", "--tokens", str(empty)], capsys)
        assert code == 0 and "has no tokens yet" in err
        assert f"tokens from {empty}" in err and "no authentication" not in err


def test_a_strict_refusal_prints_each_finding_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.errors import ValidationFailed
    from runtime.validation.findings import Finding

    error = Finding("syntax", "error", 1, 7, "invalid syntax")
    warning = Finding("os-command", "warning", 2, 1, "the os module runs a shell command")

    async def refused(*_: object) -> int:
        raise ValidationFailed(f"1 error(s) in main.py: {error}", (error, warning))

    monkeypatch.setattr(cli, "_run", refused)
    code, out, err = run(["run", "python", "-c", "def f(:"], capsys)
    assert code == cli.EXIT_SANDBOX and out == ""
    assert err.count("invalid syntax") == 1 and err.count("os module") == 1
    assert "refused by --strict: 1 error finding(s) above" in err
