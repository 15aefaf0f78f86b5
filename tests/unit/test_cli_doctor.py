"""Doctor's judgements without an engine: registry, runtimes, image lines, and the Docker backend's
pure checks (engine version, disk thresholds). The network policy lines are tried against the real
engine in tests/integration/test_network_policy.py."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import namedtuple
from typing import Any

import pytest

from runtime import labels
from runtime.backends.base import EngineFacts, ImageRecord
from runtime.backends.docker import diagnose
from runtime.config import RuntimeConfig
from runtime.errors import EngineUnavailable, RegistryError
from runtime.ops import doctor
from runtime.registry import Registry, get_registry
from tests.unit.fake_backend import FakeBackend

Usage = namedtuple("Usage", "total used free")
GiB = 1024**3
FACTS = EngineFacts("Docker 24", "24.0.7", ("io.containerd.runc.v2", "runc"), "runc", frozenset())


def config(**overrides: Any) -> RuntimeConfig:
    return RuntimeConfig.load(env={}, installation_id="unit-doctor", **overrides)


def checks(backend: FakeBackend, loader: Any = None, **settings: Any) -> list[doctor.Check]:
    async def collect() -> list[doctor.Check]:
        return [c async for c in doctor.run_checks(config(**settings), loader, backend)]

    return asyncio.run(collect())


def test_default_runtime_passes_and_mentions_gvisor_and_crun_as_optional() -> None:
    check = doctor.runtimes(FACTS, config())
    assert check.status == "PASS" and "using runc" in check.detail and "runsc" in check.detail
    assert "crun not registered (scripts/enable-crun.sh)" in check.detail


def test_a_registered_crun_is_pointed_out_while_runc_is_used_and_not_once_in_use() -> None:
    facts = dataclasses.replace(FACTS, runtimes=("crun", "runc"))
    assert "THEAPPAPP_RUNTIME=crun" in doctor.runtimes(facts, config()).detail
    used = doctor.runtimes(facts, config(runtime="crun"))
    assert used.status == "PASS" and "using crun" in used.detail and "crun is registered" not in used.detail


@pytest.mark.parametrize(("version", "status"), [("20.10.24+dfsg1", "WARN"), ("20.10.27", "PASS"), ("24.0.7", "PASS")])
def test_an_engine_with_the_known_network_deadlock_is_a_warning(version: str, status: str) -> None:
    check = diagnose.engine_version(version, {"OperatingSystem": "Debian", "CgroupVersion": "1"})
    assert check.status == status and version in check.detail
    assert ("46661" in check.detail) == (status == "WARN")


def test_configured_runtime_missing_fails_with_how_to_register_it() -> None:
    check = doctor.runtimes(FACTS, config(runtime="runsc"))
    assert check.status == "FAIL" and "'runsc' is configured" in check.detail
    assert "daemon.json" in check.fix and "fix:" in check.render()


@pytest.mark.parametrize("free, status", [(1 * GiB, "FAIL"), (5 * GiB, "WARN"), (50 * GiB, "PASS")])
def test_disk_thresholds(free: int, status: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnose.shutil, "disk_usage", lambda path: Usage(100 * GiB, 100 * GiB - free, free))
    check = diagnose.disk("/var/lib/docker", local=True)
    assert check.status == status and "/var/lib/docker" in check.detail
    assert (check.fix != "") == (status != "PASS")


def test_remote_engine_disk_is_a_warning_not_a_guess() -> None:
    assert diagnose.disk("/var/lib/docker", local=False).status == "WARN"


def test_image_lines_pass_warn_missing_and_warn_partial() -> None:
    registry = get_registry()
    backend = FakeBackend(images=())
    backend.images = {
        "theappapp-python:latest": ImageRecord("theappapp-python:latest", "sha256:p", 600 * 1024**2),
        "theappapp-java:latest": ImageRecord("theappapp-java:latest", "sha256:j", 800 * 1024**2,
                                             {labels.IMAGE_MISSING_OPTIONAL: "gradle"}),
    }
    found = {c.name: c for c in checks(backend)}
    assert found["image python"].status == "PASS" and "600 MiB" in found["image python"].detail
    assert found["image java"].status == "WARN" and "gradle" in found["image java"].detail
    assert found["image go"].status == "WARN" and found["image go"].fix == "nox -s build -- go"
    assert {n for n in found if n.startswith("image ")} == {f"image {name}" for name in
                                                           (*registry.languages, *registry.services)}
    proxy = found["image egress-proxy"]
    assert proxy.status == "WARN" and "allowlist" in proxy.detail and proxy.fix == "nox -s build -- egress-proxy"


def test_every_line_comes_in_order_registry_engine_images_runtime() -> None:
    names = [c.name for c in checks(FakeBackend())]
    assert names[:2] == ["registry", "engine"] and names[-1] == "OCI runtime"


def test_an_unreachable_engine_fails_once_and_skips_the_rest() -> None:
    backend = FakeBackend()

    async def down() -> EngineFacts:
        raise EngineUnavailable("no engine here")

    backend.probe = down  # type: ignore[method-assign]
    found = checks(backend)
    assert [(c.status, c.name) for c in found] == [("PASS", "registry"), ("FAIL", "engine"),
                                                   ("FAIL", "remaining checks")]
    assert "start-docker-engine.sh" in found[1].fix


def test_a_broken_registry_fails_and_the_engine_is_still_checked() -> None:
    def broken() -> Registry:
        raise RegistryError("languages.yaml: languages.x.run: field required")

    found = checks(FakeBackend(), broken)
    assert found[0].status == "FAIL" and "field required" in found[0].detail
    assert found[1].name == "engine" and not any(c.name.startswith("image ") for c in found)
