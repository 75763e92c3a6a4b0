"""The agent-facing HTTP API."""
