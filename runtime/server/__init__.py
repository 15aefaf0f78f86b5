"""The sandbox as a service: an authenticated HTTP API and an MCP server over the runtime's public API.

Needs the `server` extra (`pip install 'theappapp-sandbox[server]'`): FastAPI, uvicorn, pydantic and
the official `mcp` SDK. The layers, each in its own module:

    tokens     who may call: bearer tokens stored as hashes, each scoped to project patterns and limits
    broker     what a caller may do: the manager's operations, confined to the caller's tasks and limits
    schemas    the HTTP API's request and response bodies (pydantic)
    http_api   the FastAPI app: routes under /v1, /healthz, /metrics, and /mcp mounted
    mcp_tools  the MCP tools, over the same broker
    status     which error class is which HTTP status (shared with runtime.remote)
    timing     the `Server-Timing` header: how long each answer waited on the manager
"""
