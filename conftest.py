"""Root conftest: registers the shared fixtures for tests/ and e2e/ (real clusters, real agents)."""

pytest_plugins = ["e2e.harness.fixtures", "tests.runtime.fixtures"]
