# DO NOT EDIT: generated from languages.yaml and templates/ by `nox -s render`.
# Ruby 3.3: toolchain and tools declared in languages.yaml.
ARG BASE_IMAGE=theappapp-base:trixie
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER 0:0


RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ruby \
      ruby-dev \
      bundler \
      ruby-rspec \
      rails \
      ruby-sqlite3 \
      puma \
      ruby-bootsnap \
 && rm -rf /var/lib/apt/lists/*

ENV PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    GEM_HOME="/tmp/.gem" \
    GEM_PATH="/tmp/.gem:/usr/lib/ruby/gems/3.3.0:/usr/share/rubygems-integration/all:/usr/lib/x86_64-linux-gnu/rubygems-integration/3.3.0" \
    BUNDLE_USER_HOME="/tmp/.bundle" \
    BOOTSNAP_CACHE_DIR="/tmp/.bootsnap"

# Last, so a new content hash does not invalidate the cached layers above.
ARG CONTENT_HASH=unknown
LABEL org.opencontainers.image.title="theappapp-ruby" \
      org.opencontainers.image.description="TheAppApp Sandbox: Ruby 3.3" \
      org.opencontainers.image.vendor="TheAppApp" \
      org.opencontainers.image.version="3.3" \
      org.theappapp.image.language="ruby" \
      org.theappapp.image.version="3.3" \
      org.theappapp.image.content-hash="${CONTENT_HASH}"
USER 1000:1000
WORKDIR /workspace
