"""Engine: chunking, encryption, packs, index, snapshots, backup and restore. Knows nothing of HTTP or the catalog."""
