"""Rewrite the label of an EXR frame without touching its pixels: a new header, the same chunks.

The farm's Publish step assembles a sequence from chunk frames rendered by the Render tasks;
those carry the chunk's label ("not for delivery"), the published frames the final one. Reading
and writing each frame through OpenEXR would decompress and compress every pixel again (and
round again under a lossy compression such as DWAA), so the header is rewritten in place of the
old one and the compressed chunks are copied byte for byte; only the offset table moves, by the
difference in header size.

File layout (single-part scanline OpenEXR, what `SequenceWriter` writes): magic, version, the
header (`name\\0 type\\0 int32 size value` ... `\\0`), the offset table (one uint64 file offset
per chunk of `lines_per_chunk` scanlines), then the chunks.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

from renderer.errors import MediaError

_MAGIC = b"\x76\x2f\x31\x01"
_TILED, _MULTIPART, _DEEP = 0x200, 0x1000, 0x800
# scanlines per chunk by compression code (NO, RLE, ZIPS, ZIP, PIZ, PXR24, B44, B44A, DWAA, DWAB)
_LINES = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}


def _attributes(data: bytes, path: Path) -> tuple[list[tuple[bytes, bytes, bytes]], int]:
    """([(name, type, value)], offset just past the header's terminating zero byte)."""
    pos, out = 8, []
    try:
        while data[pos] != 0:
            name_end = data.index(b"\0", pos)
            type_end = data.index(b"\0", name_end + 1)
            (size,) = struct.unpack_from("<i", data, type_end + 1)
            value = data[type_end + 5: type_end + 5 + size]
            if size < 0 or len(value) != size:
                raise ValueError("attribute runs past the end of the file")
            out.append((data[pos:name_end], data[name_end + 1:type_end], value))
            pos = type_end + 5 + size
    except (IndexError, ValueError, struct.error) as err:
        raise MediaError(f"{path}: the EXR header cannot be read ({err})") from err
    return out, pos + 1


def relabel_exr(src: Path, dst: Path, strings: Mapping[str, str]) -> None:
    """Write `src` to `dst` with its string attributes named in `strings` (and their `.2`, `.3` ...
    continuations) replaced by `strings`' values; pixels and every other attribute as they were.
    MediaError for a file that is not a single-part scanline EXR."""
    data = Path(src).read_bytes()
    if data[:4] != _MAGIC:
        raise MediaError(f"{src} is not an EXR file (no OpenEXR magic number)")
    (version,) = struct.unpack_from("<i", data, 4)
    if version & (_TILED | _MULTIPART | _DEEP):
        raise MediaError(f"{src}: only single-part scanline EXR frames are relabelled (flags {version:#x})")
    attrs, end = _attributes(data, Path(src))
    by_name = {name: value for name, _, value in attrs}
    try:
        compression = by_name[b"compression"][0]
        _, ymin, _, ymax = struct.unpack("<iiii", by_name[b"dataWindow"])
        chunks = -(-(ymax - ymin + 1) // _LINES[compression])
    except (KeyError, IndexError, struct.error) as err:
        raise MediaError(f"{src}: EXR header without a known compression and data window ({err})") from err

    def replaced(name: bytes) -> bool:
        base = name.decode("latin-1").split(".")[0]
        return base in strings and (name.decode("latin-1") == base or name.decode("latin-1")[len(base) + 1:].isdigit())

    from renderer.media.sequence_write import _short_attributes

    header = bytearray()
    for name, kind, value in [a for a in attrs if not replaced(a[0])] + [
            (k.encode("utf-8"), b"string", v.encode("utf-8"))
            for key, text in strings.items() for k, v in _short_attributes(key, text).items()]:
        header += name + b"\0" + kind + b"\0" + struct.pack("<i", len(value)) + value
    header += b"\0"
    delta = len(header) - (end - 8)
    table = struct.unpack_from(f"<{chunks}Q", data, end)
    out = data[:8] + bytes(header) + struct.pack(f"<{chunks}Q", *(o + delta for o in table)) + data[end + 8 * chunks:]
    Path(dst).write_bytes(out)


__all__ = ["relabel_exr"]
