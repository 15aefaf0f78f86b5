"""The process-wide manager and the checks that happen before the engine is asked anything."""

from __future__ import annotations

import pytest

from runtime.config import RuntimeConfig
from runtime.errors import InvalidIdentifier, SandboxError, TaskNotFound
from runtime.sandbox import manager as manager_module
from runtime.sandbox.manager import ContainerManager, get_container_manager


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THEAPPAPP_INSTALLATION_ID", "unit")
    monkeypatch.setattr(manager_module, "_instance", None)


def test_get_container_manager_is_one_instance_per_process() -> None:
    first = get_container_manager()
    assert get_container_manager() is first
    assert get_container_manager(first.config) is first
    with pytest.raises(SandboxError, match="another configuration"):
        get_container_manager(image_tag="other")


async def test_bad_ids_and_unknown_tasks_fail_before_any_engine_call() -> None:
    mgr = ContainerManager(RuntimeConfig.load(docker_host="unix:///nonexistent/engine.sock"))
    with pytest.raises(InvalidIdentifier):
        await mgr.create_container("ok", "bad id", "python")
    with pytest.raises(InvalidIdentifier):
        await mgr.create_container("../t", "ok", "python")
    with pytest.raises(TaskNotFound):
        await mgr.exec_command("unknown", "true")
    with pytest.raises(TaskNotFound):
        mgr.exec_stream("unknown", "true")
    with pytest.raises(TaskNotFound):
        await mgr.write_files("unknown", {"a": "b"})
    assert await mgr.destroy_container("unknown") is False
