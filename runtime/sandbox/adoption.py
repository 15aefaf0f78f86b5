"""Taking over the tasks of a manager that is gone: an orchestrator restart loses no running task.

A task's identity is in its container's labels (and, for a warm-pool hand-over, in its
name), so a new manager can find this installation's live task containers whose owning
process is gone (same host, that pid not running or another process now) and take them
over: it relabels them as its own (a compare-and-set, so two managers starting at once
cannot both take one) and puts them in its task table. A live manager's tasks are never
taken: their owner is alive. Idle spares of the dead manager serve nobody: they are removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from runtime import labels
from runtime.backends.base import Backend, ContainerRecord
from runtime.errors import SandboxError, UnknownLanguage
from runtime.registry import Registry
from runtime.sandbox.naming import volume_name
from runtime.sandbox.owner import OWNER_LABELS, Owner, owner_gone, task_of
from runtime.sandbox.pool import SPARE_PREFIX
from runtime.sandbox.tasks import ContainerInfo, TaskTable

log = logging.getLogger(__name__)


def _owner_values(values: Mapping[str, str]) -> dict[str, str]:
    return {key: values.get(key, "") for key in OWNER_LABELS}


async def adopt_orphaned_tasks(
    backend: Backend, owner: Owner, registry: Registry, tasks: TaskTable, *, image_tag: str = "latest"
) -> list[ContainerInfo]:
    """Take over this installation's running tasks whose manager is gone; returns what was taken."""
    ours = {labels.MANAGED: "true", labels.INSTALLATION: owner.installation}
    taken: list[ContainerInfo] = []
    for record in await backend.list_containers(ours):
        values = record.labels
        if record.state != "running" or labels.ROLE in values or not owner_gone(values, host=owner.host):
            continue  # a network holder (role "netns") is not a task: cleanup removes it once unused
        if record.name.startswith(SPARE_PREFIX):  # an idle spare: made for a task that never came
            backend.remove_soon(record.id)
            continue
        task_id = task_of(values, record.name)
        if task_id in tasks or not await backend.relabel(record.id, _owner_values(values), owner.owner_labels()):
            continue  # already ours under that id, or another new manager took it first
        try:
            info = await _info(backend, record, task_id, registry, image_tag)
        except (SandboxError, ValueError) as err:
            log.warning("took over %s but cannot serve it (%s); cleanup will remove it", record.name, err)
            continue
        tasks.add(info)
        taken.append(info)
        log.info("took over task %s of project %s from a manager that is gone", task_id, info.project_id)
    return taken


async def _info(
    backend: Backend, record: ContainerRecord, task_id: str, registry: Registry, image_tag: str
) -> ContainerInfo:
    values = record.labels
    try:
        language = registry.resolve(values[labels.LANGUAGE])
    except KeyError as err:
        raise UnknownLanguage("no language label") from err
    state = await backend.inspect(record.id)
    project_id = values[labels.PROJECT]
    created = float(values.get(labels.CREATED_AT) or record.created or time.time())
    return ContainerInfo(
        task_id=task_id,
        project_id=project_id,
        language=language.name,
        container_id=record.id,
        container_name=record.name,
        volume_name=volume_name(project_id),
        image=f"{language.image}:{image_tag}",
        network=state.network if state is not None else "?",
        created_at=created,
    )
