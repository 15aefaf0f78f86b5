"""ensure/remove_sandbox_network against a fake engine and fake iptables: what is created,
what is reported, and that nothing raises for lack of root or iptables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from runtime.backends.docker import firewall, network
from runtime.backends.docker.firewall import CommandResult
from runtime.backends.docker.network import (
    BRIDGE_NAME_OPTION,
    ICC_OPTION,
    bridge_interface_name,
    ensure_sandbox_network,
    remove_sandbox_network,
)
from runtime.errors import NetworkPolicyError
from tests.unit.network_fakes import FakeClient, FakeIptables

NAME = "theappapp-sandbox"
IFACE = bridge_interface_name(NAME)


class Host:
    """Which firewall programs exist, and their state."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, v4: bool = True, v6: bool = True, denied: bool = False):
        self.v4 = FakeIptables(denied=denied)
        self.v6 = FakeIptables({"INPUT": [], "FORWARD": []}, denied=denied)
        present = {"iptables": v4, "ip6tables": v6}
        monkeypatch.setattr(firewall, "locate", lambda program: program if present[program] else None)
        monkeypatch.setattr(firewall, "run_command", self._run)

    def _run(self, argv: Sequence[str]) -> CommandResult:
        return (self.v4 if argv[0] == "iptables" else self.v6)(argv)


def test_interface_name_is_stable_short_and_per_network() -> None:
    assert bridge_interface_name(NAME) == IFACE
    assert len(IFACE) <= 15
    assert IFACE.startswith("tapp-")
    assert bridge_interface_name("theappapp-sandbox-2") != IFACE


def test_creates_an_icc_off_labelled_bridge_and_blocks_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(monkeypatch)
    client = FakeClient()
    status = ensure_sandbox_network(client, NAME)  # type: ignore[arg-type]
    created = client.networks.created[0]
    assert created["driver"] == "bridge"
    assert created["options"] == {ICC_OPTION: "false", BRIDGE_NAME_OPTION: IFACE}
    assert created["labels"] == {"theappapp-managed": "true"}
    assert created["enable_ipv6"] is False
    assert status.host_blocked and status.metadata_blocked and status.icc_disabled
    assert status.problems == ()
    assert len(host.v4.tagged()) == 3
    assert len(host.v6.tagged()) == 1  # IPv6 INPUT drop, defence in depth


def test_ensure_twice_creates_nothing_new(monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(monkeypatch)
    client = FakeClient()
    first = ensure_sandbox_network(client, NAME)  # type: ignore[arg-type]
    second = ensure_sandbox_network(client, NAME)  # type: ignore[arg-type]
    assert first == second
    assert len(client.networks.created) == 1
    assert len(host.v4.tagged()) == 3


def test_a_similar_name_is_not_mistaken_for_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    Host(monkeypatch)
    client = FakeClient()
    client.networks.add(NAME + "-other", Labels={"theappapp-managed": "true"})
    ensure_sandbox_network(client, NAME)  # type: ignore[arg-type]
    assert [c["name"] for c in client.networks.created] == [NAME]


def test_without_iptables_nothing_raises_and_the_problem_is_stated(monkeypatch: pytest.MonkeyPatch) -> None:
    Host(monkeypatch, v4=False, v6=False)
    status = ensure_sandbox_network(FakeClient(), NAME)  # type: ignore[arg-type]
    assert not status.host_blocked and not status.metadata_blocked
    assert status.icc_disabled
    assert len(status.problems) == 1
    assert "iptables was not found" in status.problems[0]
    assert "can reach services on this host" in status.problems[0]
    assert f"iptables -I INPUT -i {IFACE}" in status.problems[0]  # what to run


def test_without_root_nothing_raises_and_the_problem_says_root(monkeypatch: pytest.MonkeyPatch) -> None:
    Host(monkeypatch, denied=True)
    status = ensure_sandbox_network(FakeClient(), NAME)  # type: ignore[arg-type]
    assert not status.host_blocked and not status.metadata_blocked
    assert len(status.problems) == 1
    assert "run as root" in status.problems[0]


def test_install_firewall_off_only_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(monkeypatch)
    status = ensure_sandbox_network(FakeClient(), NAME, install_firewall=False)  # type: ignore[arg-type]
    assert not status.host_blocked
    assert "install_firewall is off" in status.problems[0]
    assert host.v4.tagged() == []
    assert not any(call[5] in ("-I", "-N", "-D") for call in host.v4.calls)


def test_install_firewall_off_accepts_rules_an_admin_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(monkeypatch)
    ensure_sandbox_network(FakeClient(), NAME)  # type: ignore[arg-type]  # the "admin" run
    status = ensure_sandbox_network(FakeClient(), NAME, install_firewall=False)  # type: ignore[arg-type]
    assert status.host_blocked and status.metadata_blocked and status.problems == ()
    assert len(host.v4.tagged()) == 3


def test_a_foreign_network_of_that_name_is_refused_and_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    Host(monkeypatch)
    client = FakeClient()
    client.networks.add(NAME)
    with pytest.raises(NetworkPolicyError, match="not labelled"):
        ensure_sandbox_network(client, NAME)  # type: ignore[arg-type]
    with pytest.raises(NetworkPolicyError, match="not labelled"):
        remove_sandbox_network(client, NAME)  # type: ignore[arg-type]
    assert client.networks.removed == []


def test_an_unused_network_with_icc_on_is_recreated(monkeypatch: pytest.MonkeyPatch) -> None:
    Host(monkeypatch)
    client = FakeClient()
    client.networks.add(NAME, Labels={"theappapp-managed": "true"}, Options={ICC_OPTION: "true"})
    status = ensure_sandbox_network(client, NAME)  # type: ignore[arg-type]
    assert client.networks.removed == [NAME]
    assert status.icc_disabled and status.problems == ()


def test_a_network_in_use_with_icc_on_is_kept_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    Host(monkeypatch)
    client = FakeClient()
    client.networks.add(
        NAME,
        Labels={"theappapp-managed": "true"},
        Options={ICC_OPTION: "true", BRIDGE_NAME_OPTION: IFACE},
        Containers={"abc": {}},
    )
    status = ensure_sandbox_network(client, NAME)  # type: ignore[arg-type]
    assert client.networks.removed == []
    assert not status.icc_disabled
    assert status.host_blocked  # the firewall still applies to the bridge it has
    assert any("reach each other" in p for p in status.problems)


def test_remove_takes_the_network_then_only_its_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(monkeypatch)
    client = FakeClient()
    ensure_sandbox_network(client, NAME)  # type: ignore[arg-type]
    ensure_sandbox_network(client, "theappapp-other")  # type: ignore[arg-type]
    remove_sandbox_network(client, NAME)  # type: ignore[arg-type]
    assert client.networks.removed == [NAME]
    assert len(host.v4.tagged()) == 3
    assert all(IFACE not in spec for _, spec in host.v4.tagged() + host.v6.tagged())
    remove_sandbox_network(client, NAME)  # type: ignore[arg-type]  # idempotent


def test_remove_keeps_rules_while_containers_are_attached(monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(monkeypatch)
    client = FakeClient()
    ensure_sandbox_network(client, NAME)  # type: ignore[arg-type]
    client.networks.items[0].attrs["Containers"] = {"abc": {}}
    with pytest.raises(NetworkPolicyError, match="rules were kept"):
        remove_sandbox_network(client, NAME)  # type: ignore[arg-type]
    assert len(host.v4.tagged()) == 3


def test_remove_without_root_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    Host(monkeypatch, denied=True)
    client = FakeClient()
    client.networks.add(NAME, Labels={"theappapp-managed": "true"})
    remove_sandbox_network(client, NAME)  # type: ignore[arg-type]
    assert client.networks.removed == [NAME]


def test_nameservers_on_this_host_are_found_and_loopback_ones_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        "# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver 203.0.113.7\nnameserver ::1\n"
    )
    monkeypatch.setattr(network, "_is_local_address", lambda address: address in ("127.0.0.53", "192.0.2.53"))
    assert network.host_local_nameservers([str(resolv), str(tmp_path / "missing")]) == ["192.0.2.53"]


def test_local_address_probe_binds_without_sending() -> None:
    assert network._is_local_address("127.0.0.1")
    assert not network._is_local_address("203.0.113.7")  # TEST-NET-3: never an address of this host


def test_a_host_local_dns_server_is_reported_for_a_local_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    Host(monkeypatch)
    monkeypatch.setattr(network, "host_local_nameservers", lambda: ["192.0.2.53"])
    client = FakeClient()
    assert ensure_sandbox_network(client, NAME).problems == ()  # type: ignore[arg-type]  # remote engine: no claim
    client.api = SimpleNamespace(base_url="http+docker://localhost")  # type: ignore[attr-defined]
    status = ensure_sandbox_network(client, NAME)  # type: ignore[arg-type]
    assert status.host_blocked
    assert len(status.problems) == 1 and "DNS server 192.0.2.53" in status.problems[0]


def test_ensure_prunes_rules_of_bridges_no_network_uses_and_keeps_foreign_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(monkeypatch)
    tag = ["-m", "comment", "--comment", firewall.TAG, "-j", "DROP"]
    host.v4.chains["INPUT"] += [["-i", "tapp-deadbeef00", *tag], ["-i", "br-notours", *tag]]
    client = FakeClient()
    ensure_sandbox_network(client, NAME)  # type: ignore[arg-type]
    interfaces = {spec[spec.index("-i") + 1] for _chain, spec in host.v4.tagged()}
    assert "tapp-deadbeef00" not in interfaces, "a removed network's rules must go"
    assert IFACE in interfaces, "the live network's rules must stay"
    assert "br-notours" in interfaces, "only our bridges' rules are pruned"
