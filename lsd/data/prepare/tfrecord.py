"""TFRecord framing, read without TensorFlow, every checksum checked.

A TFRecord file is a sequence of records, each (all little endian)::

    uint64  length
    uint32  masked CRC32C of the 8 length bytes
    bytes   data[length]
    uint32  masked CRC32C of the data

with ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xA282EAD8`` (mod 2**32), as TensorFlow's
``tensorflow/core/lib/hash/crc32c.h`` defines it. A record whose checksum does not match, or a
file that ends inside a record, raises :class:`CorruptRecordError` naming the file, the record's
index and its byte offset; a damaged record is never returned.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import crc32c

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


class CorruptRecordError(ValueError):
    """A TFRecord record failed its length or data checksum, or the file ended inside it."""


def masked_crc32c(data: bytes | memoryview) -> int:
    """TensorFlow's masked CRC32C of ``data`` (a uint32)."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """``data`` framed as one TFRecord record (length, its masked CRC, data, its masked CRC)."""
    length = struct.pack("<Q", len(data))
    return length + _FOOTER.pack(masked_crc32c(length)) + data + _FOOTER.pack(masked_crc32c(data))


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at the end of the stream (``read`` may return short)."""
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def iter_records(stream: BinaryIO, name: str) -> Iterator[bytes]:
    """The records of a TFRecord stream, in file order, each checked against its two CRCs.

    ``name`` (a path or URL) is what errors call the file.
    """
    index, offset = 0, 0
    while True:
        header = _read_exactly(stream, _HEADER.size)
        if not header:
            return
        where = f"{name}: record {index} (byte {offset})"
        if len(header) < _HEADER.size:
            raise CorruptRecordError(f"{where}: the file ends inside the record header (truncated)")
        length, length_crc = _HEADER.unpack(header)
        if masked_crc32c(header[:8]) != length_crc:
            raise CorruptRecordError(f"{where}: the length field fails its CRC32C (corrupt)")
        data = _read_exactly(stream, length)
        footer = _read_exactly(stream, _FOOTER.size)
        if len(data) < length or len(footer) < _FOOTER.size:
            raise CorruptRecordError(f"{where}: the file ends inside the record's {length} data bytes (truncated)")
        if masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
            raise CorruptRecordError(f"{where}: the data fails its CRC32C (corrupt)")
        yield data
        index += 1
        offset += _HEADER.size + length + _FOOTER.size
