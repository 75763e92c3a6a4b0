"""Stores: where a repository's bytes live (local disk, S3, the gateway over HTTP)."""
