"""Frame encoder and incremental, resynchronizing frame parser of the MCU wire protocol.

Mirrors ``firmware/core/frame.c``: sync bytes, header with its own CRC-16, payload,
payload CRC-16.  A header whose CRC fails is rescanned from its second byte, and an
announced length above ``MAX_PAYLOAD`` is refused before any payload is buffered.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, List, Optional

from tinyvlm_ros.mcu import protocol_constants as pc


def _make_table() -> List[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ pc.CRC16_POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _make_table()


def crc16(data: bytes, crc: int = pc.CRC16_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data``."""
    tbl = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ tbl[((crc >> 8) ^ b) & 0xFF]
    return crc


@dataclass
class Frame:
    """One decoded frame.  ``error`` is None, ``"bad_crc"`` or ``"too_large"`` (header valid, body not)."""

    opcode: int
    seq: int
    flags: int = 0
    status: int = 0
    payload: bytes = b""
    version: int = pc.PROTOCOL_VERSION
    error: Optional[str] = None

    @property
    def is_response(self) -> bool:
        """True for a reply frame."""
        return bool(self.flags & pc.Flag.RESPONSE)


def encode_frame(opcode: int, seq: int, payload: bytes = b"", flags: int = 0, status: int = 0,
                 version: int = pc.PROTOCOL_VERSION) -> bytes:
    """Build one frame; raises ValueError when the payload exceeds MAX_PAYLOAD."""
    payload = bytes(payload)
    if len(payload) > pc.MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD {pc.MAX_PAYLOAD}")
    body = struct.pack("<BBHBBH", version & 0xFF, opcode & 0xFF, seq & 0xFFFF, flags & 0xFF, status & 0xFF,
                       len(payload))
    head = bytes((pc.SYNC0, pc.SYNC1)) + body + struct.pack("<H", crc16(body))
    return head + payload + struct.pack("<H", crc16(payload))


class FrameParser:
    """Incremental parser: ``feed(bytes)`` returns the frames completed by those bytes."""

    _SYNC0, _SYNC1, _HEADER, _PAYLOAD, _CRC = range(5)

    def __init__(self) -> None:
        self.state = self._SYNC0
        self.buf = bytearray()
        self.hdr: Dict[str, int] = {}
        self.frames = 0
        self.crc_errors = 0
        self.resyncs = 0

    def reset(self) -> None:
        """Drop any partial frame."""
        self.state = self._SYNC0
        self.buf = bytearray()

    def feed(self, data: bytes) -> List[Frame]:
        """Consume bytes; return completed frames (including header-valid frames with ``error`` set)."""
        out: List[Frame] = []
        for b in data:
            f = self._byte(b)
            if f is not None:
                out.append(f)
        return out

    def _byte(self, b: int) -> Optional[Frame]:
        st = self.state
        if st == self._SYNC0:
            if b == pc.SYNC0:
                self.buf = bytearray((b,))
                self.state = self._SYNC1
            return None
        if st == self._SYNC1:
            if b == pc.SYNC1:
                self.buf.append(b)
                self.state = self._HEADER
            elif b != pc.SYNC0:
                self.state = self._SYNC0
            return None
        if st == self._HEADER:
            self.buf.append(b)
            if len(self.buf) < pc.HEADER_SIZE:
                return None
            return self._header_done()
        if st == self._PAYLOAD:
            self.buf.append(b)
            if len(self.buf) == self.hdr["length"]:
                self.hdr["payload"] = bytes(self.buf)  # type: ignore[assignment]
                self.buf = bytearray()
                self.state = self._CRC
            return None
        self.buf.append(b)
        if len(self.buf) < pc.TRAILER_SIZE:
            return None
        self.state = self._SYNC0
        got = self.buf[0] | (self.buf[1] << 8)
        payload = self.hdr.get("payload", b"")
        h = self.hdr
        frame = Frame(h["opcode"], h["seq"], h["flags"], h["status"], payload, h["version"])  # type: ignore
        if crc16(payload) != got:  # type: ignore[arg-type]
            self.crc_errors += 1
            frame.error = "bad_crc"
            frame.payload = b""
        else:
            self.frames += 1
        return frame

    def _header_done(self) -> Optional[Frame]:
        h = bytes(self.buf)
        if crc16(h[2:10]) != (h[10] | (h[11] << 8)):
            self.resyncs += 1
            self.state = self._SYNC0
            self.buf = bytearray()
            for b in h[1:]:  # 11 bytes cannot complete another header: no deeper recursion
                self._byte(b)
            return None
        version, opcode, seq, flags, status, length = struct.unpack("<BBHBBH", h[2:10])
        self.hdr = {"version": version, "opcode": opcode, "seq": seq, "flags": flags, "status": status,
                    "length": length, "payload": b""}  # type: ignore[dict-item]
        self.buf = bytearray()
        if length > pc.MAX_PAYLOAD:
            self.state = self._SYNC0
            return Frame(opcode, seq, flags, status, b"", version, error="too_large")
        self.state = self._PAYLOAD if length else self._CRC
        return None


def pack_struct(name: str, **values: int) -> bytes:
    """Pack one of the protocol's structs by field name (missing fields are 0)."""
    fmt, names = pc.STRUCTS[name]
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"{name}: unknown fields {sorted(unknown)}")
    return struct.pack(fmt, *(int(values.get(n, 0)) for n in names))


def unpack_struct(name: str, data: bytes, offset: int = 0) -> Dict[str, int]:
    """Unpack one of the protocol's structs into a dict; ValueError when ``data`` is too short."""
    fmt, names = pc.STRUCTS[name]
    size = struct.calcsize(fmt)
    if len(data) - offset < size:
        raise ValueError(f"{name}: need {size} bytes, got {len(data) - offset}")
    return dict(zip(names, struct.unpack_from(fmt, data, offset)))


def struct_size(name: str) -> int:
    """Size in bytes of one of the protocol's structs."""
    return struct.calcsize(pc.STRUCTS[name][0])
