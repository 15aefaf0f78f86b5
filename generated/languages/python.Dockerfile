# DO NOT EDIT: generated from languages.yaml and templates/ by `nox -s render`.
# Python 3.11: toolchain and tools declared in languages.yaml.
ARG BASE_IMAGE=theappapp-base:bookworm
FROM ${BASE_IMAGE}

# Mirrors: pip and npm read these from the environment; unset means their own defaults.
ARG PIP_INDEX_URL
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER 0:0


RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 \
      python3-venv \
 && rm -rf /var/lib/apt/lists/*

ENV PATH="/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    PYTHONDONTWRITEBYTECODE="1" \
    PYTHONUNBUFFERED="1" \
    PIP_CACHE_DIR="/tmp/.cache/pip" \
    MYPY_CACHE_DIR="/tmp/.mypy_cache" \
    MPLCONFIGDIR="/tmp/.matplotlib"

RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
      "numpy==2.4.6" \
      "pandas==3.1.1" \
      "pytest==9.2.0" \
      "black==26.10.1" \
      "flake8==7.5.0" \
      "mypy==2.4.1" \
      "ipykernel==7.4.0" \
      "matplotlib==3.11.2" \
 && { [ -z "${PIP_INDEX_URL:-}" ] || printf '[global]\nindex-url = %s\n' "$PIP_INDEX_URL" > /etc/pip.conf; }

# The package indexes this image's tools use, as the tools report them under the build's mirror
# settings (languages.yaml `registries`): the hosts a task with egress="registries" may reach.
# After every install (a tool may come from a download), before `packages` points the tools at
# /workspace, with HOME in /tmp, so nothing lands in the image but the list.
# hadolint ignore=DL3059
RUN export HOME=/tmp/registries-home \
 && ( sed -n 's/^deb \([^ ]*\) .*/\1/p' /etc/apt/sources.list ) >> /etc/theappapp/registries \
 && ( python3 -c "from pip._internal.configuration import Configuration as C; from pip._internal.models.index import PyPI; c = C(isolated=False); c.load(); u = [v for k, v in c.items() if k.split('.')[-1] in ('index-url', 'extra-index-url')]; print(*(u or [PyPI.simple_url, PyPI.file_storage_domain]), sep=chr(10))" ) >> /etc/theappapp/registries \
 && rm -rf /tmp/registries-home && test -s /etc/theappapp/registries

# Installs (languages.yaml `packages`): the language's own install commands write below
# /workspace/.packages/python, in the project's volume, not into the read-only image. Set after the
# tools above are installed, so their build does not see it.
ENV PYTHONUSERBASE="/workspace/.packages/python" \
    PATH="/workspace/.packages/python/bin:${PATH}"
RUN rm /opt/venv/pyvenv.cfg /usr/lib/python3.11/EXTERNALLY-MANAGED && mkdir -p /usr/lib/python3/dist-packages && echo /opt/venv/lib/python3.11/site-packages > /usr/lib/python3/dist-packages/theappapp-tools.pth && /opt/venv/bin/python3 -c 'import numpy, pandas, pytest'

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
LABEL org.opencontainers.image.title="theappapp-python" \
      org.opencontainers.image.description="TheAppApp Sandbox: Python 3.11" \
      org.opencontainers.image.vendor="TheAppApp" \
      org.opencontainers.image.version="3.11" \
      org.theappapp.image.language="python" \
      org.theappapp.image.version="3.11" \
      org.theappapp.image.content-hash="${CONTENT_HASH}" \
      org.theappapp.image.agent="/opt/theappapp/sandbox-agent.pyc"
USER 1000:1000
WORKDIR /workspace
