"""Office files as zip packages: checks before we parse anything, and a rewrite that changes
only the parts we name.

:func:`open_package` refuses what we won't read (too big, an OLE compound file, not a zip, a
zip bomb, macros, the wrong kind of document) with :class:`RfpFileError`. :func:`replace_parts`
writes a new package where every other entry is copied *raw* (its local header, compressed
bytes and data descriptor as they were, in the original order) and the replaced parts are
compressed with their original method: an answered file differs from the customer's only in
the parts we changed.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass

from lxml import etree

from documents.rfp.errors import RfpFileError

MAX_BYTES = 50_000_000
"""Default upload limit."""
MAX_UNPACKED = 250_000_000
"""Default limit on the declared uncompressed size of all parts together (zip bombs)."""
MAX_ENTRIES = 10_000
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAIN_PART = {"docx": "word/document.xml", "xlsx": "xl/workbook.xml"}
_LABEL = {"docx": "a Word document (.docx)", "xlsx": "an Excel workbook (.xlsx)"}
# No entities, no network, no huge trees: customer files are untrusted.
XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                             remove_blank_text=False)


@dataclass(frozen=True)
class Package:
    """An opened, checked package: its bytes and its zip directory."""

    data: bytes
    zip: zipfile.ZipFile
    kind: str
    name: str

    def read(self, part: str) -> bytes:
        try:
            return self.zip.read(part)
        except KeyError as e:
            raise RfpFileError(f"{self.name} has no {part} part; it is damaged, save it "
                               "again from Word or Excel and upload that.") from e
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise _damaged(self.name, self.kind) from e

    def xml(self, part: str) -> etree._Element:
        try:
            return etree.fromstring(self.read(part), XML_PARSER)
        except etree.XMLSyntaxError as e:
            raise RfpFileError(f"{self.name}: {part} is not well-formed XML ({e}); save the "
                               "file again from Word or Excel and upload that.") from e


def check_size(data: bytes, name: str, max_bytes: int) -> None:
    if not data:
        raise RfpFileError(f"{name} is empty; choose the file again and upload it.")
    if len(data) > max_bytes:
        raise RfpFileError(f"{name} is {len(data) / 1_000_000:.1f} MB, over the "
                           f"{max_bytes / 1_000_000:g} MB limit; remove images or split it.")


def open_package(data: bytes, kind: str, *, name: str = "the file", max_bytes: int = MAX_BYTES,
                 max_unpacked: int = MAX_UNPACKED) -> Package:
    """Check ``data`` is a DOCX or XLSX (``kind``) we are willing to read, and open it."""
    check_size(data, name, max_bytes)
    if data.startswith(_OLE):
        raise RfpFileError(_ole_message(data, name, kind))
    if not data.startswith(b"PK"):
        raise RfpFileError(f"{name} is not {_LABEL[kind]}: it is not a zip package; save it "
                           f"as .{kind} and upload that.")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, struct.error) as e:
        raise _damaged(name, kind) from e
    if len(infos) > MAX_ENTRIES:
        raise RfpFileError(f"{name} has {len(infos)} parts, over the {MAX_ENTRIES} limit; "
                           "it is not a regular Office file.")
    unpacked = sum(i.file_size for i in infos)
    if unpacked > max_unpacked:
        raise RfpFileError(
            f"{name} unpacks to {unpacked / 1_000_000:.0f} MB, over the "
            f"{max_unpacked / 1_000_000:g} MB limit (a zip bomb or huge embedded files); "
            "remove embedded files and upload it again.")
    names = {i.filename for i in infos}
    package = Package(data, zf, kind, name)
    content_types = package.read("[Content_Types].xml") if "[Content_Types].xml" in names \
        else b""
    if (any(n.lower().endswith("vbaproject.bin") for n in names)
            or b"macroenabled" in content_types.lower()):
        what = "workbook (.xlsm)" if kind == "xlsx" else "document (.docm)"
        raise RfpFileError(f"{name} is a macro-enabled {what}; we don't accept macros: save "
                           f"it as a plain .{kind} (macros removed) and upload that.")
    if _MAIN_PART[kind] not in names:
        other = next((k for k, p in _MAIN_PART.items() if p in names), None)
        found = f"it is {_LABEL[other]}" if other else "it has no document part"
        raise RfpFileError(f"{name} is not {_LABEL[kind]}: {found}.")
    return package


def _ole_message(data: bytes, name: str, kind: str) -> str:
    if "EncryptedPackage".encode("utf-16-le") in data:
        return (f"{name} is password-protected (an encrypted Office file); remove the password "
                f"(save a copy without one) and upload it again.")
    return (f"{name} is an OLE compound file: a password-protected Office file or an old "
            f"binary .doc/.xls; remove the password or save it as .{kind} and upload that.")


def _damaged(name: str, kind: str) -> RfpFileError:
    return RfpFileError(f"{name} is damaged (a broken or truncated zip package), so it is not a "
                        f"readable {_LABEL[kind]}; save it again and upload that.")


def part_targets(package: Package, rels_part: str, rel_type_suffix: str) -> dict[str, str]:
    """Relationship id → part name for the relationships of one type in ``rels_part``."""
    base = rels_part.replace("_rels/", "").removesuffix(".rels").rsplit("/", 1)[0]
    out: dict[str, str] = {}
    for rel in package.xml(rels_part):
        if not str(rel.get("Type", "")).endswith(rel_type_suffix):
            continue
        target = str(rel.get("Target", ""))
        out[str(rel.get("Id"))] = _resolve(base, target)
    return out


def _resolve(base: str, target: str) -> str:
    if target.startswith("/"):
        return target[1:]
    parts = [p for p in base.split("/") if p]
    for piece in target.split("/"):
        if piece == "..":
            if parts:
                parts.pop()
        elif piece not in ("", "."):
            parts.append(piece)
    return "/".join(parts)


def serialize(root: etree._Element, original: bytes) -> bytes:
    """The XML part back to bytes, with a declaration like the original's."""
    standalone = b'standalone="yes"' in original[:200]
    out: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8",
                                standalone=True if standalone else None)
    return out


def replace_parts(package: Package, replacements: dict[str, bytes]) -> bytes:
    """The package with ``replacements`` (part name → new bytes); everything else raw."""
    data, zf = package.data, package.zip
    infos = zf.infolist()
    missing = set(replacements) - {i.filename for i in infos}
    if missing:
        raise ValueError(f"no such parts: {sorted(missing)}")
    ends = sorted({i.header_offset for i in infos} | {zf.start_dir})
    out = io.BytesIO()
    central: list[bytes] = []
    for info in infos:
        offset = out.tell()
        new = replacements.get(info.filename)
        if new is None:
            start = info.header_offset
            end = next(e for e in ends if e > start)
            out.write(data[start:end])
            crc, csize, usize, flags = (info.CRC, info.compress_size, info.file_size,
                                        info.flag_bits)
        else:
            crc, csize, usize, flags = _write_local(out, info, new)
        version = info.extract_version if new is None else 20
        central.append(_central_record(info, offset, crc, csize, usize, flags, version))
    start_dir = out.tell()
    for record in central:
        out.write(record)
    size_dir = out.tell() - start_dir
    comment = zf.comment[:0xFFFF]
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central),
                          size_dir, start_dir, len(comment)))
    out.write(comment)
    return out.getvalue()


def _write_local(out: io.BytesIO, info: zipfile.ZipInfo,
                 new: bytes) -> tuple[int, int, int, int]:
    if info.compress_type == zipfile.ZIP_DEFLATED:
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        packed = packer.compress(new) + packer.flush()
    elif info.compress_type == zipfile.ZIP_STORED:
        packed = new
    else:
        raise RfpFileError(f"{info.filename} uses zip compression method "
                           f"{info.compress_type}, which we can't write.")
    crc = zlib.crc32(new)
    flags = info.flag_bits & 0x0800  # keep "UTF-8 name"; no data descriptor, no encryption
    dostime, dosdate = _dos(info)
    name = _name_bytes(info)
    out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, info.compress_type, dostime,
                          dosdate, crc, len(packed), len(new), len(name), 0))
    out.write(name)
    out.write(packed)
    return crc, len(packed), len(new), flags


def _central_record(info: zipfile.ZipInfo, offset: int, crc: int, csize: int, usize: int,
                    flags: int, version: int) -> bytes:
    name = _name_bytes(info)
    extra = _without_zip64(info.extra)
    comment = info.comment
    dostime, dosdate = _dos(info)
    made_by = (info.create_system << 8) | (info.create_version & 0xFF)
    head = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", made_by, version,
                       flags, info.compress_type, dostime, dosdate, crc, csize, usize,
                       len(name), len(extra), len(comment), 0, info.internal_attr,
                       info.external_attr, offset)
    return head + name + extra + comment


def _dos(info: zipfile.ZipInfo) -> tuple[int, int]:
    y, mo, d, h, mi, s = info.date_time
    return (h << 11) | (mi << 5) | (s // 2), (max(y, 1980) - 1980) << 9 | (mo << 5) | d


def _name_bytes(info: zipfile.ZipInfo) -> bytes:
    return info.filename.encode("utf-8" if info.flag_bits & 0x0800 else "cp437")


def _without_zip64(extra: bytes) -> bytes:
    kept, i = b"", 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[i:i + 4])
        if tag != 0x0001:
            kept += extra[i:i + 4 + size]
        i += 4 + size
    return kept
