"""Blob compression: zstd where it pays, raw otherwise, and bounded decompression."""

from __future__ import annotations

import os
import random
import threading

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultwatch.engine.compress import RAW, ZSTD, compress, decompress

TEXT = (
    b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    b"incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud\n"
) * 200


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(st.binary(max_size=5000), st.text(max_size=3000).map(str.encode)))
def test_round_trip(data: bytes) -> None:
    body = compress(data)
    assert body[0] in (RAW, ZSTD)
    assert decompress(body, len(data)) == data


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=5000))
def test_round_trip_from_memoryview(data: bytes) -> None:
    assert decompress(compress(memoryview(data)), len(data)) == data


def test_text_is_compressed() -> None:
    body = compress(TEXT)
    assert body[0] == ZSTD
    assert len(body) < len(TEXT) // 10
    assert decompress(body, len(TEXT)) == TEXT


@pytest.mark.parametrize("size", [64, 1000, 100_000, 1 << 20])
def test_incompressible_data_is_stored_raw(size: int) -> None:
    data = os.urandom(size)
    body = compress(data)
    assert body[:1] == b"\x00"
    assert body[1:] == data
    assert len(body) == size + 1


def test_already_compressed_data_is_stored_raw() -> None:
    packed = zstandard.ZstdCompressor(level=19).compress(TEXT + os.urandom(4096))
    body = compress(packed)
    assert body[0] == RAW
    assert body[1:] == packed


def test_marginal_gain_is_not_worth_it() -> None:
    """Random bytes with a small compressible tail: saves < 3 %, so stays raw."""
    data = os.urandom(10_000) + bytes(150)
    assert compress(data)[0] == RAW


def test_tiny_blobs_are_never_compressed() -> None:
    for data in (b"", b"a", b"a" * 63):
        assert compress(data) == b"\x00" + data
    assert compress(b"a" * 64)[0] == ZSTD


def test_decompress_refuses_output_larger_than_raw_length() -> None:
    body = compress(TEXT)
    assert body[0] == ZSTD
    with pytest.raises((ValueError, zstandard.ZstdError)):
        decompress(body, len(TEXT) - 1)
    with pytest.raises((ValueError, zstandard.ZstdError)):
        decompress(body, 100)


def test_decompress_refuses_a_bomb_without_content_size() -> None:
    bomb = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(10 << 20))
    assert len(bomb) < 2000
    with pytest.raises((ValueError, zstandard.ZstdError)):
        decompress(b"\x01" + bomb, 4096)


def test_decompress_refuses_a_bomb_with_a_declared_huge_size() -> None:
    bomb = zstandard.ZstdCompressor().compress(bytes(64 << 20))
    with pytest.raises((ValueError, zstandard.ZstdError)):
        decompress(b"\x01" + bomb, 4096)


def test_raw_body_longer_than_raw_length_is_refused() -> None:
    with pytest.raises(ValueError):
        decompress(b"\x00" + b"x" * 100, 99)


@pytest.mark.parametrize("body", [b"", b"\x02abc", b"\xff"])
def test_unknown_method_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        decompress(body, 10)


def test_garbage_zstd_body_raises() -> None:
    with pytest.raises((ValueError, zstandard.ZstdError)):
        decompress(b"\x01not a zstd frame at all", 1000)


def test_compress_is_thread_safe() -> None:
    """Each thread keeps its own (de)compressor; concurrent use must not mix outputs."""
    inputs = [random.Random(i).choice([b"a", b"bc", b"def"]) * (1000 + i) for i in range(64)]
    errors: list[BaseException] = []

    def work(chunk: list[bytes]) -> None:
        try:
            for _ in range(20):
                for data in chunk:
                    assert decompress(compress(data), len(data)) == data
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(inputs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
