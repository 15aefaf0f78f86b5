"""iptables rules that keep sandboxes off the host and away from cloud metadata.

Every rule is tagged with the comment `theappapp-sandbox`, checked with `-C` before it is
inserted (so installing twice adds nothing) and removable by interface. The engine's own
rules are never touched; the only shared object created here is the `DOCKER-USER` chain
(and a tagged jump to it) when the engine has not created it yet.

Why these rules (measured on Docker 20.10, see the network integration tests):
- INPUT drop for packets arriving on the sandbox bridge: the host answers on *all* its
  addresses (bridge gateway, docker0, external IPs) through INPUT, so one rule on the
  ingress interface covers every address. Docker's embedded DNS lives at 127.0.0.11
  inside the container's namespace and forwards from there, so DNS to off-host resolvers
  is forwarded traffic and keeps working.
- DOCKER-USER drop for 169.254.0.0/16: link-local metadata routed off the host is
  forwarded traffic, which INPUT never sees.
- DOCKER-USER drop for DNAT'd flows: with the userland proxy disabled, a port another
  container publishes on a host address is rewritten before INPUT; this closes that path.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import NetworkPolicyError

TAG = "theappapp-sandbox"
DOCKER_USER = "DOCKER-USER"
METADATA_NET = "169.254.0.0/16"
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")  # iptables lives in sbin, often off a user's PATH
_LOCK_NAME = "theappapp-sandbox-firewall.lock"


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str]) -> CommandResult:
    """Run one iptables command; a missing binary or a hang becomes a result, not an exception."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        return CommandResult(127, "", str(exc))
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"{argv[0]} did not finish within 30 s")
    return CommandResult(done.returncode, done.stdout, done.stderr)


def locate(program: str) -> str | None:
    """Find `iptables`/`ip6tables` on PATH or in the sbin directories."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    return shutil.which(program, path=path)


class FirewallError(NetworkPolicyError):
    """An iptables command failed; `denied` is true when it failed for lack of privilege."""

    def __init__(self, message: str, *, denied: bool = False) -> None:
        super().__init__(message)
        self.denied = denied


@dataclass(frozen=True)
class Rule:
    """One tagged rule in the filter table: `match` selects packets, `target` decides."""

    chain: str
    match: tuple[str, ...]
    target: str = "DROP"

    def spec(self) -> list[str]:
        return [*self.match, "-m", "comment", "--comment", TAG, "-j", self.target]

    def describe(self, binary: str = "iptables") -> str:
        return shlex.join([binary, "-I", self.chain, *self.spec()])


def host_rule(interface: str) -> Rule:
    return Rule("INPUT", ("-i", interface))


def metadata_rule(interface: str) -> Rule:
    return Rule(DOCKER_USER, ("-i", interface, "-d", METADATA_NET))


def published_port_rule(interface: str) -> Rule:
    return Rule(DOCKER_USER, ("-i", interface, "-m", "conntrack", "--ctstate", "DNAT"))


_DOCKER_USER_JUMP = Rule("FORWARD", (), DOCKER_USER)


def _is_denied(stderr: str) -> bool:
    text = stderr.lower()
    return "permission denied" in text or "must be root" in text or "operation not permitted" in text


class Firewall:
    """The rule operations for one iptables binary (`iptables` or `ip6tables`)."""

    def __init__(self, binary: str, runner: Runner | None = None) -> None:
        self.binary = binary
        self._runner = runner or run_command

    def _run(self, *args: str) -> CommandResult:
        # -w: wait for the xtables lock instead of failing while the engine edits rules.
        return self._runner([self.binary, "-w", "5", "-t", "filter", *args])

    def _fail(self, what: str, result: CommandResult) -> FirewallError:
        detail = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
        return FirewallError(f"{what}: {detail}", denied=_is_denied(detail))

    def chain_exists(self, chain: str) -> bool:
        result = self._run("-S", chain)
        if result.returncode == 0:
            return True
        if _is_denied(result.stderr):
            raise self._fail(f"{self.binary} could not read chain {chain}", result)
        return False

    def exists(self, rule: Rule) -> bool:
        result = self._run("-C", rule.chain, *rule.spec())
        if result.returncode == 0:
            return True
        if result.returncode == 1 and not _is_denied(result.stderr):
            return False  # "does not exist" (or the chain is missing, which means the same)
        raise self._fail(f"{self.binary} could not check {rule.describe(self.binary)}", result)

    def ensure(self, rule: Rule) -> bool:
        """Insert `rule` at the top of its chain unless present; return True if it was added."""
        if self.exists(rule):
            return False
        result = self._run("-I", rule.chain, "1", *rule.spec())
        if result.returncode != 0:
            raise self._fail(f"{self.binary} could not add {rule.describe(self.binary)}", result)
        return True

    def remove(self, rule: Rule) -> bool:
        """Delete `rule` if present; return True if it was there."""
        if not self.exists(rule):
            return False
        result = self._run("-D", rule.chain, *rule.spec())
        if result.returncode != 0:
            raise self._fail(f"{self.binary} could not delete {rule.describe(self.binary)}", result)
        return True

    def ensure_docker_user_chain(self) -> None:
        """Create DOCKER-USER and hook it into FORWARD if the engine has not done so yet."""
        if not self.chain_exists(DOCKER_USER):
            result = self._run("-N", DOCKER_USER)
            if result.returncode != 0 and not self.chain_exists(DOCKER_USER):
                raise self._fail(f"{self.binary} could not create chain {DOCKER_USER}", result)
        if self.docker_user_hooked():
            return
        self.ensure(_DOCKER_USER_JUMP)

    def docker_user_hooked(self) -> bool:
        """True if FORWARD jumps to DOCKER-USER (the engine's untagged jump or ours)."""
        plain = self._run("-C", "FORWARD", "-j", DOCKER_USER)
        return plain.returncode == 0 or self.exists(_DOCKER_USER_JUMP)

    def tagged_rules(self, chain: str) -> list[list[str]]:
        """Our rules in `chain`, each as the argument list after `-A <chain>`."""
        result = self._run("-S", chain)
        if result.returncode != 0:
            if _is_denied(result.stderr):
                raise self._fail(f"{self.binary} could not list chain {chain}", result)
            return []
        rules = []
        for line in result.stdout.splitlines():
            words = shlex.split(line)
            if len(words) > 2 and words[0] == "-A" and _has_tag(words):
                rules.append(words[2:])
        return rules

    def remove_for_interface(self, interface: str) -> int:
        """Delete every tagged rule matching packets from `interface`; return how many."""
        removed = 0
        for chain in ("INPUT", DOCKER_USER, "FORWARD"):
            for spec in self.tagged_rules(chain):
                if not _matches_interface(spec, interface):
                    continue
                result = self._run("-D", chain, *spec)
                if result.returncode != 0:
                    raise self._fail(f"{self.binary} could not delete a rule from {chain}", result)
                removed += 1
        return removed

    def remove_docker_user_jump_if_unused(self) -> None:
        """Drop our FORWARD jump once no tagged DOCKER-USER rules remain (the chain stays)."""
        if self.tagged_rules(DOCKER_USER):
            return
        while self.exists(_DOCKER_USER_JUMP):
            result = self._run("-D", "FORWARD", *_DOCKER_USER_JUMP.spec())
            if result.returncode != 0:
                raise self._fail(f"{self.binary} could not delete the FORWARD jump", result)


def _has_tag(words: list[str]) -> bool:
    return any(a == "--comment" and b == TAG for a, b in itertools.pairwise(words))


def rule_interfaces(specs: list[list[str]]) -> set[str]:
    """The input interfaces (`-i X`) that these rules match."""
    return {b for spec in specs for a, b in itertools.pairwise(spec) if a == "-i"}


def _matches_interface(spec: list[str], interface: str) -> bool:
    return any(a == "-i" and b == interface for a, b in itertools.pairwise(spec))


@contextlib.contextmanager
def rules_lock() -> Iterator[None]:
    """Serialise check-then-insert across processes so concurrent startups add no duplicates."""
    for directory in ("/run/lock", tempfile.gettempdir()):
        try:
            handle = (Path(directory) / _LOCK_NAME).open("a")
        except OSError:
            continue
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
            return
    yield  # nowhere to put a lock file: proceed unserialised rather than fail
