# DO NOT EDIT: generated from languages.yaml and templates/ by `nox -s render`.
# Egress proxy (Squid) 5.7: a service the runtime runs beside the sandboxes
# (languages.yaml `services`), built on the same base as the language images.
ARG BASE_IMAGE=theappapp-base:bookworm
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER 0:0

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      squid-openssl \
      openssl \
 && rm -rf /var/lib/apt/lists/*

# Its own files (templates/services/egress-proxy/), root-owned and read-only to it; then what the
# packages set up is adjusted (`setup`), and no setuid or setgid programs stay (CIS 4.8).
COPY egress-proxy/ /opt/theappapp/egress-proxy/
RUN chmod -R a+rX,go-w /opt/theappapp/egress-proxy \
 && cp /opt/theappapp/egress-proxy/errors/ERR_EGRESS_* /usr/share/squid/errors/templates/ && rm -f /etc/squid/conf.d/* \
 && find / -xdev -type f -perm /6000 -exec chmod ug-s {} +

USER 13:13
WORKDIR /
CMD ["/opt/theappapp/egress-proxy/entrypoint.sh"]

# Last, so a new content hash does not invalidate the cached layers above.
ARG CONTENT_HASH=unknown
LABEL org.opencontainers.image.title="theappapp-egress-proxy" \
      org.opencontainers.image.description="TheAppApp Sandbox: Egress proxy (Squid) 5.7" \
      org.opencontainers.image.vendor="TheAppApp" \
      org.opencontainers.image.version="5.7" \
      org.theappapp.image.language="egress-proxy" \
      org.theappapp.image.version="5.7" \
      org.theappapp.image.content-hash="${CONTENT_HASH}"
