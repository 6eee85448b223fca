"""The image test reuses the main suite's fixtures: test PostgreSQL, Redis, local model, OIDC."""

pytest_plugins = ["tests.conftest"]
