# DO NOT EDIT: generated from languages.yaml and templates/ by `nox -s render`.
# .NET 8 (C#) 8.0: toolchain and tools declared in languages.yaml.
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
 && rm -rf /var/lib/apt/lists/*

ENV PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    DOTNET_ROOT="/usr/share/dotnet" \
    DOTNET_CLI_TELEMETRY_OPTOUT="1" \
    DOTNET_NOLOGO="1" \
    DOTNET_SKIP_FIRST_TIME_EXPERIENCE="1" \
    DOTNET_CLI_HOME="/tmp/.dotnet-home" \
    NUGET_PACKAGES="/tmp/.nuget/packages"

# dotnet-sdk
RUN theappapp-fetch dotnet-sdk "https://builds.dotnet.microsoft.com/dotnet/Sdk/8.0.409/dotnet-sdk-8.0.409-linux-x64.tar.gz" sha512sum fb855ff04db010594bb7da884e3a86da94e26a43cc5d858724cc0d3d8ee31f6d64eb09558bad3dba540a25082219ba41aa7feb40d1c4f3468c3720ea4c552fda /usr/share/dotnet tar.gz 0 false /usr/bin/dotnet=dotnet
# The package indexes this image's tools use, as the tools report them under the build's mirror
# settings (languages.yaml `registries`): the hosts a task with egress="registries" may reach.
# After every install (a tool may come from a download), before `packages` points the tools at
# /workspace, with HOME in /tmp, so nothing lands in the image but the list.
# hadolint ignore=DL3059
RUN export HOME=/tmp/registries-home \
 && ( sed -n 's/^deb \([^ ]*\) .*/\1/p' /etc/apt/sources.list ) >> /etc/theappapp/registries \
 && ( dotnet nuget list source --format short ) >> /etc/theappapp/registries \
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
LABEL org.opencontainers.image.title="theappapp-csharp" \
      org.opencontainers.image.description="TheAppApp Sandbox: .NET 8 (C#) 8.0" \
      org.opencontainers.image.vendor="TheAppApp" \
      org.opencontainers.image.version="8.0" \
      org.theappapp.image.language="csharp" \
      org.theappapp.image.version="8.0" \
      org.theappapp.image.content-hash="${CONTENT_HASH}" \
      org.theappapp.image.agent="/opt/theappapp/sandbox-agent.pyc"
USER 1000:1000
WORKDIR /workspace
