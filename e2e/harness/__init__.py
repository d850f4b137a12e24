"""What the e2e tier needs of the single-node cluster alone: its fixtures, its network namespace,
images built for its node. Launchers, waits and ports every tier shares are in ``tests.kit``."""
