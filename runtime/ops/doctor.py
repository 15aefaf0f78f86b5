"""`theappapp-sandbox doctor`: one PASS / WARN / FAIL line per thing the sandbox needs, with the fix.

FAIL means sandboxes cannot run safely (no engine, a configured runtime missing, the
network not isolated, a full disk); WARN means something is limited (a language's image
not built, little disk left). Checks only look: nothing is created or changed. The
engine's own lines (its version's known faults, the network policy, disk) come from the
backend (`Backend.diagnose`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable

from runtime import labels
from runtime.backends import open_backend
from runtime.backends.base import Backend, Diagnosis, EngineFacts
from runtime.config import RuntimeConfig
from runtime.errors import SandboxError
from runtime.registry import Registry, get_registry

Check = Diagnosis  # the name the CLI and tests use
ENGINE_FIX = (
    "start the engine (`bash scripts/start-docker-engine.sh`, or `systemctl start docker`), "
    "or point DOCKER_HOST at one"
)


async def run_checks(
    config: RuntimeConfig,
    registry_loader: Callable[[], Registry] | None = None,
    backend: Backend | None = None,
) -> AsyncIterator[Check]:
    """Each check as it completes (so the CLI prints progress line by line)."""
    try:
        registry: Registry | None = (registry_loader or (lambda: get_registry(config.engine.registry_path)))()
        assert registry is not None
        yield Check("PASS", "registry", f"{len(registry.languages)} languages: {', '.join(registry.languages)}")
    except SandboxError as err:
        registry = None
        yield Check("FAIL", "registry", str(err), "fix languages.yaml, or set THEAPPAPP_REGISTRY to a valid one")
    engine = backend or open_backend(config)
    try:
        try:
            facts = await engine.probe()
        except SandboxError as err:
            yield Check("FAIL", "engine", f"not reachable: {err}", ENGINE_FIX)
            yield Check("FAIL", "remaining checks", "skipped: they need the engine", ENGINE_FIX)
            return
        own = await engine.diagnose(config.network.name, config.network.mode)
        for check in own[:1]:  # the engine line first, then what runs on it
            yield check
        if registry is not None:
            async for check in images(engine, registry, config):
                yield check
        yield runtimes(facts, config)
        for check in own[1:]:
            yield check
    finally:
        if backend is None:
            engine.close()


async def images(backend: Backend, registry: Registry, config: RuntimeConfig) -> AsyncIterator[Check]:
    for name, lang in registry.languages.items():
        ref = f"{lang.image}:{config.engine.image_tag}"
        image = await backend.image(ref)
        if image is None:
            yield Check("WARN", f"image {name}", f"{ref} is not built; {lang.display_name} cannot run",
                        f"nox -s build -- {name}")
            continue
        size = image.size / 1024**2
        missing = image.labels.get(labels.IMAGE_MISSING_OPTIONAL)
        if missing:
            yield Check("WARN", f"image {name}", f"{ref} ({size:.0f} MiB) was built without: {missing}",
                        f"make the sources reachable and rebuild: nox -s build -- {name}")
        else:
            yield Check("PASS", f"image {name}", f"{ref} ({size:.0f} MiB)")
    for name, service in registry.services.items():
        ref = f"{service.image}:{config.engine.image_tag}"
        image = await backend.image(ref)
        if image is None:
            yield Check("WARN", f"image {name}", f"{ref} is not built; {service.display_name} cannot run "
                        "(network='allowlist' tasks need it)", f"nox -s build -- {name}")
        elif os.geteuid() != 0:
            yield Check("WARN", f"image {name}", f"{ref} is built, but allowlists need root here (firewall rules and "
                        "the proxy's policy directory)", "run the manager as root")
        else:
            yield Check("PASS", f"image {name}", f"{ref} ({image.size / 1024**2:.0f} MiB)")


def runtimes(facts: EngineFacts, config: RuntimeConfig) -> Check:
    available = sorted(facts.runtimes)
    wanted = config.engine.runtime or facts.default_runtime
    listed = f"{', '.join(available)} (default {facts.default_runtime})"
    if wanted not in available:
        return Check("FAIL", "OCI runtime", f"{wanted!r} is configured but the engine has only {listed}",
                     f"install {wanted} and register it under \"runtimes\" in /etc/docker/daemon.json, "
                     "restart the engine; or unset THEAPPAPP_RUNTIME")
    extra = "" if "runsc" in available else "; gVisor (runsc) not installed, optional stronger isolation"
    if wanted == "runc":  # the same sandbox from crun costs the host less CPU to start and remove
        extra += ("; crun is registered: THEAPPAPP_RUNTIME=crun starts sandboxes on less CPU" if "crun" in available
                  else "; crun not registered (scripts/enable-crun.sh): sandboxes would start on less CPU")
    return Check("PASS", "OCI runtime", f"using {wanted}; available: {listed}{extra}")
