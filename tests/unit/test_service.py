"""The service's parts that need no engine: tokens, the error mapping, the CLI's refusals."""

from __future__ import annotations

import asyncio
import hmac
import json
import stat
from pathlib import Path

import pytest

from runtime import errors
from runtime.cli import main
from runtime.config import RuntimeConfig
from runtime.sandbox.manager import ContainerManager
from runtime.server.broker import TaskBroker
from runtime.server.status import BY_NAME, error_from, status_of
from runtime.server.tokens import Scope, TokenStore, add_token, read_tokens, revoke_token, token_hash
from tests.unit.fake_backend import FakeBackend


def test_a_token_is_printed_once_and_only_its_hash_is_stored(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    path = tmp_path / "tokens.json"
    assert main(["token", "add", "--tokens", str(path), "--projects", "team-*", "--max-tasks", "5"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("tap_") and len(token) > 40
    text = path.read_text()
    assert token not in text and token_hash(token) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (stored,) = read_tokens(path)
    assert stored.scope == Scope("token-1", ("team-*",), 5, None, 64 * 1024 * 1024)
    assert TokenStore(path).authenticate(token) == stored.scope


def test_unknown_tokens_and_scopes(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token = add_token(path, Scope("a", ("a-*", "shared")))
    store = TokenStore(path)
    for wrong in (None, "", token[:-1], token + "x", token.upper()):
        assert store.authenticate(wrong) is None
    scope = store.authenticate(token)
    assert scope is not None
    assert [scope.allows(p) for p in ("a-1", "shared", "b-1", "xa-1", "shared2")] == [True, True, False, False, False]


def test_every_stored_token_is_compared_whichever_matches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tokens.json"
    tokens = [add_token(path, Scope(f"t{i}")) for i in range(5)]
    store = TokenStore(path)
    calls = []
    real = hmac.compare_digest

    def counting(a: str, b: str) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for presented in (tokens[0], tokens[4], "tap_nothing"):
        calls.clear()
        store.authenticate(presented)
        assert len(calls) == 5  # no early exit: the time does not say which entry, or how close


def test_tokens_added_while_serving_are_seen_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = TokenStore(path)
    assert len(store) == 0
    token = add_token(path, Scope("late"))
    assert store.authenticate(token) is not None


def test_tokens_are_listed_without_secrets_and_a_revoked_one_is_refused_while_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens.json"
    kept = add_token(path, Scope("ci", ("ci-*",), max_tasks=3))
    gone = add_token(path, Scope("leaked", ("team-*",), max_timeout=60))
    store = TokenStore(path)  # as a running service holds it
    assert store.authenticate(gone) is not None
    assert main(["token", "list", "--tokens", str(path)]) == 0
    listed = capsys.readouterr().out
    assert "ci-*" in listed and "leaked" in listed and " 60 " in f"{listed} "
    assert kept not in listed and token_hash(kept) not in listed
    assert main(["token", "revoke", "--tokens", str(path), "leaked"]) == 0
    assert store.authenticate(gone) is None and store.authenticate(kept) is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert main(["token", "revoke", "--tokens", str(path), "leaked"]) != 0
    assert "no token named 'leaked' (it has: 'ci')" in capsys.readouterr().err


def test_a_revoked_name_is_never_given_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tokens.json"
    for _ in range(2):
        assert main(["token", "add", "--tokens", str(path), "--projects", "*"]) == 0
    assert main(["token", "revoke", "--tokens", str(path), "token-1"]) == 0
    assert main(["token", "add", "--tokens", str(path), "--projects", "*"]) == 0  # not token-1, nor token-2
    assert sorted(t.scope.name for t in read_tokens(path)) == ["token-2", "token-3"]
    # The service knows a token's tasks by its name: a new token of a revoked name would own them.
    assert main(["token", "add", "--tokens", str(path), "--projects", "*", "--name", "token-1"]) != 0
    assert "was revoked" in capsys.readouterr().err


def test_rewriting_the_token_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    add_token(path, Scope("a"))
    add_token(path, Scope("b"))
    path.chmod(0o640)  # read by the service's group
    revoke_token(path, "a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_concurrent_adds_and_revokes_lose_nothing(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "tokens.json"
    for i in range(8):
        add_token(path, Scope(f"old{i}"))
    issued: dict[str, str] = {}

    def add(i: int) -> None:
        issued[f"new{i}"] = add_token(path, Scope(f"new{i}"))

    workers = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    workers += [threading.Thread(target=revoke_token, args=(path, f"old{i}")) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    store = TokenStore(path)
    assert sorted(t.scope.name for t in read_tokens(path)) == sorted(issued)
    assert all(store.authenticate(token) is not None for token in issued.values())


@pytest.mark.parametrize("content", ["not json", '{"tokens": [{"name": "x"}]}', '{"tokens": [{"name": "x", '
                                     '"projects": ["*"], "sha256": "abc"}]}'])
def test_a_malformed_token_file_is_a_config_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(errors.ConfigError, match="token file"):
        TokenStore(path)


def test_duplicate_names_and_bad_limits_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    add_token(path, Scope("a"))
    with pytest.raises(errors.ConfigError, match="already"):
        add_token(path, Scope("a"))
    with pytest.raises(errors.ConfigError, match="max tasks"):
        add_token(path, Scope("b", max_tasks=0))
    assert len(json.loads(path.read_text())["tokens"]) == 1


def test_serve_refuses_a_non_loopback_address_without_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--host", "0.0.0.0"])
    assert exited.value.code == 2 and "without --tokens" in capsys.readouterr().err


@pytest.mark.parametrize("cls", [c for c in BY_NAME.values() if c is not errors.SandboxError])
def test_every_error_class_survives_the_round_trip(cls: type[errors.SandboxError]) -> None:
    err = cls("why") if cls is not errors.ValidationFailed else errors.ValidationFailed("why", ())
    back = error_from(status_of(err), {"error": cls.__name__, "detail": "why"})
    assert type(back) is cls and str(back) == "why"


def test_statuses_by_cause() -> None:
    assert [status_of(e) for e in (errors.TaskNotFound("x"), errors.AccessDenied("x"), errors.LimitExceeded("x"),
                                   errors.InvalidPath("x"), errors.EngineUnavailable("x"), errors.TaskExists("x"),
                                   errors.EngineError("x"), errors.BodyTooLarge("x"))] == \
        [404, 403, 429, 422, 503, 409, 500, 413]
    assert type(error_from(401, None)) is errors.AccessDenied
    assert type(error_from(413, "not json")) is errors.BodyTooLarge


# -- the broker's rules, on the in-memory backend ----------------------------------------------------

ALICE = Scope("alice", ("a-*",), max_tasks=2, max_timeout=10)
BOB = Scope("bob", ("b-*",))


def broker(create_delay: float = 0.0) -> TaskBroker:
    backend = FakeBackend()
    backend.create_delay = create_delay
    config = RuntimeConfig.load(env={}, installation_id="unit", pool_enabled=False, monitor_enabled=False)
    return TaskBroker(ContainerManager(config, backend=backend))


async def test_concurrent_creates_count_against_the_limit_while_under_way() -> None:
    tasks = broker(create_delay=0.05)
    results = await asyncio.gather(*(tasks.create(ALICE, f"t{i}", "a-1", "python") for i in range(5)),
                                   return_exceptions=True)
    assert sum(isinstance(r, errors.LimitExceeded) for r in results) == 3
    assert len(tasks.tasks(ALICE)) == 2
    await tasks.close()


async def test_an_unknown_language_is_said_before_the_task_limit() -> None:
    tasks = broker()
    for i in range(2):
        await tasks.create(ALICE, f"t{i}", "a-1", "python")
    with pytest.raises(errors.UnknownLanguage):
        await tasks.create(ALICE, "t2", "a-1", "cobol")
    with pytest.raises(errors.LimitExceeded):
        await tasks.create(ALICE, "t3", "a-1", "python")
    await tasks.close()


async def test_tasks_are_confined_to_their_scope() -> None:
    tasks = broker()
    await tasks.create(ALICE, "t", "a-1", "python")
    with pytest.raises(errors.TaskNotFound):
        tasks.info(BOB, "t")
    with pytest.raises(errors.TaskNotFound):
        await tasks.destroy(BOB, "t")
    with pytest.raises(errors.AccessDenied):
        await tasks.create(BOB, "u", "a-1", "python")
    with pytest.raises(errors.TaskExists):
        await tasks.create(BOB, "t", "b-1", "python")
    assert tasks.tasks(BOB) == [] and [i.task_id for i in tasks.tasks(ALICE)] == ["t"]
    await tasks.close()


async def test_a_task_the_manager_lost_stops_counting() -> None:
    tasks = broker()
    await tasks.create(ALICE, "t1", "a-1", "python")
    await tasks.create(ALICE, "t2", "a-1", "python")
    with pytest.raises(errors.LimitExceeded):
        await tasks.create(ALICE, "t3", "a-1", "python")
    await tasks.manager.destroy_container("t1")  # e.g. its container died and the manager dropped it
    await tasks.create(ALICE, "t3", "a-1", "python")
    assert sorted(i.task_id for i in tasks.tasks(ALICE)) == ["t2", "t3"]
    await tasks.close()


async def test_timeouts_are_capped_and_defaulted_by_the_scope() -> None:
    tasks = broker()
    assert tasks.timeout(ALICE, None) == 10 and tasks.timeout(ALICE, 5) == 5 and tasks.timeout(BOB, None) is None
    with pytest.raises(errors.LimitExceeded):
        tasks.timeout(ALICE, 11)
    await tasks.close()


async def test_groups_end_together_and_idle_ones_are_reaped() -> None:
    tasks = broker()
    await tasks.create(BOB, "g1", "b-1", "python", group="conn-1")
    await tasks.create(BOB, "g2", "b-1", "python", group="conn-1")
    await tasks.create(BOB, "other", "b-1", "python", group="conn-2")
    await tasks.create(BOB, "plain", "b-1", "python")
    assert await tasks.destroy_group("conn-1") == 2
    assert sorted(tasks.manager.tasks) == ["other", "plain"]
    assert await tasks.reap_idle(3600) == 0
    assert await tasks.reap_idle(0) == 1  # only grouped (MCP) tasks are reaped: "plain" is an HTTP caller's
    assert sorted(tasks.manager.tasks) == ["plain"]
    await tasks.close()
    assert tasks.manager.tasks == {}


async def test_answers_say_how_long_the_manager_took(tmp_path: Path) -> None:
    """`Server-Timing` carries the manager's share of a request: the client's total minus it is the HTTP path's."""
    import httpx2

    from runtime.server.auth import ServiceOptions
    from runtime.server.http_api import create_app

    path = tmp_path / "tokens.json"
    token = add_token(path, Scope("a", ("a-*",)))
    tasks = broker(create_delay=0.05)
    app = create_app(tasks, ServiceOptions(tokens=TokenStore(path), mcp=False, cleanup_interval=None))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://service",
                                  headers={"Authorization": f"Bearer {token}"}) as client:
        made = await client.post("/v1/tasks", json={"task_id": "t", "project_id": "a-1", "language": "python"})
        assert made.status_code == 201
        name, _, duration = made.headers["server-timing"].partition(";dur=")
        assert name == "sandbox" and 50 <= float(duration) < made.elapsed.total_seconds() * 1000 + 1
        ran = await client.post("/v1/tasks/t/exec", json={"command": "true"})
        assert ran.status_code == 200 and ran.headers["server-timing"].startswith("sandbox;dur=")
        refused = await client.get("/v1/tasks", headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401 and "server-timing" not in refused.headers  # the manager was not asked
    await tasks.close()


async def test_the_remote_client_reports_a_lost_service_as_engine_unavailable() -> None:
    """Every call, destroy included: the caller catches one class, whichever call met the dead connection."""
    import httpx2

    from runtime.remote import RemoteContainerManager

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    def missing(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(404, json={"error": "TaskNotFound", "detail": "no task 't'"})

    for call in ("destroy_container", "exec_command"):
        remote = RemoteContainerManager("http://service", client=httpx2.AsyncClient(
            base_url="http://service", transport=httpx2.MockTransport(refuse)))
        with pytest.raises(errors.EngineUnavailable):
            await (remote.destroy_container("t") if call == "destroy_container" else remote.exec_command("t", "true"))
        await remote.shutdown()
    gone = RemoteContainerManager("http://service", client=httpx2.AsyncClient(
        base_url="http://service", transport=httpx2.MockTransport(missing)))
    assert await gone.destroy_container("t") is False  # idempotent, as the library's
    await gone.shutdown()
