"""Recording and reading what sandboxes did: the SQLite monitor, its store, failure
classification, Prometheus metrics and the `stats` view."""
