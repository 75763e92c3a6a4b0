"""The daemon on a protected customer server."""
