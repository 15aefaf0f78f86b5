"""The sandbox core: the manager (orchestration only), task handles, the warm pool, the
backend-neutral container spec, naming, paths, events and run_code. It reaches the engine
only through a `runtime.backends` Backend."""
