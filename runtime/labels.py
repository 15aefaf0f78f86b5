"""Docker labels that mark what this project owns. Cleanup touches nothing without them."""

from __future__ import annotations

MANAGED = "theappapp-managed"  # value "true"; the user's convention, kept un-namespaced
_NS = "org.theappapp."
TASK = _NS + "task"
PROJECT = _NS + "project"
LANGUAGE = _NS + "language"
CREATED_AT = _NS + "created-at"  # unix seconds, as text
EXPIRES_AT = _NS + "expires-at"  # unix seconds, as text
OWNER = _NS + "owner"  # manager instance id
OWNER_HOST = _NS + "owner-host"  # hostname of the owning process
OWNER_PID = _NS + "owner-pid"  # pid of the owning process
OWNER_STARTED = _NS + "owner-started"  # that process's start time (guards against pid reuse)
INSTALLATION = _NS + "installation"  # installation id: cleanup never crosses installations
POOL = _NS + "pool"  # "spare" while a container waits in the warm pool
CACHE = _NS + "cache"  # on a project's cache volume: the language whose cache it is
ROLE = _NS + "role"  # on what is not a sandbox: "egress-proxy", "netns" (containers), "egress" (a network)
EGRESS_NETWORK = _NS + "egress-network"  # on the egress proxy: the network it serves
ROLE_NETNS = "netns"  # labels.ROLE of a network namespace holder (runtime/backends/docker/netns.py)
NETNS = _NS + "netns"  # on a sandbox in another container's network namespace: that holder's id
NETWORK = _NS + "network"  # on such a sandbox: the network it is on, through its holder

# Image labels written by the builder.
IMAGE_LANGUAGE = _NS + "image.language"
IMAGE_VERSION = _NS + "image.version"
IMAGE_CONTENT_HASH = _NS + "image.content-hash"
IMAGE_MISSING_OPTIONAL = _NS + "image.missing-optional"  # comma-separated components left out
IMAGE_AGENT = _NS + "image.agent"  # path of the sandbox agent in the image: it runs as the main process
