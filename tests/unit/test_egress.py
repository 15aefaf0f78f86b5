"""Egress by allowlist without an engine: the proxy's ACL helper, its audit log, host patterns, the
policy directory, the egress firewall's order, and the manager's bookkeeping on the in-memory backend."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from builder.render import TEMPLATES
from runtime.backends.docker import firewall
from runtime.backends.docker.egress.audit import parse_line
from runtime.backends.docker.egress.network import Addresses, intra_bridge_rules
from runtime.backends.docker.egress.policies import PolicyDirectory
from runtime.backends.egress import EgressPolicy, EgressRecord
from runtime.config import EgressSettings, RuntimeConfig
from runtime.errors import ConfigError, InvalidRequest, NetworkPolicyError
from runtime.sandbox.egress import normal_hosts, registry_hosts
from runtime.sandbox.events import EgressEvent, ExecEvent, LifecycleEvent
from runtime.sandbox.execution import ExecRequest
from runtime.sandbox.manager import ContainerManager

from .fake_backend import FakeBackend, FakeContainer


def _helper() -> ModuleType:
    """The ACL helper as the proxy image runs it (templates/services/egress-proxy/acl_helper.py)."""
    spec = importlib.util.spec_from_file_location("acl_helper", TEMPLATES / "services/egress-proxy/acl_helper.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HELPER = _helper()


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    hosts = ["api.example.com", "*.example.org", "203.0.113.9"]
    policy = {"task": "t1", "project": "p1", "container": "c1", "hosts": hosts}
    (tmp_path / "172.31.254.7").write_text(json.dumps(policy))
    (tmp_path / "172.31.254.8").write_text("not json")
    return tmp_path


@pytest.mark.parametrize("host, allowed", [
    ("api.example.com", True), ("API.Example.com.", True), ("example.com", False), ("x.api.example.com", False),
    ("a.example.org", True), ("a.b.example.org", True), ("example.org", False), ("badexample.org", False),
    ("203.0.113.9", True), ("203.0.113.10", False), ("[::1]", False),
])
def test_the_helper_allows_exact_names_wildcard_subdomains_and_literal_addresses(
    policies: Path, host: str, allowed: bool
) -> None:
    answer = HELPER.decide("request", ["172.31.254.7", host], str(policies))
    assert answer.startswith("OK tag=p1/t1") is allowed, answer
    if not allowed:
        assert answer.startswith("ERR tag=p1/t1 message=") and "not in the egress allowlist of task t1" in answer


def test_the_helper_refuses_a_tls_name_other_than_the_connect_host(policies: Path) -> None:
    assert HELPER.decide("tls", ["172.31.254.7", "api.example.com", "api.example.com"], str(policies)).startswith("OK")
    fronted = HELPER.decide("tls", ["172.31.254.7", "api.example.com", "evil.example.net"], str(policies))
    assert fronted.startswith("ERR") and "does not match the CONNECT host api.example.com" in fronted
    assert HELPER.decide("tls", ["172.31.254.7", "api.example.com", "-"], str(policies)).startswith("ERR")
    # Without SNI only a listed literal address passes (clients send none for an address).
    assert HELPER.decide("tls", ["172.31.254.7", "203.0.113.9", "-"], str(policies)).startswith("OK")


def test_the_helper_refuses_addresses_without_a_readable_policy(policies: Path) -> None:
    assert 'message="no egress policy for client 172.31.254.9"' in HELPER.decide(
        "request", ["172.31.254.9", "api.example.com"], str(policies))
    assert "unreadable egress policy" in HELPER.decide("request", ["172.31.254.8", "api.example.com"], str(policies))
    assert "bad client address" in HELPER.decide("request", ["../etc", "api.example.com"], str(policies))


def test_the_helper_quotes_what_it_answers() -> None:
    assert HELPER.quoted('a "b"\\c\nd') == '"a \\"b\\"\\\\c d"'


def test_a_policy_file_names_task_project_and_hosts(tmp_path: Path) -> None:
    directory = PolicyDirectory("net", tmp_path)
    assert directory.prepare(("allowed.test=10.0.0.5", "Other.test=10.0.0.6")) is True
    assert (tmp_path / "net/hosts").read_text() == "10.0.0.5 allowed.test\n10.0.0.6 Other.test\n"
    assert (tmp_path / "net/hosts.names").read_text() == "allowed.test\nother.test\n"
    assert directory.prepare(("allowed.test=10.0.0.5", "Other.test=10.0.0.6")) is False  # unchanged: no reload
    directory.write("172.31.254.7", "c1", EgressPolicy("t1", "p1", ("a.test",)))
    assert HELPER.decide("request", ["172.31.254.7", "a.test"], str(directory.clients)).startswith("OK tag=p1/t1")
    # The address went to another container meanwhile: removing the old one's policy leaves the new one's.
    directory.write("172.31.254.7", "c2", EgressPolicy("t2", "p1", ("b.test",)))
    assert directory.remove("c1") is False and directory.addresses() == {"172.31.254.7": "c2"}
    assert directory.remove("c2", "172.31.254.7") is True and directory.addresses() == {}


def test_no_mapped_names_still_gives_squid_a_list(tmp_path: Path) -> None:
    PolicyDirectory("net", tmp_path).prepare(())
    assert (tmp_path / "net/hosts.names").read_text() == ".invalid\n"


def test_the_audit_reads_connections_and_drops_the_peeks_own_line() -> None:
    tunnel = parse_line('1765000000.123 client=172.31.254.7 tag=p1/t1 method=CONNECT host=pypi.org port=443 '
                        'sni=pypi.org verdict=TCP_TUNNEL/200 err=- bump=splice in=719 out=2200 '
                        'reason="allowed: pypi.org"')
    assert tunnel == EgressRecord(1765000000.123, "t1", "p1", "172.31.254.7", "CONNECT", "pypi.org", 443, "allowed",
                                  200, 719, 2200, "allowed: pypi.org")
    assert parse_line('1765000000.1 client=172.31.254.7 tag=p1/t1 method=CONNECT host=pypi.org port=443 sni=pypi.org '
                      'verdict=NONE_NONE/200 err=- bump=splice in=0 out=0 reason="allowed: pypi.org"') is None
    fronted = parse_line('1765000000.2 client=172.31.254.7 tag=p1/t1 method=CONNECT host=a.test port=443 sni=b.test '
                         'verdict=NONE_NONE/200 err=- bump=terminate in=0 out=0 '
                         'reason="TLS SNI b.test does not match the CONNECT host a.test"')
    assert fronted is not None and fronted.verdict == "denied" and "does not match" in fronted.reason
    refused = parse_line('1765000000.3 client=172.31.254.9 tag=- method=GET host=evil.test port=80 sni=- '
                         'verdict=TCP_DENIED/403 err=ERR_EGRESS_DENIED bump=- in=100 out=850 '
                         'reason="no egress policy for client 172.31.254.9"')
    assert refused is not None and refused.verdict == "denied" and refused.task_id is None and refused.status == 403
    private = parse_line('1765000000.4 client=172.31.254.7 tag=p1/t1 method=GET host=10.0.0.1 port=80 sni=- '
                         'verdict=TCP_DENIED/403 err=ERR_EGRESS_PRIVATE bump=- in=1 out=2 reason="allowed: 10.0.0.1"')
    assert private is not None and private.verdict == "denied"  # the list let it pass, the private rule did not
    assert parse_line("2026/12/07 01:33:19| Starting Squid Cache version 5.7") is None


@pytest.mark.parametrize("hosts, expected", [
    (["API.example.com.", "api.example.com", "*.Example.org", "203.0.113.9", "registries"],
     ("api.example.com", "*.example.org", "203.0.113.9", "registries")),
    ([], ()),
])
def test_host_patterns_are_checked_and_lower_cased(hosts: list[str], expected: tuple[str, ...]) -> None:
    assert normal_hosts(hosts) == expected


@pytest.mark.parametrize("bad", ["*.com", "*", "http://a.example.com", "a b.com", "-a.com", "a..com", "", "a/b"])
def test_host_patterns_that_are_not_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid egress host"):
        normal_hosts([bad])


def test_a_single_string_is_not_taken_for_a_list_of_characters() -> None:
    with pytest.raises(InvalidRequest, match="list"):
        normal_hosts("pypi.org")


def test_package_index_hosts_come_from_what_the_tools_printed() -> None:
    printed = "\n".join([
        "http://deb.debian.org/debian", "http://security.debian.org/debian-security",  # apt
        "https://pypi.org/simple", "files.pythonhosted.org",  # pip
        "https://registry.npmjs.org/",  # npm
        "*** CURRENT SOURCES ***", "", "https://rubygems.org/",  # gem
        '{"packagist.org":{"type":"composer","url":"https://repo.packagist.org"}}',  # composer
        "https://proxy.golang.org,direct", "sum.golang.org", "off",  # go
    ])
    assert registry_hosts(printed) == (
        "deb.debian.org", "security.debian.org", "pypi.org", "files.pythonhosted.org", "registry.npmjs.org",
        "rubygems.org", "repo.packagist.org", "proxy.golang.org", "sum.golang.org",
    )


def test_the_egress_rules_keep_the_proxy_open_and_everything_else_between_sandboxes_shut() -> None:
    established, to_proxy, drop = intra_bridge_rules("tapp-0123456789", "172.31.252.2")
    assert established.target == to_proxy.target == "RETURN" and drop.target == "DROP"
    assert "172.31.252.2" in to_proxy.match and "3128" in to_proxy.match
    assert all(rule.chain == firewall.DOCKER_USER for rule in (established, to_proxy, drop))


def test_the_proxy_sits_below_the_addresses_sandboxes_get() -> None:
    addresses = Addresses.of(EgressSettings(subnet="172.31.252.0/22"))
    assert (addresses.gateway, addresses.proxy, addresses.sandboxes) == ("172.31.252.1", "172.31.252.2",
                                                                         "172.31.254.0/23")
    assert addresses.proxy_url == EgressSettings(subnet="172.31.252.0/22").proxy_url == "http://172.31.252.2:3128"


@pytest.mark.parametrize("settings", [{"subnet": "fd00::/64"}, {"subnet": "10.0.0.0/28"}, {"subnet": "nope"},
                                      {"hosts": ("no-address",)}, {"hosts": ("=10.0.0.1",)}])
def test_bad_egress_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        EgressSettings(**settings)


# -- the manager, on the in-memory backend ---------------------------------------------------------


class Seen:
    def __init__(self) -> None:
        self.egress: list[EgressEvent] = []

    def on_exec(self, event: ExecEvent) -> None: ...

    def on_lifecycle(self, event: LifecycleEvent) -> None: ...

    def on_egress(self, event: EgressEvent) -> None:
        self.egress.append(event)


def manager_on(backend: FakeBackend, **settings: Any) -> tuple[ContainerManager, Seen]:
    seen = Seen()
    config = RuntimeConfig.load(env={}, installation_id="unit", pool_enabled=False, monitor_enabled=False, **settings)
    return ContainerManager(config, backend=backend, observers=[seen]), seen


def _registries_file(container: FakeContainer, request: ExecRequest) -> tuple[int, str, str]:
    if request.argv == ("cat", "/etc/theappapp/registries"):
        return 0, "http://deb.debian.org/debian\nhttps://pypi.org/simple\nfiles.pythonhosted.org\n", ""
    return 0, "", ""


async def test_an_allowlisted_task_gets_the_egress_network_the_proxy_and_its_own_policy() -> None:
    backend = FakeBackend()
    backend.exec_handler = _registries_file
    manager, _ = manager_on(backend)
    info = await manager.create_container("t1", "p1", "python", egress=["api.example.com", "registries"])
    spec = backend.specs["theappapp-p1-t1"]
    assert spec.network == info.network == "theappapp-egress"
    assert spec.environment["HTTPS_PROXY"] == spec.environment["http_proxy"] == "http://10.213.252.2:3128"
    assert spec.environment["NO_PROXY"] == "localhost,127.0.0.1,::1" and spec.dns_options
    assert info.egress == ("api.example.com", "deb.debian.org", "pypi.org", "files.pythonhosted.org")
    assert backend.egress.policies[info.container_id] == EgressPolicy("t1", "p1", info.egress)
    await manager.destroy_container("t1")
    await manager.settle()
    assert backend.egress.revoked == [info.container_id] and not backend.egress.policies


async def test_the_languages_own_proxy_settings_are_set_too() -> None:
    backend = FakeBackend(images=("theappapp-java:latest",))
    manager, _ = manager_on(backend)
    await manager.create_container("t1", "p1", "java", egress=["a.example.com"])
    options = backend.specs["theappapp-p1-t1"].environment["JAVA_TOOL_OPTIONS"]
    assert "-Dhttps.proxyHost=10.213.252.2 -Dhttps.proxyPort=3128" in options


async def test_plain_tasks_get_no_proxy_and_no_policy() -> None:
    backend = FakeBackend()
    manager, _ = manager_on(backend)
    await manager.create_container("t1", "p1", "python")
    assert backend.specs["theappapp-p1-t1"].network == "theappapp-sandbox"
    assert "HTTP_PROXY" not in backend.specs["theappapp-p1-t1"].environment and not backend.egress.policies


async def test_the_configured_default_list_applies_to_allowlisted_tasks_that_name_none() -> None:
    backend = FakeBackend()
    manager, _ = manager_on(backend, network="allowlist", egress_allow=("pypi.org",))
    info = await manager.create_container("t1", "p1", "python")
    assert info.egress == ("pypi.org",) and backend.egress.policies[info.container_id].hosts == ("pypi.org",)


@pytest.mark.parametrize("kwargs, error", [
    ({"network": "sandbox", "egress": ["a.test"]}, "needs network='allowlist'"),
    ({"network": "everything"}, "network must be"),
    ({"egress": ["not a host"]}, "invalid egress host"),
])
async def test_allowlist_mistakes_are_refused_before_any_engine_call(kwargs: dict[str, Any], error: str) -> None:
    backend = FakeBackend()
    manager, _ = manager_on(backend)
    with pytest.raises(InvalidRequest, match=error):
        await manager.create_container("t1", "p1", "python", **kwargs)
    assert not backend.containers


async def test_an_allowlist_needs_sandboxes_without_raw_sockets() -> None:
    manager, _ = manager_on(FakeBackend(), cap_drop_all=False)
    with pytest.raises(InvalidRequest, match="cap_drop_all"):
        await manager.create_container("t1", "p1", "python", egress=["a.test"])


async def test_where_allowlists_cannot_be_kept_the_create_says_why_and_leaves_nothing() -> None:
    backend = FakeBackend()
    backend.egress.ready = False
    manager, _ = manager_on(backend)
    with pytest.raises(NetworkPolicyError, match="no proxy in this fake"):
        await manager.create_container("t1", "p1", "python", egress=["a.test"])
    assert not backend.containers and "t1" not in manager.tasks


async def test_an_image_that_names_no_index_fails_the_registries_preset_and_removes_the_container() -> None:
    backend = FakeBackend()
    backend.exec_handler = lambda container, request: (1, "", "cat: no such file")
    manager, _ = manager_on(backend)
    with pytest.raises(NetworkPolicyError, match="names no package indexes"):
        await manager.create_container("t1", "p1", "python", egress=["registries"])
    await manager.settle()
    assert not backend.containers and "t1" not in manager.tasks


async def test_audit_records_reach_the_observers_of_the_manager_whose_task_it_is() -> None:
    backend = FakeBackend()
    manager, seen = manager_on(backend)
    await manager.create_container("t1", "p1", "python", egress=["a.test"])
    record = EgressRecord(1.0, "t1", "p1", "172.31.254.7", "GET", "a.test", 80, "allowed", 200, 10, 20, "ok")
    backend.egress.emit(record)
    backend.egress.emit(EgressRecord(1.0, "t9", "p9", "172.31.254.8", "GET", "a.test", 80, "allowed", 200, 1, 2, ""))
    backend.egress.emit(EgressRecord(1.0, None, None, "172.31.254.9", "GET", "b.test", 80, "denied", 403, 1, 2, ""))
    await manager.destroy_container("t1")
    backend.egress.emit(record)  # a tunnel is logged when it closes, after its task may have ended
    assert [(e.task_id, e.host, e.verdict) for e in seen.egress] == [("t1", "a.test", "allowed")] * 2


def test_an_sni_cannot_speak_for_another_task_in_the_audit() -> None:
    forged = parse_line('1765000000.5 client=172.31.254.7 tag=p1/t1 method=CONNECT host=a.test port=443 '
                        'verdict=NONE_NONE/200 err=- bump=terminate in=0 out=0 reason="TLS SNI mismatch" '
                        'sni=b.test tag=victim/task host=bank.test client=172.31.254.99 method=GET')
    assert forged is not None
    assert (forged.task_id, forged.project_id, forged.host, forged.client, forged.method) == (
        "t1", "p1", "a.test", "172.31.254.7", "CONNECT")


def test_an_upstream_that_failed_was_still_allowed_not_denied() -> None:
    failed = parse_line('1765000000.6 client=172.31.254.7 tag=p1/t1 method=GET host=a.test port=80 '
                        'verdict=TCP_MISS/503 err=ERR_CONNECT_FAIL bump=- in=80 out=300 reason="allowed: a.test" sni=-')
    assert failed is not None and failed.verdict == "allowed" and failed.status == 503


async def test_a_task_logging_without_end_is_kept_to_its_budget_and_others_are_not() -> None:
    backend = FakeBackend()
    manager, seen = manager_on(backend)
    await manager.create_container("t1", "p1", "python", egress=["a.test"])
    await manager.create_container("t2", "p1", "python", egress=["a.test"])

    def refused(task: str) -> EgressRecord:
        return EgressRecord(1.0, task, "p1", "172.31.254.7", "GET", "x.test", 80, "denied", 403, 1, 2, "no")

    for _ in range(5000):
        backend.egress.emit(refused("t1"))
    backend.egress.emit(refused("t2"))
    kept = [e.task_id for e in seen.egress]
    assert kept.count("t1") <= 600 and kept.count("t2") == 1 and manager._egress.dropped >= 4400


async def test_a_task_id_used_again_is_recorded_for_the_new_task() -> None:
    backend = FakeBackend()
    manager, seen = manager_on(backend)
    await manager.create_container("t1", "p1", "python", egress=["a.test"])
    await manager.destroy_container("t1")
    await manager.settle()
    await manager.create_container("t1", "p2", "python", egress=["a.test"])
    backend.egress.emit(EgressRecord(1.0, "t1", "p2", "172.31.254.7", "GET", "a.test", 80, "allowed", 200, 1, 2, ""))
    backend.egress.emit(EgressRecord(1.0, "t1", "p1", "172.31.254.7", "GET", "a.test", 80, "allowed", 200, 1, 2, ""))
    assert [(e.task_id, e.project_id) for e in seen.egress] == [("t1", "p2"), ("t1", "p1")]  # p1's: a late tunnel
