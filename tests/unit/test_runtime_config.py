"""RuntimeConfig: arguments over THEAPPAPP_* environment over defaults; the installation id."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.config import RuntimeConfig, installation_id
from runtime.errors import SandboxError

ENV = {"THEAPPAPP_INSTALLATION_ID": "inst-1"}


def test_defaults_are_the_hardened_ones() -> None:
    config = RuntimeConfig.load(env=ENV)
    assert (config.image_tag, config.network, config.runtime) == ("latest", "sandbox", None)
    assert config.max_output_bytes == 1 << 20
    assert config.user == "1000:1000" and config.cap_drop_all and config.no_new_privileges
    assert config.read_only_root and config.init and config.installation_id == "inst-1"


def test_environment_is_parsed_by_field_type_and_arguments_win() -> None:
    env = ENV | {
        "THEAPPAPP_NETWORK": "none",
        "THEAPPAPP_READ_ONLY_ROOT": "false",
        "THEAPPAPP_MAX_OUTPUT_BYTES": "4096",
        "THEAPPAPP_DEFAULT_TIMEOUT": "2.5",
        "THEAPPAPP_SHELL": "/bin/sh -c",
        "THEAPPAPP_RUNTIME": "runsc",
        "DOCKER_HOST": "unix:///tmp/x.sock",
    }
    config = RuntimeConfig.load(env=env, default_timeout=9.0)
    assert config.network == "none" and config.read_only_root is False
    assert config.max_output_bytes == 4096 and config.default_timeout == 9.0
    assert config.shell == ("/bin/sh", "-c") and config.runtime == "runsc"
    assert config.docker_host == "unix:///tmp/x.sock"


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"THEAPPAPP_INIT": "perhaps"}, "THEAPPAPP_INIT"),
        ({"THEAPPAPP_MAX_OUTPUT_BYTES": "lots"}, "THEAPPAPP_MAX_OUTPUT_BYTES"),
        ({"THEAPPAPP_NETWORK": "host"}, "network"),
    ],
)
def test_bad_settings_are_refused_by_name(env: dict[str, str], match: str) -> None:
    with pytest.raises(SandboxError, match=match):
        RuntimeConfig.load(env=ENV | env)


def test_unknown_arguments_are_refused() -> None:
    with pytest.raises(SandboxError, match="priviledged"):
        RuntimeConfig.load(env=ENV, priviledged=True)


def test_installation_id_is_created_once_and_then_reused(tmp_path: Path) -> None:
    file = tmp_path / "cfg" / "installation-id"
    first = installation_id(env={}, path=file)
    assert file.read_text().strip() == first and len(first) == 16
    assert installation_id(env={}, path=file) == first
    assert installation_id(env={"THEAPPAPP_INSTALLATION_ID": "explicit"}, path=file) == "explicit"


def test_unwritable_installation_file_says_what_to_set(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SandboxError, match="THEAPPAPP_INSTALLATION_ID"):
        installation_id(env={}, path=blocker / "sub" / "installation-id")
