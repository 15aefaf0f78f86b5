"""The proxy's access log, read back as `EgressRecord`s.

Squid writes one line per connection (squid.conf's `egress` logformat), e.g.

    1765000000.123 client=172.31.254.3 tag=proj/task-1 method=CONNECT host=pypi.org port=443
      verdict=TCP_TUNNEL/200 err=- bump=splice in=719 out=2200 reason="allowed: pypi.org" sni=pypi.org

The SNI is the sandbox's own text, logged raw: it comes last and only the first field of each name
counts, so an SNI holding ` tag=other/task` cannot speak for another task.

A spliced HTTPS connection is logged twice: the peek's decision (`NONE_NONE`, no bytes) and the
tunnel with its bytes. Only the tunnel is a connection; the decision line is dropped unless it
refused the handshake (`bump=terminate`: an SNI that does not match).
"""

from __future__ import annotations

import re
import shlex

from runtime.backends.egress import EgressRecord

_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def _unquote(value: str) -> str:
    if not value.startswith('"'):
        return value
    try:
        return shlex.split(value)[0]
    except ValueError:  # an unbalanced quote: the text as it is
        return value.strip('"')


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "-", "") else None
    except ValueError:
        return None


def parse_line(line: str) -> EgressRecord | None:
    """The record one log line describes, or None for lines that are not connections."""
    stamp, _, rest = line.strip().partition(" ")
    try:
        at = float(stamp)
    except ValueError:
        return None
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(rest):
        if key not in fields:
            fields[key] = _unquote(value)
    code, _, status_text = fields.get("verdict", "").partition("/")
    bump = fields.get("bump", "-")
    if code == "NONE_NONE" and bump != "terminate":
        return None  # the peek's decision for a tunnel logged on its own line, or a half-open junk line
    if fields.get("method", "-") == "-" or fields.get("host", "-") == "-":
        return None
    # Refused by the policy (ours: ERR_EGRESS_*, or a handshake cut); an upstream that failed was allowed.
    denied = "DENIED" in code or bump == "terminate" or "ERR_EGRESS" in fields.get("err", "")
    project, _, task = fields.get("tag", "-").partition("/")
    known = fields.get("tag", "-") not in ("-", "") and task
    return EgressRecord(
        at=at,
        task_id=task if known else None,
        project_id=project if known else None,
        client=fields.get("client", "?"),
        method=fields["method"],
        host=fields["host"],
        port=_int(fields.get("port")),
        verdict="denied" if denied else "allowed",
        status=_int(status_text),
        bytes_in=_int(fields.get("in")) or 0,
        bytes_out=_int(fields.get("out")) or 0,
        reason="" if fields.get("reason", "-") == "-" else fields.get("reason", ""),
    )
