"""The catalog: the service's queryable state in SQL."""
