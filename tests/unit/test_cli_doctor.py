"""Doctor's judgements without Docker: runtimes, disk thresholds, image lines, network states."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import docker.errors
import pytest

from runtime import labels
from runtime.backends.docker.network import BRIDGE_NAME_OPTION, ICC_OPTION, bridge_interface_name
from runtime.config import RuntimeConfig
from runtime.ops import doctor

Usage = namedtuple("Usage", "total used free")
GiB = 1024**3
INFO = {"Runtimes": {"runc": {}, "io.containerd.runc.v2": {}}, "DefaultRuntime": "runc",
        "DockerRootDir": "/var/lib/docker"}


def config(**overrides: Any) -> RuntimeConfig:
    return RuntimeConfig.load(env={}, installation_id="unit-doctor", **overrides)


def test_default_runtime_passes_and_mentions_gvisor_as_optional() -> None:
    check = doctor._runtimes(INFO, config())
    assert check.status == "PASS" and "using runc" in check.detail and "runsc" in check.detail


@pytest.mark.parametrize(("version", "status"), [("20.10.24+dfsg1", "WARN"), ("20.10.27", "PASS"), ("24.0.7", "PASS")])
def test_an_engine_with_the_known_network_deadlock_is_a_warning(version: str, status: str) -> None:
    check = doctor._engine(version, {"OperatingSystem": "Debian", "CgroupVersion": "1"})
    assert check.status == status and version in check.detail
    assert ("46661" in check.detail) == (status == "WARN")


def test_configured_runtime_missing_fails_with_how_to_register_it() -> None:
    check = doctor._runtimes(INFO, config(runtime="runsc"))
    assert check.status == "FAIL" and "'runsc' is configured" in check.detail
    assert "daemon.json" in check.fix and "fix:" in check.render()


class FakeAPI:
    base_url = "http+docker://localhost"


class FakeClient:
    def __init__(self, networks: list[Any] | None = None, images: dict[str, dict[str, Any]] | None = None) -> None:
        self.api = FakeAPI()
        self._networks = networks or []
        self._images = images or {}
        self.networks = self
        self.images = self

    def list(self, names: list[str]) -> list[Any]:
        return [n for n in self._networks if names[0] in n.name]

    def get(self, ref: str) -> Any:
        if ref not in self._images:
            raise docker.errors.ImageNotFound(ref)
        return type("Image", (), {"attrs": self._images[ref]})()


@pytest.mark.parametrize(
    "free, status", [(1 * GiB, "FAIL"), (5 * GiB, "WARN"), (50 * GiB, "PASS")]
)
def test_disk_thresholds(free: int, status: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path: Usage(100 * GiB, 100 * GiB - free, free))
    check = doctor._disk(INFO, FakeClient())  # type: ignore[arg-type]
    assert check.status == status and "/var/lib/docker" in check.detail
    assert (check.fix != "") == (status != "PASS")


def test_remote_engine_disk_is_a_warning_not_a_guess() -> None:
    client = FakeClient()
    client.api.base_url = "https://engine.example:2376"  # type: ignore[misc]
    assert doctor._disk(INFO, client).status == "WARN"  # type: ignore[arg-type]


def test_image_lines_pass_warn_missing_and_warn_partial() -> None:
    from runtime.registry import get_registry

    registry = get_registry()
    images = {
        "theappapp-python:latest": {"Size": 600 * 1024**2, "Config": {"Labels": {}}},
        "theappapp-java:latest": {"Size": 800 * 1024**2,
                                  "Config": {"Labels": {labels.IMAGE_MISSING_OPTIONAL: "gradle"}}},
    }
    checks = {c.name: c for c in doctor._images(FakeClient(images=images), registry, config())}  # type: ignore[arg-type]
    assert checks["image python"].status == "PASS" and "600 MB" in checks["image python"].detail
    assert checks["image java"].status == "WARN" and "gradle" in checks["image java"].detail
    assert checks["image go"].status == "WARN" and checks["image go"].fix == "nox -s build -- go"
    assert set(checks) == {f"image {name}" for name in registry.languages}


class FakeNetwork:
    def __init__(self, name: str, options: dict[str, str], managed: bool = True) -> None:
        self.name = name
        self.attrs = {"Options": options, "Labels": {labels.MANAGED: "true"} if managed else {}}


def test_network_missing_is_a_warning_and_nothing_is_created() -> None:
    check = doctor._network(FakeClient(), config(network_name="theappapp-unit"))  # type: ignore[arg-type]
    assert check.status == "WARN" and "does not exist yet" in check.detail


def test_foreign_or_misconfigured_network_fails_without_touching_it() -> None:
    name = "theappapp-unit"
    foreign = FakeClient([FakeNetwork(name, {}, managed=False)])
    assert doctor._network(foreign, config(network_name=name)).status == "FAIL"  # type: ignore[arg-type]
    icc_on = FakeClient([FakeNetwork(name, {ICC_OPTION: "true", BRIDGE_NAME_OPTION: bridge_interface_name(name)})])
    check = doctor._network(icc_on, config(network_name=name))  # type: ignore[arg-type]
    assert check.status == "FAIL" and "icc off" in check.detail


def test_network_none_needs_no_policy() -> None:
    assert doctor._network(FakeClient(), config(network="none")).status == "PASS"  # type: ignore[arg-type]
