"""Engines the sandbox core runs on, behind one protocol (`runtime.backends.base.Backend`)."""
