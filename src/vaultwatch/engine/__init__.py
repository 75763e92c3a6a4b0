"""Engine: chunking, encryption, packs, index, snapshots, backup and restore. Knows nothing of HTTP or the catalog."""

import os

# NumPy serves only the index's sorted arrays here, never linear algebra. OpenBLAS
# starts a spinning thread per core at import: 0.1 s of CPU taken from every command.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
