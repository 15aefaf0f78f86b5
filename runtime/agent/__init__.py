"""The in-sandbox agent (`sandbox_agent.py`, standard library only, copied into every image) and,
through the same file, the framing the manager speaks to it."""
