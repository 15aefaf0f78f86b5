"""The seam between the sandbox core and an engine: what the core needs, as one protocol.

The core (`runtime.sandbox`, `runtime.ops`) speaks only this: it hands a backend plain,
engine-neutral data (`ContainerSpec`, `ExecRequest`, relative paths) and gets plain data
back. Turning a spec into an engine's own settings (Docker's HostConfig, a Pod spec) is the
backend's job, and so is translating the engine's errors into the `SandboxError` tree:
nothing engine-specific ever crosses this line.

Docker is the backend today (`runtime.backends.docker`); tests use an in-memory fake
(`tests/unit/fake_backend.py`); Kubernetes is planned (DESIGN.md). Contract notes:

- `create` creates *and starts*; it leaves nothing behind when either step fails, and
  raises `NameTaken` when the name is in use (the core reads the holder and explains).
- `remove` is forced and idempotent: a container already gone is not an error. Volumes stay.
- `relabel` changes labels after creation (a new manager taking over a dead one's task).
- `rename` is the warm pool's hand-over. A backend whose objects can be relabelled
  (Kubernetes) may relabel instead; the name is what the core relies on.
- `exec` streams output chunks and reports the result through `finish` exactly once,
  whatever happens (timeout, cancellation, the container dying).
- Every method raises `EngineUnavailable` when the engine cannot be reached in time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal, Protocol

from runtime.backends.egress import EgressGateway
from runtime.backends.storage import VolumeStorage
from runtime.errors import EngineError
from runtime.sandbox.events import ResourceUsage
from runtime.sandbox.execution import ExecRequest, ExecResult, OutputChunk
from runtime.sandbox.files import FileEntry
from runtime.sandbox.spec import ContainerSpec


class NameTaken(EngineError):
    """`create` or `rename` found the name in use by another container."""


class ResourceInUse(EngineError):
    """A volume (or network) cannot be removed while a container uses it."""


@dataclass(frozen=True)
class EngineFacts:
    """What `probe` learns about the engine."""

    description: str  # e.g. "Docker 20.10.24 (Debian GNU/Linux 12, cgroup v2)"
    version: str
    runtimes: tuple[str, ...]  # OCI runtimes the engine can use
    default_runtime: str
    images: frozenset[str]  # image references ("repo:tag") present on the engine


@dataclass(frozen=True)
class ImageRecord:
    reference: str
    id: str
    size: int
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerRecord:
    """One entry of `list_containers`."""

    id: str
    name: str
    state: str  # "running", "exited", "dead", "created", "removing", ...
    labels: Mapping[str, str]
    volumes: tuple[str, ...] = ()  # names of the volumes it mounts
    created: float | None = None  # the engine's creation time, unix seconds
    networks: tuple[str, ...] = ()  # names of the networks it is attached to


@dataclass(frozen=True)
class ContainerState:
    """What `inspect` says about one container."""

    id: str
    name: str
    running: bool
    status: str
    exit_code: int | None
    oom_killed: bool
    image_id: str
    labels: Mapping[str, str]
    network: str  # the network it is attached to; "none" for none


@dataclass(frozen=True)
class VolumeRecord:
    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class NetworkPolicyStatus:
    """How far the sandbox network's isolation could be set up (or, with install off, checked)."""

    network_name: str
    host_blocked: bool
    metadata_blocked: bool
    icc_disabled: bool
    problems: tuple[str, ...]  # plain sentences: what could not be done and what to do


@dataclass(frozen=True)
class Diagnosis:
    """One line of `theappapp-sandbox doctor`."""

    status: Literal["PASS", "WARN", "FAIL"]
    name: str
    detail: str
    fix: str = ""

    def render(self) -> str:
        line = f"{self.status}  {self.name}: {self.detail}"
        return line + (f"\n      fix: {self.fix}" if self.fix and self.status != "PASS" else "")


LabelFilter = Mapping[str, str | None]  # label -> required value, or None: the label is present


class Backend(Protocol):
    """An engine the sandbox core can run on."""

    @property
    def egress(self) -> EgressGateway:
        """Allowlisted sandboxes: their proxy, policies and audit (runtime/backends/egress.py)."""
        ...

    @property
    def storage(self) -> VolumeStorage:
        """Quota volumes and their snapshots (runtime/backends/storage.py)."""
        ...

    # -- the engine --------------------------------------------------------------------------

    async def probe(self) -> EngineFacts:
        """Connect (again, after `close`) and learn what the engine offers."""
        ...

    async def image(self, reference: str) -> ImageRecord | None:
        """The image a reference names now, or None when the engine has none."""
        ...

    async def ensure_network(self, name: str, *, install_firewall: bool) -> NetworkPolicyStatus:
        """Create the isolated sandbox network if needed, and install (or only check) its policy."""
        ...

    async def diagnose(self, network_name: str, network_mode: str) -> list[Diagnosis]:
        """The engine's own health lines for `doctor` (version, network policy, disk); only looks."""
        ...

    def load(self) -> int:
        """Container creates and starts of this process in flight: how busy the engine is with new sandboxes."""
        ...

    async def settle(self) -> None:
        """Wait for the backend's own background work (Docker: network namespace holders being made)."""
        ...

    def close(self) -> None:
        """Release connections and threads; `probe` opens them again."""
        ...

    # -- containers ----------------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str:
        """Create and start a container; its id. `NameTaken`, `ImageMissing`, or nothing left behind."""
        ...

    async def rename(self, container_id: str, name: str) -> None:
        """Give a running container a new name (the pool's hand-over); `NameTaken` if it is in use."""
        ...

    def known_running(self, container_id: str) -> bool:
        """True when the backend knows, without asking the engine, that the container runs (an open
        channel to its agent); False means only: ask (`inspect`)."""
        ...

    async def inspect(self, container: str) -> ContainerState | None:
        """A container by id or name, or None when there is none."""
        ...

    async def relabel(self, container_id: str, expect: Mapping[str, str], new: Mapping[str, str]) -> bool:
        """Set labels `new` if the container's labels hold every value in `expect` (compare-and-set).

        False when they do not (someone else changed them first) or the container is gone.
        `inspect` and `list_containers` report labels with every change applied.
        """
        ...

    async def remove(self, container_id: str) -> None:
        """Force-remove a container, keeping its volumes; a container already gone is fine."""
        ...

    def remove_soon(self, container_id: str) -> Future[None]:
        """Start `remove` off the caller's path (safe from a cancelled task); the future says when done."""
        ...

    async def list_containers(self, labels: LabelFilter) -> list[ContainerRecord]:
        """Every container (running or not) carrying these labels."""
        ...

    async def lease(self, container_id: str, seconds: float, still: Callable[[], bool] | None = None) -> bool:
        """Have the container end itself unless renewed within `seconds` (0: never). False when it cannot
        (no agent): then only the manager's own removal or cleanup ends it. `still`, if given, is asked at
        the moment the lease would be sent, with nothing suspending between that and the send taking its
        turn: False drops it (a renewal that must not land after a later lease, such as a hand-over's 0)."""
        ...

    def remove_now(self, labels: LabelFilter, name_prefix: str) -> int:
        """Blocking, for interpreter exit (no event loop runs any more): force-remove every container
        carrying these labels whose name starts with `name_prefix`; how many went."""
        ...

    def usage(self, container_id: str) -> ResourceUsage:
        """CPU, peak memory and peak pids so far, as far as they can be read (fields None otherwise)."""
        ...

    # -- commands and files ----------------------------------------------------------------------

    def exec(
        self, container_id: str, request: ExecRequest, finish: Callable[[ExecResult], None]
    ) -> AsyncIterator[OutputChunk]:
        """Run a command; output chunks as they come, then `finish(result)` exactly once."""
        ...

    async def write_files(self, container_id: str, workspace: str, files: Mapping[str, bytes]) -> None:
        """Write files at validated relative paths under `workspace`, owned by the sandbox user.

        `InvalidPath` when an existing symlink would lead a path out of the workspace.
        """
        ...

    async def read_file(self, container_id: str, workspace: str, path: str, limit: int) -> bytes:
        """The bytes of one regular file at a validated relative path: `FileMissing`, `InvalidPath`."""
        ...

    async def list_files(self, container_id: str, workspace: str, path: str) -> list[FileEntry]:
        """The entries of a directory at a validated relative path ("" for the workspace itself)."""
        ...

    # -- volumes -------------------------------------------------------------------------------

    async def list_volumes(self, labels: LabelFilter) -> list[VolumeRecord]:
        ...

    async def inspect_volume(self, name: str) -> VolumeRecord | None:
        ...

    async def remove_volume(self, name: str) -> bool:
        """False if there was none; `ResourceInUse` while a container mounts it."""
        ...
