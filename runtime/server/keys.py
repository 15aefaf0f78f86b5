"""Where the authenticated scope rides in an ASGI request's scope: set by `http_api`, read by `mcp_tools`."""

SCOPE_KEY = "theappapp.scope"
