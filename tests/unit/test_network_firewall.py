"""The iptables rule operations, against an in-memory iptables."""

from __future__ import annotations

import pytest

from runtime.backends.docker.firewall import (
    TAG,
    Firewall,
    FirewallError,
    Rule,
    host_rule,
    metadata_rule,
    published_port_rule,
    run_command,
)
from tests.unit.network_fakes import FakeIptables


def _rules(iface: str) -> list[Rule]:
    return [host_rule(iface), metadata_rule(iface), published_port_rule(iface)]


def test_rules_are_tagged_drops_keyed_on_the_ingress_interface() -> None:
    for rule in _rules("tapp-abc"):
        spec = rule.spec()
        assert spec[:2] == ["-i", "tapp-abc"]
        assert spec[-4:] == ["--comment", TAG, "-j", "DROP"]
    assert host_rule("x").chain == "INPUT"
    assert metadata_rule("x").chain == published_port_rule("x").chain == "DOCKER-USER"
    assert "169.254.0.0/16" in metadata_rule("x").spec()


def test_ensure_twice_adds_each_rule_once_at_the_top() -> None:
    ipt = FakeIptables()
    fw = Firewall("iptables", ipt)
    added = [fw.ensure(r) for r in _rules("tapp-a")]
    again = [fw.ensure(r) for r in _rules("tapp-a")]
    assert added == [True, True, True]
    assert again == [False, False, False]
    assert len(ipt.tagged()) == 3
    assert ipt.chains["DOCKER-USER"][-1] == ["-j", "RETURN"]  # ours go before the engine's RETURN


def test_missing_docker_user_chain_is_created_and_hooked_once() -> None:
    ipt = FakeIptables({"INPUT": [], "FORWARD": []})
    fw = Firewall("iptables", ipt)
    fw.ensure_docker_user_chain()
    fw.ensure_docker_user_chain()
    assert "DOCKER-USER" in ipt.chains
    assert ipt.chains["FORWARD"] == [["-m", "comment", "--comment", TAG, "-j", "DOCKER-USER"]]
    assert fw.docker_user_hooked()


def test_the_engines_own_jump_is_reused_not_duplicated() -> None:
    ipt = FakeIptables()
    Firewall("iptables", ipt).ensure_docker_user_chain()
    assert ipt.chains["FORWARD"] == [["-j", "DOCKER-USER"]]


def test_remove_deletes_only_this_interfaces_tagged_rules() -> None:
    ipt = FakeIptables()
    ipt.chains["INPUT"].append(["-i", "tapp-a", "-j", "DROP"])  # someone else's untagged rule
    fw = Firewall("iptables", ipt)
    for iface in ("tapp-a", "tapp-b"):
        for rule in _rules(iface):
            fw.ensure(rule)
    assert fw.remove_for_interface("tapp-a") == 3
    remaining = ipt.tagged()
    assert len(remaining) == 3
    assert all("tapp-b" in spec for _, spec in remaining)
    assert ["-i", "tapp-a", "-j", "DROP"] in ipt.chains["INPUT"]
    assert fw.remove_for_interface("tapp-a") == 0


def test_our_forward_jump_goes_with_the_last_tagged_docker_user_rule() -> None:
    ipt = FakeIptables({"INPUT": [], "FORWARD": []})
    fw = Firewall("iptables", ipt)
    fw.ensure_docker_user_chain()
    fw.ensure(metadata_rule("tapp-a"))
    fw.remove_docker_user_jump_if_unused()
    assert ipt.count("FORWARD") == 1  # still needed
    fw.remove_for_interface("tapp-a")
    fw.remove_docker_user_jump_if_unused()
    assert ipt.count("FORWARD") == 0
    assert "DOCKER-USER" in ipt.chains  # the chain itself is shared with the engine and stays


def test_lack_of_privilege_is_reported_as_denied() -> None:
    fw = Firewall("iptables", FakeIptables(denied=True))
    with pytest.raises(FirewallError) as info:
        fw.ensure(host_rule("tapp-a"))
    assert info.value.denied
    assert "Permission denied" in str(info.value)


def test_a_rejected_insert_is_an_error_not_denied() -> None:
    ipt = FakeIptables()
    fw = Firewall("iptables", ipt)
    with pytest.raises(FirewallError) as info:
        fw.ensure(Rule("NO-SUCH-CHAIN", ("-i", "tapp-a")))
    assert not info.value.denied


def test_tagged_rules_parse_quoted_listing_lines() -> None:
    ipt = FakeIptables()
    ipt.chains["INPUT"].append(["-i", "tapp-a", "-m", "comment", "--comment", "some other tool", "-j", "ACCEPT"])
    fw = Firewall("iptables", ipt)
    fw.ensure(host_rule("tapp-a"))
    assert fw.tagged_rules("INPUT") == [host_rule("tapp-a").spec()]


def test_a_missing_binary_becomes_a_result() -> None:
    result = run_command(["/nonexistent/iptables", "-S"])
    assert result.returncode == 127
