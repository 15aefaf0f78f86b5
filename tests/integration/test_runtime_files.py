"""write_files/read_file against the real engine: ownership, binary safety, and every way out refused."""

from __future__ import annotations

import pytest

from runtime.config import RuntimeConfig
from runtime.errors import FileMissing, InvalidPath
from runtime.registry import Language
from runtime.sandbox.manager import ContainerManager, Sandbox

pytestmark = pytest.mark.integration


async def test_written_files_round_trip_and_belong_to_the_sandbox_user(sandbox: Sandbox) -> None:
    every_byte = bytes(range(256)) * 4
    paths = await sandbox.write_files({"src/pkg/mod.py": "print('hé')\n", "data/blob.bin": every_byte, "top.txt": ""})
    assert sorted(paths) == ["data/blob.bin", "src/pkg/mod.py", "top.txt"]
    assert await sandbox.read_file("data/blob.bin") == every_byte
    assert await sandbox.read_file("./src//pkg/mod.py") == "print('hé')\n".encode()
    assert await sandbox.read_file("top.txt") == b""
    owners = await sandbox.exec("stat -c '%u:%g %a %n' src src/pkg src/pkg/mod.py data/blob.bin")
    assert owners.stdout.split("\n")[:4] == [
        "1000:1000 755 src", "1000:1000 755 src/pkg", "1000:1000 644 src/pkg/mod.py", "1000:1000 644 data/blob.bin"
    ]
    assert (await sandbox.exec("python3 src/pkg/mod.py")).stdout == "hé\n"
    await sandbox.write_files({"top.txt": "replaced"})  # overwrite in place
    assert await sandbox.read_file("top.txt") == b"replaced"
    # The user can still change and delete what was written.
    assert (await sandbox.exec("echo x >> top.txt && rm -r src && echo ok")).stdout == "ok\n"


@pytest.mark.parametrize("bad", ["../escape", "a/../../escape", "/etc/passwd", "a\0b", "a\nb", "", ".", "a/.."])
async def test_unsafe_names_are_rejected_before_touching_the_container(sandbox: Sandbox, bad: str) -> None:
    with pytest.raises(InvalidPath):
        await sandbox.write_files({bad: "x"})
    with pytest.raises(InvalidPath):
        await sandbox.read_file(bad)


async def test_symlinks_leading_out_of_the_workspace_are_refused(sandbox: Sandbox) -> None:
    await sandbox.exec(
        "ln -s /etc out_dir; ln -s /etc/passwd out_file; ln -s ../tmp up; echo in > real; ln -s real alias"
    )
    for name in ("out_dir/evil", "up/evil", "out_file"):
        with pytest.raises(InvalidPath, match="symlink"):
            await sandbox.write_files({name: "x"})
    for name in ("out_dir/passwd", "out_file", "up/anything"):
        with pytest.raises(InvalidPath, match="symlink"):
            await sandbox.read_file(name)
    assert (await sandbox.exec("ls /tmp; test -e /etc/evil || echo clean")).stdout == "clean\n"
    assert await sandbox.read_file("alias") == b"in\n"  # a link that stays inside is followed


async def test_oversize_and_odd_targets(
    runtime_config: RuntimeConfig, python_image: Language, unique: str
) -> None:
    small = ContainerManager(RuntimeConfig.load(network_name=runtime_config.network.name, max_archive_bytes=64 * 1024))
    await small.startup()
    try:
        async with small.task(f"t{unique}", f"p{unique}", "python") as sandbox:
            with pytest.raises(InvalidPath, match="limit"):
                await sandbox.write_files({"big.bin": b"x" * 100_000})
            await sandbox.exec("head -c 200000 /dev/zero > big.bin; mkdir adir")
            with pytest.raises(InvalidPath, match="limit"):
                await sandbox.read_file("big.bin")
            with pytest.raises(InvalidPath, match="directory"):
                await sandbox.read_file("adir")
            with pytest.raises(FileMissing):
                await sandbox.read_file("missing.txt")
            with pytest.raises(InvalidPath, match="twice"):
                await sandbox.write_files({"a.txt": "1", "./a.txt": "2"})
    finally:
        await small.shutdown()
