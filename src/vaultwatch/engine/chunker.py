"""Content-defined chunking (FastCDC), seeded per repository.

The gear table is derived from the repository's secret chunker seed, so chunk
boundaries (and therefore chunk sizes) do not leak which known files a
repository holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from pyfastcdc import FastCDC


class Chunker:
    """Cuts streams into chunks; one instance per thread (pyfastcdc is not thread-safe)."""

    def __init__(self, min_size: int, avg_size: int, max_size: int, seed: int) -> None:
        self._cdc = FastCDC(avg_size, min_size=min_size, max_size=max_size, seed=seed)
        self._min_size = min_size

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        """Each chunk as its own bytes object, read with bounded memory."""
        for chunk in self._cdc.cut_stream(stream):
            yield bytes(chunk.data)

    def cut(self, data: bytes) -> list[bytes]:
        """The chunks of an in-memory file; one no larger than a chunk's minimum is itself.

        FastCDC never cuts inside the minimum size, so the common small file
        (most source files are a few KiB) skips the cutter and the copy.
        """
        if len(data) <= self._min_size:
            return [data] if data else []
        return list(self.chunk_bytes(data))

    def chunk_bytes(self, data: bytes) -> Iterator[bytes]:
        """Cut an in-memory buffer (tests and small inputs)."""
        view = memoryview(data)
        for chunk in self._cdc.cut_buf(view):
            yield bytes(view[chunk.offset : chunk.offset + chunk.length])
