"""The container settings: every hardened default present in Docker's HostConfig, each switchable by config."""

from __future__ import annotations

from typing import Any

from runtime.backends.docker.hostconfig import create_kwargs, host_config
from runtime.config import RuntimeConfig
from runtime.registry import Resources, get_registry
from runtime.sandbox.naming import cache_volume_name
from runtime.sandbox.owner import Owner
from runtime.sandbox.spec import KEEPER_COMMAND, ContainerSpec, build_spec, project_cache

RES = Resources(memory="512m", cpus=1.5, pids=128, tmp_size="64m", home_size="32m")


def _spec(language: str = "python", network: str = "theappapp-sandbox", **config: Any) -> ContainerSpec:
    settings = RuntimeConfig.load(env={"THEAPPAPP_INSTALLATION_ID": "x"}, **config)
    registry = get_registry()
    spec = build_spec(settings, registry, Owner(installation="x"), name="theappapp-p-t", project_id="p",
                      language=registry.resolve(language), labels={"k": "v"}, network=network)
    return ContainerSpec(**{**spec.__dict__, "resources": RES})


def test_every_hardened_default_is_in_the_host_config() -> None:
    host = host_config(_spec())
    assert host["cap_drop"] == ["ALL"] and host["security_opt"] == ["no-new-privileges:true"]
    assert host["read_only"] is True and host["privileged"] is False and host["init"] is True
    assert host["pids_limit"] == 128 and host["mem_limit"] == host["memswap_limit"] == "512m"
    assert host["nano_cpus"] == 1_500_000_000 and host["ipc_mode"] == "private"
    assert host["network_mode"] == "theappapp-sandbox"
    (mount,) = host["mounts"]  # the project volume is the only mount besides the tmpfs ones
    assert (mount["Type"], mount["Source"], mount["Target"], mount["ReadOnly"]) == (
        "volume", "theappapp-project-p", "/workspace", False
    )
    assert host["tmpfs"]["/tmp"].endswith("size=64m,mode=1777")
    assert "size=32m,uid=1000,gid=1000" in host["tmpfs"]["/home/sandbox"]
    assert host["log_config"] == {"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}}
    assert "runtime" not in host
    assert not {"devices", "pid_mode", "userns_mode", "volumes_from", "cap_add"} & set(host)
    assert "binds" not in host and "docker.sock" not in str(host)


def test_each_default_can_be_switched_off_by_config() -> None:
    kwargs = host_config(_spec(cap_drop_all=False, no_new_privileges=False, read_only_root=False, init=False,
                               runtime="runsc"))
    assert kwargs["cap_drop"] is None and kwargs["security_opt"] is None
    assert kwargs["read_only"] is False and kwargs["init"] is False and kwargs["runtime"] == "runsc"


def test_container_runs_the_keeper_as_the_sandbox_user_in_the_workspace() -> None:
    kwargs = create_kwargs(_spec(), {"hc": 1})
    assert kwargs["command"] == list(KEEPER_COMMAND) and kwargs["user"] == "1000:1000"
    assert kwargs["working_dir"] == "/workspace" and kwargs["host_config"] == {"hc": 1}
    assert kwargs["labels"] == {"k": "v"} and kwargs["tty"] is False and kwargs["stdin_open"] is False


def test_the_volume_mount_carries_the_labels_the_engine_gives_a_volume_it_creates() -> None:
    (mount,) = host_config(_spec(network="none"))["mounts"]
    values = mount["VolumeOptions"]["Labels"]
    assert values["theappapp-managed"] == "true" and values["org.theappapp.project"] == "p"
    assert values["org.theappapp.installation"] == "x"


def test_a_language_with_a_cache_gets_its_per_project_cache_volume_mounted() -> None:
    owner = Owner(installation="x")
    go, python = get_registry().languages["go"], get_registry().languages["python"]
    assert go.cache is not None and project_cache(owner, "p", python) is None
    cache = project_cache(owner, "p", go)
    assert cache is not None and cache.name == "theappapp-cache.go.p" and cache.target == go.cache.path
    _workspace, mounted = host_config(_spec("go"))["mounts"]
    assert (mounted["Source"], mounted["Target"], mounted["Type"]) == ("theappapp-cache.go.p", "/cache", "volume")
    assert mounted["VolumeOptions"]["Labels"]["org.theappapp.cache"] == "go"
    assert mounted["VolumeOptions"]["Labels"]["org.theappapp.project"] == "p"


def test_cache_volume_names_of_different_projects_and_languages_never_meet() -> None:
    # language names have no '.', so "go" + "x.p" and a language "go.x" + "p" cannot both exist
    assert cache_volume_name("x-p", "go") != cache_volume_name("p", "go-x")
    assert cache_volume_name("p", "go") == "theappapp-cache.go.p"
