"""Make `debian:<suite>-slim` exist: present, pulled, or bootstrapped from a Debian mirror.

No image registry is reachable on air-gapped hosts, but a Debian mirror is: mmdebstrap
builds the same minimal root filesystem, and `docker import` turns it into the image
the base Dockerfile starts FROM. The Dockerfiles stay unchanged either way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import docker
from docker.errors import APIError, ImageNotFound

# What makes the official images "slim": no docs, man pages or translations.
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)


class BootstrapError(RuntimeError):
    pass


def ensure_debian_image(
    client: docker.DockerClient,
    image: str,
    suite: str,
    mirror: str | None,
    log_file: Path,
    say: Callable[[str], None],
) -> str:
    """Return how the image was obtained: 'present', 'pulled' or 'bootstrapped'."""
    try:
        client.images.get(image)
        return "present"
    except ImageNotFound:
        pass
    try:
        client.images.pull(image)
        return "pulled"
    except APIError:
        say(f"{image} cannot be pulled; bootstrapping it from {mirror or 'the default Debian mirror'} with mmdebstrap")
    _bootstrap(client, image, suite, mirror, log_file, say)
    return "bootstrapped"


_INSTALL_LOCK = threading.Lock()  # the two bases bootstrap in parallel: one apt-get at a time


def install_mmdebstrap(say: Callable[[str], None], log_file: Path) -> None:
    """As root on Debian: apt-get install mmdebstrap (the newcomer's first command needs nothing else)."""
    with _INSTALL_LOCK:
        if shutil.which("mmdebstrap") is None:
            _install(say, log_file)


def _install(say: Callable[[str], None], log_file: Path) -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BootstrapError("mmdebstrap is not installed: apt-get install mmdebstrap (as root)")
    say("installing mmdebstrap from Debian (it bootstraps the base images from a Debian mirror)")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with log_file.open("w") as log:
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "mmdebstrap"]):
            if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode:
                raise BootstrapError(f"{' '.join(command)} failed; log: {log_file}")


def _bootstrap(
    client: docker.DockerClient, image: str, suite: str, mirror: str | None, log_file: Path,
    say: Callable[[str], None],
) -> None:
    if shutil.which("mmdebstrap") is None:
        install_mmdebstrap(say, log_file.with_name("install-mmdebstrap.log"))
    with tempfile.TemporaryDirectory(prefix="theappapp-bootstrap-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        command = ["mmdebstrap", "--variant=minbase", *(f"--dpkgopt={o}" for o in SLIM_DPKG_OPTIONS)]
        command += [suite, str(rootfs), *([mirror] if mirror else [])]  # none: mmdebstrap's default
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("w") as log:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        # Import only a complete root filesystem: an empty stream would import as a 0-byte image.
        if done.returncode != 0 or not rootfs.is_file() or rootfs.stat().st_size == 0:
            raise BootstrapError(f"mmdebstrap {suite} failed (exit {done.returncode}); log: {log_file}")
        # The docker CLI streams the tarball; docker-py's import_image_from_stream mis-frames it.
        imported = subprocess.run(
            ["docker", "import", "--change", 'CMD ["bash"]', str(rootfs), image],
            capture_output=True, text=True, check=False,
        )
        if imported.returncode != 0:
            raise BootstrapError(f"docker import of {image} failed: {imported.stderr.strip()}")
