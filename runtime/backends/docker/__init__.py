"""The Docker backend: the only place in `runtime` that imports docker-py or speaks the Engine API."""
