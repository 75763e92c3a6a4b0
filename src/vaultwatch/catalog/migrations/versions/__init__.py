"""One file per catalog revision, applied in order by Alembic."""
