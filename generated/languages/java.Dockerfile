# DO NOT EDIT: generated from languages.yaml and templates/ by `nox -s render`.
# Java 17: toolchain and tools declared in languages.yaml.
ARG BASE_IMAGE=theappapp-base:bookworm
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER 0:0


RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      openjdk-17-jdk-headless \
      maven \
      libmaven-resources-plugin-java \
      libmaven-compiler-plugin-java \
      libmaven-jar-plugin-java \
      libsurefire-java \
 && rm -rf /var/lib/apt/lists/*

ENV JAVA_HOME="/usr/lib/jvm/java-17-openjdk-amd64" \
    PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    GRADLE_USER_HOME="/tmp/.gradle"

# gradle (optional: the image builds without it if the source is unreachable)
RUN theappapp-fetch gradle "https://services.gradle.org/distributions/gradle-8.14.3-bin.zip" sha256sum bd71102213493060956ec229d946beee57158dbd89d0e62b91bca0fa2c5f3531 /opt/gradle zip 1 true /usr/local/bin/gradle=bin/gradle
# The package indexes this image's tools use, as the tools report them under the build's mirror
# settings (languages.yaml `registries`): the hosts a task with egress="registries" may reach.
# After every install (a tool may come from a download), before `packages` points the tools at
# /workspace, with HOME in /tmp, so nothing lands in the image but the list.
# hadolint ignore=DL3059
RUN export HOME=/tmp/registries-home \
 && ( sed -n 's/^deb \([^ ]*\) .*/\1/p' /etc/apt/sources.list ) >> /etc/theappapp/registries \
 && ( unzip -p /usr/share/maven/lib/maven-model-builder-*.jar org/apache/maven/model/pom-4.0.0.xml | grep -o 'https\?://[^<]*' ) >> /etc/theappapp/registries \
 && rm -rf /tmp/registries-home && test -s /etc/theappapp/registries

# Installs (languages.yaml `packages`): the language's own install commands write below
# /workspace/.packages/java, in the project's volume, not into the read-only image. Set after the
# tools above are installed, so their build does not see it.
ENV GRADLE_USER_HOME="/workspace/.packages/java/gradle" \
    MAVEN_OPTS="-Dmaven.repo.local=/workspace/.packages/java/m2 -Daether.offline.protocols=file"
RUN printf '%s\n' '<settings><profiles><profile><id>debian</id>' '<repositories><repository><id>debian</id><url>file:///usr/share/maven-repo</url></repository></repositories>' '<pluginRepositories><pluginRepository><id>debian</id><url>file:///usr/share/maven-repo</url>' '</pluginRepository></pluginRepositories></profile></profiles>' '<activeProfiles><activeProfile>debian</activeProfile></activeProfiles></settings>' > /etc/maven/settings.xml

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
LABEL org.opencontainers.image.title="theappapp-java" \
      org.opencontainers.image.description="TheAppApp Sandbox: Java 17" \
      org.opencontainers.image.vendor="TheAppApp" \
      org.opencontainers.image.version="17" \
      org.theappapp.image.language="java" \
      org.theappapp.image.version="17" \
      org.theappapp.image.content-hash="${CONTENT_HASH}" \
      org.theappapp.image.agent="/opt/theappapp/sandbox-agent.pyc"
USER 1000:1000
WORKDIR /workspace
