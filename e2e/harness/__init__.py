"""Test harness for the real-cluster tiers: bring-up, in-namespace clients, bounded waits."""
