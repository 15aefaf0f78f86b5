"""Egress by allowlist on Docker: an internal network, its firewall, the Squid proxy, policies, audit.

    network   the internal bridge allowlisted sandboxes join, and the rules that confine it
    proxy     the proxy container (the toolkit's `egress-proxy` image) and its policy directory
    policies  one policy file per sandbox address, which the proxy's ACL helper reads per request
    audit     the proxy's access log, read back as `EgressRecord`s
    gateway   `DockerEgress`: the `EgressGateway` protocol out of those parts
"""
