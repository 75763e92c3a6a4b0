"""Content-defined chunking: lossless, bounded, deterministic, seeded, and resynchronising."""

from __future__ import annotations

import io
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from vaultwatch.engine.chunker import Chunker

# The smallest sizes pyfastcdc accepts, so short hypothesis inputs still make many chunks.
MIN, AVG, MAX = 64, 256, 1024
SEED = 0x2F1E_6A3B

seeds = st.integers(min_value=1, max_value=2**31 - 1)


def _random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _cuts(chunks: list[bytes]) -> list[int]:
    """End offsets of the chunks."""
    out, pos = [], 0
    for c in chunks:
        pos += len(c)
        out.append(pos)
    return out


class _ShortReads:
    """A stream whose read() returns at most a few bytes, like a pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self._buf = io.BytesIO(data)
        self._step = step

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(min(n, self._step) if n >= 0 else self._step)


def _mixed_data() -> st.SearchStrategy[bytes]:
    """Hypothesis bytes (often low-entropy: runs of zeros hit max_size) or seeded random bytes."""
    return st.one_of(
        st.binary(max_size=12_000),
        st.builds(_random_bytes, st.integers(0, 40_000), st.integers(0, 2**32)),
    )


@settings(max_examples=150, deadline=None)
@given(data=_mixed_data(), seed=seeds)
def test_chunks_concatenate_to_the_input(data: bytes, seed: int) -> None:
    chunks = list(Chunker(MIN, AVG, MAX, seed).chunk_bytes(data))
    assert b"".join(chunks) == data
    assert all(chunks), "no empty chunk"
    if not data:
        assert chunks == []


@settings(max_examples=150, deadline=None)
@given(data=_mixed_data(), seed=seeds)
def test_every_chunk_but_the_last_is_within_bounds(data: bytes, seed: int) -> None:
    chunks = list(Chunker(MIN, AVG, MAX, seed).chunk_bytes(data))
    for c in chunks[:-1]:
        assert MIN <= len(c) <= MAX
    if chunks:
        assert 1 <= len(chunks[-1]) <= MAX


def test_runs_of_zeros_are_cut_at_max_size() -> None:
    chunks = list(Chunker(MIN, AVG, MAX, SEED).chunk_bytes(bytes(10 * MAX + 5)))
    assert [len(c) for c in chunks] == [MAX] * 10 + [5]


@settings(max_examples=60, deadline=None)
@given(data=_mixed_data(), seed=seeds)
def test_same_seed_same_chunks_across_instances(data: bytes, seed: int) -> None:
    first = list(Chunker(MIN, AVG, MAX, seed).chunk_bytes(data))
    reused = Chunker(MIN, AVG, MAX, seed)
    list(reused.chunk_bytes(b"something else entirely" * 100))  # state must not leak between calls
    assert list(reused.chunk_bytes(data)) == first
    assert list(Chunker(MIN, AVG, MAX, seed).chunk_bytes(data)) == first


@settings(max_examples=80, deadline=None)
@given(data=_mixed_data(), seed=seeds, step=st.integers(1, 5000))
def test_stream_and_buffer_cutting_agree(data: bytes, seed: int, step: int) -> None:
    chunker = Chunker(MIN, AVG, MAX, seed)
    from_buffer = list(chunker.chunk_bytes(data))
    assert list(chunker.chunks(io.BytesIO(data))) == from_buffer
    assert list(chunker.chunks(_ShortReads(data, step))) == from_buffer  # type: ignore[arg-type]


def test_stream_chunks_are_independent_bytes() -> None:
    """cut_stream reuses its buffer; each yielded chunk must survive the next one."""
    data = _random_bytes(300_000, 3)
    chunker = Chunker(MIN, AVG, MAX, SEED)
    kept = list(chunker.chunks(io.BytesIO(data)))
    assert all(isinstance(c, bytes) for c in kept)
    assert b"".join(kept) == data


@settings(max_examples=20, deadline=None)
@given(a=seeds, b=seeds)
def test_different_seeds_give_different_boundaries(a: int, b: int) -> None:
    if a == b:
        b = a ^ 1 or 2
    data = _random_bytes(256 * 1024, 11)
    cuts_a = _cuts(list(Chunker(1024, 4096, 32768, a).chunk_bytes(data)))
    cuts_b = _cuts(list(Chunker(1024, 4096, 32768, b).chunk_bytes(data)))
    assert cuts_a != cuts_b
    # Not merely different somewhere: most boundaries move.
    assert len(set(cuts_a[:-1]) & set(cuts_b[:-1])) < len(cuts_a) // 2


def test_seeded_boundaries_differ_from_the_public_gear_table() -> None:
    data = _random_bytes(256 * 1024, 12)
    unseeded = set(Chunker(1024, 4096, 32768, 0).chunk_bytes(data))
    seeded = set(Chunker(1024, 4096, 32768, SEED).chunk_bytes(data))
    assert len(unseeded & seeded) <= 1  # at most an identical tail chunk


def _shared_fraction(original: bytes, edited: bytes, chunker: Chunker) -> float:
    """The fraction of the edited data's bytes that lie in chunks the original already had."""
    known = set(chunker.chunk_bytes(original))
    shared = sum(len(c) for c in chunker.chunk_bytes(edited) if c in known)
    return shared / len(edited)


@settings(max_examples=15, deadline=None)
@given(
    where=st.floats(0.0, 1.0),
    insert=st.binary(min_size=1, max_size=16),
    seed=seeds,
    data_seed=st.integers(0, 2**32),
)
def test_cut_points_resynchronise_after_an_insertion(
    where: float, insert: bytes, seed: int, data_seed: int
) -> None:
    data = _random_bytes(1 << 20, data_seed)
    pos = int(where * len(data))
    edited = data[:pos] + insert + data[pos:]
    chunker = Chunker(2048, 8192, 65536, seed)
    # One edit disturbs the chunk it falls in and maybe a neighbour: ~3 chunks of ~10 KiB of 1 MiB.
    assert _shared_fraction(data, edited, chunker) > 0.90


def test_resynchronises_after_several_scattered_edits() -> None:
    data = bytearray(_random_bytes(1 << 20, 5))
    edited = bytearray(data)
    for pos in (900_000, 600_000, 300_000, 10):  # back to front so positions stay valid
        edited[pos:pos] = b"\x00\x01\x02"
    del edited[450_000:450_007]
    edited[700_000] ^= 0xFF
    chunker = Chunker(2048, 8192, 65536, SEED)
    assert _shared_fraction(bytes(data), bytes(edited), chunker) > 0.75


def test_production_sizes_respect_bounds_on_a_large_input() -> None:
    data = _random_bytes(4 << 20, 8)
    chunks = list(Chunker(16 * 1024, 64 * 1024, 512 * 1024, SEED).chunk_bytes(data))
    assert b"".join(chunks) == data
    assert all(16 * 1024 <= len(c) <= 512 * 1024 for c in chunks[:-1])
    # pyfastcdc's actual average is about avg + min.
    mean = len(data) / len(chunks)
    assert 40 * 1024 < mean < 160 * 1024


@settings(max_examples=150, deadline=None)
@given(data=st.one_of(st.binary(max_size=3 * MIN), _mixed_data()), seed=seeds)
def test_cut_matches_the_cutter_including_its_small_file_shortcut(data: bytes, seed: int) -> None:
    chunker = Chunker(MIN, AVG, MAX, seed)
    assert chunker.cut(data) == list(chunker.chunk_bytes(data))
    if 0 < len(data) <= MIN:
        assert chunker.cut(data)[0] is data  # no copy for a file of one minimal chunk
