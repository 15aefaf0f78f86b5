# DO NOT EDIT: generated from languages.yaml and templates/ by `nox -s render`.
# Node.js 20: toolchain and tools declared in languages.yaml.
ARG BASE_IMAGE=theappapp-base:trixie
FROM ${BASE_IMAGE}

ARG NPM_CONFIG_REGISTRY
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER 0:0


RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      nodejs \
      npm \
 && rm -rf /var/lib/apt/lists/*

ENV PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    NODE_PATH="/usr/local/lib/node_modules" \
    npm_config_cache="/tmp/.npm" \
    npm_config_update_notifier="false"

RUN npm install --global --no-fund --no-audit \
      "typescript@5.9.3" \
      "@types/node@20.19.43" \
      "jest@30.5.2" \
      "eslint@10.15.0" \
      "prettier@3.10.1" \
 && npm cache clean --force \
 && { [ -z "${NPM_CONFIG_REGISTRY:-}" ] || echo "registry=$NPM_CONFIG_REGISTRY" >> /etc/npmrc; }

# The package indexes this image's tools use, as the tools report them under the build's mirror
# settings (languages.yaml `registries`): the hosts a task with egress="registries" may reach.
# After every install (a tool may come from a download), before `packages` points the tools at
# /workspace, with HOME in /tmp, so nothing lands in the image but the list.
# hadolint ignore=DL3059
RUN export HOME=/tmp/registries-home \
 && ( sed -n 's/^deb \([^ ]*\) .*/\1/p' /etc/apt/sources.list ) >> /etc/theappapp/registries \
 && ( npm config get registry ) >> /etc/theappapp/registries \
 && rm -rf /tmp/registries-home && test -s /etc/theappapp/registries

# Installs (languages.yaml `packages`): the language's own install commands write below
# /workspace/.packages/node, in the project's volume, not into the read-only image. Set after the
# tools above are installed, so their build does not see it.
ENV npm_config_prefix="/workspace/.packages/node" \
    NODE_PATH="/workspace/.packages/node/lib/node_modules:${NODE_PATH}" \
    PATH="/workspace/.packages/node/bin:${PATH}"

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
LABEL org.opencontainers.image.title="theappapp-node" \
      org.opencontainers.image.description="TheAppApp Sandbox: Node.js 20" \
      org.opencontainers.image.vendor="TheAppApp" \
      org.opencontainers.image.version="20" \
      org.theappapp.image.language="node" \
      org.theappapp.image.version="20" \
      org.theappapp.image.content-hash="${CONTENT_HASH}" \
      org.theappapp.image.agent="/opt/theappapp/sandbox-agent.pyc"
USER 1000:1000
WORKDIR /workspace
