# DO NOT EDIT: generated from languages.yaml and templates/ by `nox -s render`.
# Base image for suite bookworm: what every sandbox needs, shared by every language image.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# Empty: keep the mirror the FROM image already uses.
ARG APT_MIRROR=
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# One sources file we own, so the mirror (APT_MIRROR, else the one the image came with)
# serves every suite, extra suites and point-release updates included. The security archive
# the image came with stays: a bootstrapped image already holds its updates (libssl, say),
# and a -dev package built against them is only found there.
# man1 must exist (even in a slim image) for the JDK's update-alternatives.
RUN sources=$({ cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true; }) \
 && found=$(grep -oE 'https?://[^ ]+' <<<"$sources" | grep -v security | head -n 1 || true) \
 && security=$(grep -oE 'https?://[^ ]+security[^ ]*' <<<"$sources" | head -n 1 || true) \
 && mirror="${APT_MIRROR:-$found}" \
 && : "${mirror:?no apt mirror found in the image: pass --apt-mirror}" \
 && rm -f /etc/apt/sources.list.d/* \
 && printf 'deb %s %s main\n' \
      "${mirror}" bookworm \
      "${mirror}" bookworm-updates \
      "${mirror}" bookworm-backports \
      > /etc/apt/sources.list \
 && if [ -n "$security" ]; then \
      printf 'deb %s bookworm-security main\n' "$security" >> /etc/apt/sources.list; fi \
 && mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      bash \
      coreutils \
      procps \
      git \
      curl \
      unzip \
      xz-utils \
      python3 \
 && rm -rf /var/lib/apt/lists/*

# Extra CA certificates (a TLS-intercepting proxy's): the build passes zero or more *.crt here.
COPY ca/ /usr/local/share/ca-certificates/theappapp/
RUN update-ca-certificates --fresh >/dev/null

# Downloads declared in languages.yaml go through this: checksum verified, unreachable reported.
COPY theappapp-fetch /usr/local/bin/theappapp-fetch

RUN groupadd --gid 1000 sandbox \
 && useradd --uid 1000 --gid 1000 --home-dir /home/sandbox --create-home --shell /bin/bash sandbox \
 && mkdir -p /workspace /etc/theappapp \
 && chown 1000:1000 /workspace \
 && chmod 0755 /usr/local/bin/theappapp-fetch \
 && find / -xdev -type f -perm /6000 -exec chmod ug-s {} +

# Every HTTPS client reads the system bundle, which holds the extra CAs too.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    HOME=/home/sandbox \
    LANG=C.UTF-8

# Last, so a new content hash does not invalidate the cached layers above.
ARG CONTENT_HASH=unknown
LABEL org.opencontainers.image.title="theappapp-base" \
      org.opencontainers.image.description="TheAppApp Sandbox base image (bookworm)" \
      org.opencontainers.image.vendor="TheAppApp" \
      org.opencontainers.image.version="bookworm" \
      org.theappapp.image.language="base" \
      org.theappapp.image.version="bookworm" \
      org.theappapp.image.content-hash="${CONTENT_HASH}"
USER 1000:1000
WORKDIR /workspace
CMD ["bash"]
