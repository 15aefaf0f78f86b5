"""Squid external ACL helper of the egress proxy: may this sandbox reach this host?

Squid starts it (`external_acl_type ... concurrency=32`) and writes one request per line:
`<channel> <client ip> <host> [<tls sni>]`, each value URL-encoded, "-" when absent. It answers
`<channel> OK tag=<project>/<task> log="..."` or `<channel> ERR tag=... message="..." log="..."`:
squid logs the tag and the log text and shows the message on its error page.

Who a client is and what it may reach is the runtime's policy file for that address,
`/etc/theappapp/egress/clients/<ip>`: JSON {"task": ..., "project": ..., "hosts": [...]}, written
whole and renamed into place by the runtime, read afresh for every request (squid caches nothing:
ttl=0), so a task's policy applies from its first request and ends when the file goes.

Host rules (`hosts`): `api.example.com` is that host only; `*.example.org` is any name below
example.org but not example.org itself; an IP address allows that address only when written
literally (an IP-literal destination matches nothing else). In `tls` mode the ClientHello's SNI
must be the very host the CONNECT named (no domain fronting), and a handshake without SNI passes
only to a listed IP literal. Standard library only: it runs on the image's Python.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from urllib.parse import unquote

POLICY_DIR = os.environ.get("THEAPPAPP_EGRESS_POLICIES", "/etc/theappapp/egress/clients")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_MAX_POLICY = 1 << 20


class Policy:
    def __init__(self, task: str, project: str, hosts: list[str]) -> None:
        self.task, self.project, self.hosts = task, project, hosts

    @property
    def tag(self) -> str:
        return f"{self.project}/{self.task}"


def quoted(text: str) -> str:
    """A value in squid's helper protocol: double-quoted, with backslash escapes, on one line."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def normal_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def as_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def load_policy(client: str, directory: str = POLICY_DIR) -> Policy | str:
    """The client's policy, or why there is none."""
    address = as_ip(client)
    if address is None:
        return f"bad client address {client!r}"
    try:
        with open(os.path.join(directory, address.compressed), encoding="utf-8") as file:
            data = json.loads(file.read(_MAX_POLICY))
    except FileNotFoundError:
        return f"no egress policy for client {address}"
    except (OSError, ValueError) as err:
        return f"unreadable egress policy for client {address}: {err}"
    task, project, hosts = data.get("task"), data.get("project"), data.get("hosts")
    if not (isinstance(task, str) and _ID.fullmatch(task) and isinstance(project, str) and _ID.fullmatch(project)
            and isinstance(hosts, list) and all(isinstance(h, str) for h in hosts)):
        return f"malformed egress policy for client {address}"
    return Policy(task, project, [normal_host(h) for h in hosts])


def host_allowed(host: str, patterns: list[str]) -> bool:
    address = as_ip(host)
    for pattern in patterns:
        if address is not None:
            if as_ip(pattern) == address:
                return True
        elif pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif pattern == host:
            return True
    return False


def decide(mode: str, fields: list[str], directory: str = POLICY_DIR) -> str:
    """The answer (without the channel) to one request's fields."""
    values = [unquote(f) for f in fields]
    client = values[0] if values else ""
    host = normal_host(values[1]) if len(values) > 1 and values[1] != "-" else ""
    policy = load_policy(client, directory)
    if isinstance(policy, str):
        return f"ERR message={quoted(policy)} log={quoted(policy)}"
    tag = f"tag={policy.tag}"

    def refuse(why: str) -> str:
        return f"ERR {tag} message={quoted(why)} log={quoted(why)}"

    if not host:
        return refuse("no destination host")
    if mode == "tls":
        sni = normal_host(values[2]) if len(values) > 2 and values[2] != "-" else ""
        if not sni:
            if as_ip(host) is not None and host_allowed(host, policy.hosts):
                return f"OK {tag} log={quoted('allowed: ' + host + ' (TLS without SNI to a listed address)')}"
            return refuse(f"TLS handshake without SNI for {host}")
        if sni != host:
            return refuse(f"TLS SNI {sni} does not match the CONNECT host {host}")
    if host_allowed(host, policy.hosts):
        return f"OK {tag} log={quoted('allowed: ' + host)}"
    return refuse(f"{host} is not in the egress allowlist of task {policy.task} (project {policy.project})")


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "request"
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        try:
            answer = decide(mode, parts[1:])
        except Exception as err:  # never die: squid stops when its helpers keep crashing
            sys.stderr.write(f"acl_helper: {type(err).__name__}: {err}\n")
            answer = f"BH message={quoted('egress helper error')}"
        sys.stdout.write(f"{parts[0]} {answer}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
