"""SandboxMonitor wired to a real manager: what a task does shows up in its statistics."""

from __future__ import annotations

from pathlib import Path

from runtime.monitoring.monitor import SandboxMonitor
from runtime.sandbox.manager import ContainerManager


async def test_a_tasks_executions_failures_and_usage_are_recorded(
    manager: ContainerManager, unique: str, tmp_path: Path
) -> None:
    monitor = SandboxMonitor(tmp_path / "monitor.sqlite3", metrics=False)
    manager.add_observer(monitor)
    task = f"t{unique}"
    try:
        async with manager.task(task, f"p{unique}", "python") as box:
            assert (await box.exec("python3 -c 'print(1)'")).exit_code == 0
            await box.write_files({"boom.py": "def f(x):\n    return 1 / x\n\nf(0)\n"})
            assert (await box.exec("python3 boom.py")).exit_code == 1
            assert (await box.exec("python3 -c 'import not_installed_anywhere'")).exit_code == 1
            assert (await box.exec("python3 -c 'x = [0] * (10**6); sum(x)'")).exit_code == 0
            assert (await box.exec("sleep 30", timeout=1)).timed_out
        patterns = {(p.outcome, p.error_type): p.count for p in monitor.error_patterns()}
        assert patterns == {
            ("runtime_error", "ZeroDivisionError"): 1,
            ("missing_module", "ModuleNotFoundError"): 1,
            ("timeout", None): 1,
        }
        (rate,) = monitor.error_rates()
        assert (rate.language, rate.executions, rate.failures) == ("python", 5, 3)
        (stats,) = monitor.duration_stats()
        assert stats.count == 5 and stats.max >= 1.0  # the timed-out sleep ran about a second
        (usage,) = monitor.resource_usage(task_id=task)
        assert usage.created_at is not None and usage.destroyed_at is not None
        assert usage.executions == 5 and usage.failures == 3
        assert usage.cpu_seconds and usage.cpu_seconds > 0, "CPU time collected from the cgroup at destroy"
        assert usage.peak_memory_bytes and usage.peak_memory_bytes > 1 << 20
        assert usage.peak_pids and usage.peak_pids >= 2
        kinds = {s.kind for s in monitor.lifecycle_stats()}
        assert {"create", "destroy"} <= kinds
    finally:
        manager.observers.remove(monitor)
        monitor.close()
