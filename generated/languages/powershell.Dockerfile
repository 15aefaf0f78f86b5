# DO NOT EDIT: generated from languages.yaml and templates/ by `nox -s render`.
# PowerShell 7.4: toolchain and tools declared in languages.yaml.
ARG BASE_IMAGE=theappapp-base:bookworm
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER 0:0


RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libicu72 \
      libssl3 \
      zlib1g \
      libgssapi-krb5-2 \
      libstdc++6 \
      less \
 && rm -rf /var/lib/apt/lists/*

ENV PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    POWERSHELL_TELEMETRY_OPTOUT="1" \
    POWERSHELL_UPDATECHECK="Off" \
    DOTNET_CLI_TELEMETRY_OPTOUT="1" \
    XDG_CONFIG_HOME="/tmp/.config" \
    XDG_CACHE_HOME="/tmp/.cache" \
    XDG_DATA_HOME="/tmp/.local/share"

# pwsh
RUN theappapp-fetch pwsh "https://github.com/PowerShell/PowerShell/releases/download/v7.4.6/powershell-7.4.6-linux-x64.tar.gz" sha256sum 6f6015203c47806c5cc444c19d8ed019695e610fbd948154264bf9ca8e157561 /opt/microsoft/powershell/7 tar.gz 0 false /usr/local/bin/pwsh=pwsh
# The package indexes this image's tools use, as the tools report them under the build's mirror
# settings (languages.yaml `registries`): the hosts a task with egress="registries" may reach.
# After every install (a tool may come from a download), before `packages` points the tools at
# /workspace, with HOME in /tmp, so nothing lands in the image but the list.
# hadolint ignore=DL3059
RUN export HOME=/tmp/registries-home \
 && ( sed -n 's/^deb \([^ ]*\) .*/\1/p' /etc/apt/sources.list ) >> /etc/theappapp/registries \
 && ( pwsh -NoProfile -Command '(Get-PSRepository).SourceLocation' ) >> /etc/theappapp/registries \
 && rm -rf /tmp/registries-home && test -s /etc/theappapp/registries

# The sandbox agent: the container's main process, run with `python3 -I -S` (the base's Python, no site-packages) from
# this root-owned path (the root is read-only at run time); the manager talks to it on its stdio.
# It runs as bytecode compiled here by that same Python: a script run from source is compiled at
# every start. Late in the image, so a new agent rebuilds these layers only. And no setuid or setgid
# programs (CIS Docker Benchmark 4.8): inert under no-new-privileges, but no reason to ship them.
COPY sandbox-agent.py /opt/theappapp/sandbox-agent.py
RUN /usr/bin/python3 -I -c "import py_compile; py_compile.compile('/opt/theappapp/sandbox-agent.py', cfile='/opt/theappapp/sandbox-agent.pyc', doraise=True)" \
 && chmod 0755 /opt/theappapp && chmod 0644 /opt/theappapp/sandbox-agent.py /opt/theappapp/sandbox-agent.pyc && /usr/bin/python3 -I -S /opt/theappapp/sandbox-agent.pyc --version \
 && find / -xdev -type f -perm /6000 -exec chmod ug-s {} +
# `docker ps` shows a sandbox whose agent stopped answering as unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/bin/python3", "-I", "-S", "/opt/theappapp/sandbox-agent.pyc", "health"]

# Last, so a new content hash does not invalidate the cached layers above.
ARG CONTENT_HASH=unknown
LABEL org.opencontainers.image.title="theappapp-powershell" \
      org.opencontainers.image.description="TheAppApp Sandbox: PowerShell 7.4" \
      org.opencontainers.image.vendor="TheAppApp" \
      org.opencontainers.image.version="7.4" \
      org.theappapp.image.language="powershell" \
      org.theappapp.image.version="7.4" \
      org.theappapp.image.content-hash="${CONTENT_HASH}" \
      org.theappapp.image.agent="/opt/theappapp/sandbox-agent.pyc"
USER 1000:1000
WORKDIR /workspace
