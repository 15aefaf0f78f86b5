"""The HTTP API's bodies. Field names are the library's: a JSON answer reads like the dataclass it comes from."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from runtime.sandbox.execution import ExecResult
from runtime.sandbox.files import FileEntry
from runtime.sandbox.runcode import RunResult
from runtime.sandbox.tasks import ContainerInfo
from runtime.validation.findings import Finding


class CreateTask(BaseModel):
    task_id: str = Field(description="the caller's id for the task: 1-63 of letters, digits, '_', '.', '-'")
    project_id: str = Field(description="the project whose persistent volume is mounted at /workspace")
    language: str = Field(description="a registry language or alias: python, node, java, go, ruby, php, …")
    network: Literal["sandbox", "none"] | None = Field(None, description="sandbox (filtered egress) or none")


class Exec(BaseModel):
    command: str = Field(description="run through the shell in /workspace as the sandbox user")
    timeout: float | None = Field(None, gt=0, description="seconds; the command's process tree is killed after")
    stdin: str | None = None
    env: dict[str, str] | None = None
    workdir: str | None = Field(None, description="under /workspace")


class RunInTask(BaseModel):
    code: str
    filename: str | None = Field(None, description="under /workspace; default: the language's main file name")
    timeout: float | None = Field(None, gt=0)
    strict: bool = Field(False, description="refuse (422 ValidationFailed) code with error-severity findings")


class Run(BaseModel):
    language: str
    code: str
    project_id: str | None = Field(None, description="run in this project's volume; default: a throwaway one")
    timeout: float | None = Field(None, gt=0)


class TaskOut(BaseModel):
    task_id: str
    project_id: str
    language: str
    container_id: str
    container_name: str
    volume_name: str
    image: str
    network: str
    created_at: float

    @classmethod
    def of(cls, info: ContainerInfo) -> TaskOut:
        return cls(**{name: getattr(info, name) for name in cls.model_fields})


class ExecOut(BaseModel):
    exit_code: int | None
    stdout: str
    stderr: str
    duration: float
    timed_out: bool
    oom_killed: bool
    truncated: bool

    @classmethod
    def of(cls, result: ExecResult) -> ExecOut:
        return cls(**{name: getattr(result, name) for name in cls.model_fields})


class FindingOut(BaseModel):
    rule_id: str
    severity: str
    line: int
    column: int
    message: str

    @classmethod
    def of(cls, finding: Finding) -> FindingOut:
        return cls(**{name: getattr(finding, name) for name in cls.model_fields})


class RunOut(ExecOut):
    findings: list[FindingOut]
    filename: str
    command: str

    @classmethod
    def of_run(cls, run: RunResult) -> RunOut:
        return cls(**ExecOut.of(run.exec).model_dump(), findings=[FindingOut.of(f) for f in run.findings],
                   filename=run.filename, command=run.command)


class FileOut(BaseModel):
    name: str
    type: Literal["file", "dir", "link", "other"]
    size: int
    mtime: float

    @classmethod
    def of(cls, entry: FileEntry) -> FileOut:
        return cls(name=entry.name, type=entry.type, size=entry.size, mtime=entry.mtime)


class Written(BaseModel):
    path: str
    size: int


class ErrorOut(BaseModel):
    error: str = Field(description="the runtime.errors class name")
    detail: str


class OpenSession(BaseModel):
    kind: str = Field("shell", description="shell, or the task language's interpreter: python, node, typescript, "
                      "ruby, java (as languages.yaml declares for it)")


class SessionOut(BaseModel):
    session_id: str
    task_id: str
    kind: str


class SessionRun(BaseModel):
    code: str = Field(description="a shell command, or a cell of code for an interpreter session")
    timeout: float | None = Field(None, gt=0)


class ShellOut(BaseModel):
    stdout: str
    stderr: str
    exit_code: int | None
    duration: float
    still_running: bool
    timed_out: bool
    truncated: bool


class RichOut(BaseModel):
    mime: str
    data: str


class CellErrorOut(BaseModel):
    name: str
    message: str
    traceback: list[str]


class CellOut(BaseModel):
    stdout: str
    stderr: str
    value: str | None
    outputs: list[RichOut]
    error: CellErrorOut | None
    duration: float
    timed_out: bool
    truncated: bool


class StartProcess(BaseModel):
    command: str
    name: str | None = None
    env: dict[str, str] | None = None
    workdir: str | None = None


class ProcessOut(BaseModel):
    pid: int
    name: str
    command: str
    started_at: float
    running: bool
    exit_code: int | None
    dropped_bytes: int


class ProcessOutput(BaseModel):
    stdout: str
    stderr: str
