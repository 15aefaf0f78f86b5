# DO NOT EDIT: generated from languages.yaml and templates/ by `nox -s render`.
# PHP 8.2: toolchain and tools declared in languages.yaml.
ARG BASE_IMAGE=theappapp-base:bookworm
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER 0:0


RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      php8.2-cli \
      php8.2-mbstring \
      php8.2-xml \
      php8.2-curl \
      php8.2-zip \
      composer \
 && rm -rf /var/lib/apt/lists/*

ENV PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    COMPOSER_HOME="/tmp/.composer" \
    COMPOSER_CACHE_DIR="/tmp/.composer/cache"

# Last, so a new content hash does not invalidate the cached layers above.
ARG CONTENT_HASH=unknown
LABEL org.opencontainers.image.title="theappapp-php" \
      org.opencontainers.image.description="TheAppApp Sandbox: PHP 8.2" \
      org.opencontainers.image.vendor="TheAppApp" \
      org.opencontainers.image.version="8.2" \
      org.theappapp.image.language="php" \
      org.theappapp.image.version="8.2" \
      org.theappapp.image.content-hash="${CONTENT_HASH}"
USER 1000:1000
WORKDIR /workspace
