"""Root conftest: registers the real-cluster fixtures for tests/ and e2e/."""

pytest_plugins = ["e2e.harness.fixtures"]
