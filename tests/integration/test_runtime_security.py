"""Every hardened default, tried as an attack from inside a sandbox."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
import time
from collections.abc import Iterator

import docker
import pytest

from runtime.config import RuntimeConfig
from runtime.errors import SandboxError, SandboxFailure
from runtime.registry import Language
from runtime.sandbox.manager import ContainerManager, Sandbox
from tests.integration.conftest import AGENT, IDLE_PROCESSES, NETWORK, RUNTIME_IDS, RUNTIMES, runtime_or_skip

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


@pytest.fixture(params=RUNTIMES, ids=RUNTIME_IDS)
def runtime_config(request: pytest.FixtureRequest, docker_client: docker.DockerClient) -> RuntimeConfig:
    """Every attack here, under the engine's default OCI runtime and again under crun."""
    return RuntimeConfig.load(network_name=NETWORK, runtime=runtime_or_skip(docker_client, request.param))


def _inspect(client: docker.DockerClient, sandbox: Sandbox) -> dict[str, object]:
    return dict(client.api.inspect_container(sandbox.info.container_id))


async def test_the_sandbox_runs_under_the_oci_runtime_asked_for(
    runtime_config: RuntimeConfig, sandbox: Sandbox, docker_client: docker.DockerClient
) -> None:
    wanted = runtime_config.engine.runtime or docker_client.info()["DefaultRuntime"]
    assert _inspect(docker_client, sandbox)["HostConfig"]["Runtime"] == wanted  # type: ignore[index]


async def test_commands_run_as_the_unprivileged_sandbox_user(sandbox: Sandbox) -> None:
    result = await sandbox.exec("id -u; id -g; whoami; su -c id root </dev/null")
    assert result.stdout.splitlines()[:3] == ["1000", "1000", "sandbox"]
    assert result.exit_code != 0  # no password, no root


async def test_no_capabilities_at_all(sandbox: Sandbox) -> None:
    status = await sandbox.exec("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status")
    caps = dict(line.split(":\t") for line in status.stdout.splitlines())
    assert set(caps.values()) == {"0000000000000000"}, caps
    # CAP_CHOWN, CAP_NET_RAW, CAP_MKNOD, CAP_SYS_ADMIN in action: all refused.
    attack = await sandbox.exec(
        "touch f; chown 0:0 f && echo chown-ok; "
        "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)' 2>/dev/null && echo raw-ok; "
        "mknod /tmp/dev c 1 3 2>/dev/null && echo mknod-ok; "
        "mount -t tmpfs none /tmp 2>/dev/null && echo mount-ok; unshare -r true 2>/dev/null && echo userns-ok"
    )
    assert "-ok" not in attack.stdout


@pytest.fixture
def setgid_image(docker_client: docker.DockerClient, python_image: Language) -> Iterator[str]:
    """The python image with chage's setgid-shadow bit put back: a program the images no longer ship
    (they strip every setuid and setgid bit), to try no-new-privileges on its own."""
    tag = f"setgid-{os.urandom(4).hex()}"
    dockerfile = "FROM theappapp-python:latest\nUSER 0:0\nRUN chmod g+s /usr/bin/chage\nUSER 1000:1000\n"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"theappapp-python:{tag}", rm=True)
    yield tag
    docker_client.images.remove(f"theappapp-python:{tag}", force=True)


async def test_setgid_escalation_is_blocked_by_no_new_privileges(
    runtime_config: RuntimeConfig, setgid_image: str, unique: str
) -> None:
    # chage is setgid shadow: without no-new-privileges it reads /etc/shadow as the sandbox user.
    attack = "chage -l sandbox >/dev/null 2>&1 && echo ESCALATED; grep NoNewPrivs /proc/self/status"
    strict = ContainerManager(runtime_config.replace(image_tag=setgid_image, pool_enabled=False))
    # The control proves the attack is real: with the default switched off, it succeeds.
    loose = ContainerManager(runtime_config.replace(image_tag=setgid_image, pool_enabled=False,
                                                    no_new_privileges=False))
    try:
        async with strict.task(f"t{unique}", f"p{unique}", "python") as sandbox:
            result = await sandbox.exec(attack)
            assert "ESCALATED" not in result.stdout and "NoNewPrivs:\t1" in result.stdout
        async with loose.task(f"c{unique}", f"p{unique}", "python") as control:
            assert "ESCALATED" in (await control.exec(attack)).stdout
    finally:
        await strict.shutdown()
        await loose.shutdown()


async def test_the_shipped_images_give_the_setgid_attack_nothing_to_use(
    runtime_config: RuntimeConfig, python_image: Language, unique: str
) -> None:
    loose = ContainerManager(runtime_config.replace(pool_enabled=False, no_new_privileges=False))
    try:
        async with loose.task(f"s{unique}", f"p{unique}", "python") as box:
            result = await box.exec("chage -l sandbox >/dev/null 2>&1 && echo ESCALATED; stat -c %A /usr/bin/chage")
            assert "ESCALATED" not in result.stdout and "s" not in result.stdout.split()[-1]
    finally:
        await loose.shutdown()


async def test_root_filesystem_is_read_only_and_tmpfs_are_sized_and_owned(sandbox: Sandbox) -> None:
    attack = await sandbox.exec(
        "for p in /x /etc/x /usr/bin/x /opt/venv/x; do touch $p 2>/dev/null && echo wrote $p; done; "
        "echo ok > /tmp/t && echo ok > $HOME/h && echo ok > /workspace/w && echo writable"
    )
    assert attack.stdout == "writable\n"
    sizes = await sandbox.exec(
        "df -B1 --output=size,target /tmp /home/sandbox | tail -n 2; stat -c '%a %u:%g %n' /tmp; stat -c '%u:%g %n' ~"
    )
    lines = sizes.stdout.splitlines()
    assert [int(x.split()[0]) for x in lines[:2]] == [256 * MiB, 128 * MiB]
    assert lines[2:] == ["1777 0:0 /tmp", "1000:1000 /home/sandbox"]
    fill = await sandbox.exec("head -c 200M /dev/zero > $HOME/fill; echo rc=$?; rm -f $HOME/fill")
    assert "No space left" in fill.stderr and "rc=1" in fill.stdout


async def test_fork_bomb_is_bounded_by_the_pids_limit_and_killed_on_timeout(
    manager: ContainerManager, sandbox: Sandbox
) -> None:
    limit = await sandbox.exec("cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max")
    assert limit.stdout.strip() == "256"
    t0 = time.monotonic()
    bomb = await sandbox.exec("bomb() { bomb | bomb & }; bomb; sleep 60", timeout=3)
    assert bomb.timed_out and time.monotonic() - t0 < 3 + 2
    cgroup = manager.backend._target(sandbox.info.container_id).cgroup
    if cgroup is not None:
        usage = cgroup.usage()
        # It really bombed, and hit the wall: forks stop at 256; only processes moved into the
        # cgroup by the engine (execs, including the killer) are charged without the check.
        assert usage.peak_pids is not None and 200 < usage.peak_pids <= 256 + 16
    # Everything alive except init and the keeper is gone (the listing's own pipeline aside).
    left = await sandbox.exec("ps -eo stat=,args= | grep -v -e '^Z' -e 'ps -eo' -e grep -e 'sandbox-agent.pyc health$'")
    assert left.exit_code == 0, left.stderr  # the container survived and is usable
    assert [line.split(None, 1)[1] for line in left.stdout.splitlines()] == IDLE_PROCESSES


async def test_memory_limit_has_no_swap_and_cpu_is_limited(
    sandbox: Sandbox, docker_client: docker.DockerClient
) -> None:
    host = _inspect(docker_client, sandbox)["HostConfig"]
    assert isinstance(host, dict)
    assert host["Memory"] == host["MemorySwap"] == 1024 * MiB  # python's registry entry: 1g
    assert host["NanoCpus"] == 1_000_000_000
    # Two busy loops for 2 s use at most one CPU's worth of time.
    burn = await sandbox.exec(
        "u0=$(cat /sys/fs/cgroup/cpuacct/cpuacct.usage); "
        "timeout 2 sh -c 'while :; do :; done' & timeout 2 sh -c 'while :; do :; done' & wait; "
        "u1=$(cat /sys/fs/cgroup/cpuacct/cpuacct.usage); echo $(( (u1 - u0) / 1000000 ))"
    )
    if burn.exit_code != 0 or not burn.stdout.strip().isdigit():
        pytest.skip(f"cpuacct not readable inside the container: {burn.stderr.strip()}")
    assert int(burn.stdout) < 2000 * 1.2  # ms of CPU in ~2 s of wall time


async def test_init_reaps_orphaned_zombies(sandbox: Sandbox) -> None:
    await sandbox.exec("for i in $(seq 20); do (sh -c 'sleep 0.2' &) ; done")
    time.sleep(1.0)
    result = await sandbox.exec("cat /proc/1/comm; ps -eo stat= | grep -c '^Z' || true")
    assert result.stdout.split() == ["docker-init", "0"]


async def test_no_privileged_mode_host_namespaces_devices_or_docker_socket(
    sandbox: Sandbox, docker_client: docker.DockerClient
) -> None:
    host = _inspect(docker_client, sandbox)["HostConfig"]
    assert isinstance(host, dict)
    assert host["Privileged"] is False and not host["Devices"] and host["IpcMode"] == "private"
    assert host["PidMode"] == "" and host["UsernsMode"] == "" and host["NetworkMode"] not in ("host", "default")
    attack = await sandbox.exec(
        "ls /dev; ls -d /proc/[0-9]* | wc -l; test -e /var/run/docker.sock && echo SOCKET; "
        "find / -xdev -name '*.sock' 2>/dev/null; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
        "awk '$2 !~ \"^/(proc|dev|sys)\" {print $2}' /proc/mounts | sort -u"
    )
    lines = attack.stdout.splitlines()
    devices = set(lines[: lines.index(next(x for x in lines if x.strip().isdigit()))])
    assert devices <= {"console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm",
                       "stderr", "stdin", "stdout", "tty", "urandom", "zero"}
    assert "SOCKET" not in lines and not any(x.endswith(".sock") for x in lines)
    assert f"/sbin/docker-init -- {AGENT} " in lines  # our own pid namespace
    mounts = set(lines[lines.index(f"/sbin/docker-init -- {AGENT} ") + 1 :])
    allowed = {"/", "/tmp", "/home/sandbox", "/workspace", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}
    assert mounts - allowed <= {"/sbin/docker-init", "/usr/sbin/docker-init"}  # init is bind-mounted


async def test_nothing_written_on_purpose_fills_a_log_and_garbage_breaks_only_the_agents_stream(
    sandbox: Sandbox, docker_client: docker.DockerClient
) -> None:
    attrs = _inspect(docker_client, sandbox)
    host = attrs["HostConfig"]
    assert isinstance(host, dict)
    # The main process's stdout carries the agent's protocol: the engine keeps no log of it.
    assert host["LogConfig"]["Type"] == "none" and not attrs["LogPath"]
    # PID 1 belongs to the sandbox user, so the container's stdout is writable: flood it (5 MiB).
    with pytest.raises(SandboxFailure, match="stopped answering"):  # its own task's channel, nothing else
        await sandbox.exec("for i in $(seq 80); do head -c 65536 /dev/zero | tr '\\0' x > /proc/1/fd/1; done")
    after = await sandbox.exec("echo still usable")  # served by the engine's exec from then on
    assert after.stdout == "still usable\n" and after.exit_code == 0
    assert not _inspect(docker_client, sandbox)["LogPath"]


@contextlib.contextmanager
def _listener(host: str) -> Iterator[int]:
    """A TCP server on this host that answers 'reached' to anyone who connects."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = server.accept()
                conn.sendall(b"reached\n")
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


_PROBE = (
    "python3 - <<'EOF'\nimport socket, sys\nfor host in sys.argv[1:] or {hosts}:\n"
    "    try:\n        s = socket.create_connection((host, {port}), timeout=1.5)\n"
    "        print('OPEN', host, s.recv(16))\n    except OSError as e:\n        print('closed', host, e)\nEOF"
)


async def test_default_network_reaches_neither_the_host_nor_other_sandboxes(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    status = manager.network_status
    if status is None or not status.host_blocked:
        pytest.skip(f"the firewall could not be installed here: {status.problems if status else 'no status'}")
    gateway = docker_client.api.inspect_network(manager.config.network.name)["IPAM"]["Config"][0]["Gateway"]
    addresses = {gateway, "172.17.0.1"} | set(os.popen("hostname -I").read().split())  # every host address
    with _listener("0.0.0.0") as port:
        async with manager.task(f"a{unique}", f"p{unique}", "python") as a, \
                manager.task(f"b{unique}", f"p{unique}", "python") as b:
            await b.exec("nohup python3 -m http.server 8000 >/dev/null 2>&1 & sleep 1")
            b_ip = (await b.exec("hostname -i")).stdout.split()[0]
            probe = _PROBE.format(hosts=sorted(addresses), port=port)
            host_result = await a.exec(probe, timeout=30)
            assert "OPEN" not in host_result.stdout, host_result.stdout
            assert host_result.stdout.count("closed") == len(addresses)
            peer = await a.exec(f"curl -s -m 2 http://{b_ip}:8000/ >/dev/null && echo OPEN || echo closed")
            assert peer.stdout.strip() == "closed"
            # Control: the server is up (its own sandbox reaches it), so "closed" above is the isolation.
            own = await b.exec("curl -s -m 2 http://127.0.0.1:8000/ >/dev/null && echo OPEN")
            assert own.stdout.strip() == "OPEN"


async def test_unknown_oci_runtime_is_refused_at_startup(python_image: Language) -> None:
    mgr = ContainerManager(RuntimeConfig.load(network_name=NETWORK, runtime="no-such-runtime"))
    with pytest.raises(SandboxError, match="no-such-runtime"):
        await mgr.startup()
    mgr.backend.close()
