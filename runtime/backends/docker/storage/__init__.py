"""Project volumes with a hard size for the Docker backend: an XFS filesystem per volume, snapshots by reflink.

`DockerStorage` is the entry point (`DockerBackend.storage`); the modules each hold one concern:
`layout` (paths and the names allowed in them), `sizes`, `commands` (the host tools), `mounts`,
`images` (XFS images on loop devices), `pool`, `volumes`, `snapshots`, `engine_volumes` (the
Docker side), `host` (what `prepare` checks first), `locks`.
"""

from runtime.backends.docker.storage.docker_storage import DockerStorage, remove_files_now

__all__ = ["DockerStorage", "remove_files_now"]
