#!/bin/sh
# The egress proxy's main process (as the proxy user; /run/squid is a tmpfs).
set -eu
# Squid needs a certificate on its ssl-bump port to peek at the SNI; it never bumps, so a throwaway
# self-signed one made at each start does (no key outlives the container).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/CN=theappapp-egress-proxy-never-bumps" \
  -keyout /run/squid/never-bump.pem -out /run/squid/never-bump.crt 2>/dev/null
cat /run/squid/never-bump.crt >> /run/squid/never-bump.pem
for file in hosts hosts.names; do
  [ -f "/etc/theappapp/egress/$file" ] || { echo "egress-proxy: /etc/theappapp/egress/$file is missing" >&2; exit 2; }
done
exec squid -N -f /opt/theappapp/egress-proxy/squid.conf
