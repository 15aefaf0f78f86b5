"""Removing a project's volumes — its workspace and its language caches — only ever on request."""

from __future__ import annotations

from runtime import labels
from runtime.backends.base import Backend, ResourceInUse
from runtime.errors import SandboxError
from runtime.sandbox.naming import volume_name


async def remove_project_volume(
    backend: Backend, installation_id: str, project_id: str, *, dry_run: bool = False
) -> list[str]:
    """Remove the project's volume and its language caches, if ours: the names removed (none: nothing there).

    `SandboxError` if the project volume is foreign, or a volume is in use. The caches go first:
    if one is in use, the project's files are still there when the error is raised.
    """
    name = volume_name(project_id)
    volume = await backend.inspect_volume(name)
    if volume is not None:
        values = volume.labels
        if values.get(labels.MANAGED) != "true" or values.get(labels.INSTALLATION) != installation_id:
            raise SandboxError(
                f"volume {name} does not carry this installation's labels "
                f"({labels.INSTALLATION}={installation_id}); it was left alone"
            )
    caches = await backend.list_volumes({
        labels.MANAGED: "true", labels.INSTALLATION: installation_id, labels.PROJECT: project_id, labels.CACHE: None,
    })
    removed = [c for c in sorted(v.name for v in caches) if dry_run or await _remove(backend, c)]
    if volume is not None and (dry_run or await _remove(backend, name)):
        removed.insert(0, name)
    elif volume is None and not dry_run and await backend.storage.remove(name):
        removed.insert(0, name)  # the engine's volume was gone, its files were not: they go too
    return removed


async def _remove(backend: Backend, name: str) -> bool:
    try:
        return await backend.remove_volume(name)
    except ResourceInUse as err:
        raise SandboxError(f"volume {name} is in use by a container; destroy the project's tasks first") from err
