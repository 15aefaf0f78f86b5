"""RuntimeConfig: arguments over THEAPPAPP_* environment over defaults; the installation id."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.config import PoolSettings, RuntimeConfig, flat_names, installation_id
from runtime.errors import ConfigError, SandboxError

ENV = {"THEAPPAPP_INSTALLATION_ID": "inst-1"}


def test_defaults_are_the_hardened_ones() -> None:
    config = RuntimeConfig.load(env=ENV)
    assert (config.engine.image_tag, config.network.mode, config.engine.runtime) == ("latest", "sandbox", None)
    assert config.limits.max_output_bytes == 1 << 20
    sec = config.security
    assert sec.user == "1000:1000" and sec.cap_drop_all and sec.no_new_privileges
    assert sec.read_only_root and sec.init and config.installation_id == "inst-1"
    assert config.monitor.enabled and config.pool.enabled


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
    assert config.network.mode == "none" and config.security.read_only_root is False
    assert config.limits.max_output_bytes == 4096 and config.limits.default_timeout == 9.0
    assert config.limits.shell == ("/bin/sh", "-c") and config.engine.runtime == "runsc"
    assert config.engine.docker_host == "unix:///tmp/x.sock"


def test_settings_are_grouped_by_concern_and_keep_their_flat_names() -> None:
    config = RuntimeConfig.load(env=ENV | {"THEAPPAPP_POOL_MAX_SPARES": "3", "THEAPPAPP_NETWORK_NAME": "n1",
                                           "THEAPPAPP_MONITOR_DB": "/tmp/m.db"})
    assert config.pool.max_spares == 3 and config.network.name == "n1" and config.monitor.db == "/tmp/m.db"
    names = flat_names()
    assert names["pool_enabled"] == ("pool", "enabled") and names["network"] == ("network", "mode")
    assert names["user"] == ("security", "user") and names["default_timeout"] == ("limits", "default_timeout")
    assert len(names) == len(set(names))  # one flat name per setting, no two settings share one
    changed = config.replace(pool_enabled=False, user="1001:1001", installation_id="other")
    assert (changed.pool.enabled, changed.security.user, changed.installation_id) == (False, "1001:1001", "other")
    assert changed.pool.max_spares == 3 and config.pool.enabled  # the rest kept; the original untouched


def test_a_whole_part_can_be_given_and_flat_names_still_win_over_it() -> None:
    config = RuntimeConfig.load(env=ENV, pool=PoolSettings(max_spares=2, enabled=False), pool_enabled=True)
    assert config.pool.max_spares == 2 and config.pool.enabled is True
    with pytest.raises(SandboxError, match="PoolSettings"):
        RuntimeConfig.load(env=ENV, pool={"enabled": False})


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigError):
        RuntimeConfig.load(env=ENV, user="sandbox")
    with pytest.raises(ConfigError):
        RuntimeConfig.load(env=ENV, workspace="relative")
    with pytest.raises(ConfigError, match="pool caps"):
        RuntimeConfig.load(env=ENV, pool_max_making=-1)


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


def test_a_misspelt_setting_variable_is_named_with_the_setting_it_nearly_is(caplog: pytest.LogCaptureFixture) -> None:
    env = {**ENV, "THEAPPAPP_POOL_ENABLD": "false", "THEAPPAPP_TOKEN": "not a setting, not near one"}
    with caplog.at_level("WARNING", logger="runtime.config"):
        config = RuntimeConfig.load(env=env)
        RuntimeConfig.load(env=env)  # said once per name
    assert config.pool.enabled  # (ignored, as before: only said)
    said = [r.getMessage() for r in caplog.records]
    assert said == ["THEAPPAPP_POOL_ENABLD is not a setting and is ignored: did you mean THEAPPAPP_POOL_ENABLED?"]
