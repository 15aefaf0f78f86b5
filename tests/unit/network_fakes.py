"""In-memory stand-ins for iptables and the engine's network API (unit tests need no root or Docker)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

import docker.errors

from runtime.backends.docker.firewall import CommandResult

DENIED = "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)"


class FakeIptables:
    """Understands the subset the firewall module uses: -S, -C, -I <chain> 1, -D, -N."""

    def __init__(self, chains: dict[str, list[list[str]]] | None = None, *, denied: bool = False) -> None:
        default = {"INPUT": [], "FORWARD": [["-j", "DOCKER-USER"]], "DOCKER-USER": [["-j", "RETURN"]]}
        self.chains = default if chains is None else chains
        self.denied = denied
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        argv = list(argv)
        self.calls.append(argv)
        assert argv[1:5] == ["-w", "5", "-t", "filter"], argv
        op, chain, *rest = argv[5:]
        if self.denied:
            return CommandResult(4, "", DENIED)
        if op == "-N":
            if chain in self.chains:
                return CommandResult(1, "", "iptables: Chain already exists.")
            self.chains[chain] = []
            return CommandResult(0, "", "")
        if chain not in self.chains:
            return CommandResult(1, "", "iptables: No chain/target/match by that name.")
        rules = self.chains[chain]
        if op == "-S":
            lines = [f"-N {chain}"] + [f"-A {chain} {shlex.join(r)}" for r in rules]
            return CommandResult(0, "\n".join(lines) + "\n", "")
        if op == "-C":
            return CommandResult(0 if rest in rules else 1, "", "" if rest in rules else "Bad rule")
        if op == "-I":
            position, spec = int(rest[0]), rest[1:]
            rules.insert(position - 1, spec)
            return CommandResult(0, "", "")
        if op == "-D":
            if rest not in rules:
                return CommandResult(1, "", "iptables: Bad rule (does a matching rule exist in that chain?).")
            rules.remove(rest)
            return CommandResult(0, "", "")
        raise AssertionError(f"unexpected iptables call {argv}")

    def count(self, chain: str) -> int:
        return len(self.chains.get(chain, []))

    def tagged(self) -> list[tuple[str, list[str]]]:
        return [(c, r) for c, rules in self.chains.items() for r in rules if "theappapp-sandbox" in r]


class FakeNetwork:
    def __init__(self, engine: FakeNetworks, name: str, attrs: dict[str, Any]) -> None:
        self._engine = engine
        self.name = name
        self.id = f"{abs(hash(name)):x}".ljust(64, "0")
        self.attrs = attrs

    def reload(self) -> None:
        pass

    def remove(self) -> None:
        if self.attrs.get("Containers"):
            raise docker.errors.APIError("error while removing network: network has active endpoints")
        self._engine.items.remove(self)
        self._engine.removed.append(self.name)


class FakeNetworks:
    def __init__(self) -> None:
        self.items: list[FakeNetwork] = []
        self.created: list[dict[str, Any]] = []
        self.removed: list[str] = []

    def add(self, name: str, **attrs: Any) -> FakeNetwork:
        network = FakeNetwork(self, name, {"Driver": "bridge", "Options": {}, "Labels": {}, **attrs})
        self.items.append(network)
        return network

    def list(self, names: list[str] | None = None) -> list[FakeNetwork]:
        if names is None:
            return list(self.items)
        return [n for n in self.items if any(wanted in n.name for wanted in names)]  # substring, like the engine

    def create(self, name: str, **kwargs: Any) -> FakeNetwork:
        self.created.append({"name": name, **kwargs})
        return self.add(name, Options=dict(kwargs["options"]), Labels=dict(kwargs["labels"]))


class FakeClient:
    def __init__(self) -> None:
        self.networks = FakeNetworks()
