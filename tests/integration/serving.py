"""A real `theappapp-sandbox serve` (or `mcp`) process for the service tests, on a loopback port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import NETWORK

CLI = [sys.executable, "-m", "runtime.cli"]


def service_env(**extra: str) -> dict[str, str]:
    """This test session's installation and network (inherited), and no warm pool: a spare made for a task
    that a test then destroys only competes with the next test's creates."""
    return {**os.environ, "THEAPPAPP_NETWORK_NAME": NETWORK, "THEAPPAPP_POOL_ENABLED": "false", **extra}


def add_token(tokens: Path, name: str, *args: str) -> str:
    out = subprocess.run([*CLI, "token", "add", "--tokens", str(tokens), "--name", name, *args],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@dataclass
class Service:
    url: str
    process: subprocess.Popen[str]
    log: Path


@contextmanager
def serving(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Service]:
    """`serve --port 0 ARGS`, until its startup line names the port; stopped (SIGTERM) after."""
    log = tmp / f"serve-{time.monotonic_ns()}.log"
    with log.open("w") as err:
        process = subprocess.Popen([*CLI, "serve", "--port", "0", *args], stderr=err, stdout=subprocess.DEVNULL,
                                   text=True, env=env or service_env())
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.search(r"serving on (http://[\d.]+:\d+)", log.read_text())
            if found:
                yield Service(found.group(1), process, log)
                break
            if process.poll() is not None:
                raise AssertionError(f"serve exited {process.returncode}: {log.read_text()}")
            time.sleep(0.05)
        else:
            raise AssertionError(f"serve did not start: {log.read_text()}")
    finally:
        stop(process)


def stop(process: subprocess.Popen[str], timeout: float = 60) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def containers_of(client: object, task_ids: Sequence[str]) -> list[str]:
    """Names of this installation's containers for these tasks that still exist."""
    from runtime import labels

    found = []
    for task_id in task_ids:
        found += [c.name for c in client.containers.list(  # type: ignore[attr-defined]
            all=True, filters={"label": [f"{labels.TASK}={task_id}"]})]
    return found
