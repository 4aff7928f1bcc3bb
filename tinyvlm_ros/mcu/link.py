"""Serial link to the TinyVLM firmware: requests with timeouts, retries, reconnects and reboot recovery.

Every read and write has a deadline.  A lost or corrupted reply is retried with
the same sequence number (the firmware answers a repeat from its reply cache, so
nothing runs twice).  When the device stops answering the link reopens the port;
when it answers with a new boot id it reloads the RAM table and query it had sent,
then repeats the request (the flash vocabulary survives a reboot and is not
resent).  A device that stays away raises ConnectionError.
"""

from __future__ import annotations

import logging
import random
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.mcu import protocol_constants as pc
from tinyvlm_ros.mcu.codec import Frame, FrameParser, encode_frame, pack_struct, struct_size, unpack_struct

log = logging.getLogger(__name__)


class McuStatusError(RuntimeError):
    """The firmware answered a request with an error status."""

    def __init__(self, opcode: int, status: int) -> None:
        self.opcode = opcode
        self.status = status
        try:
            sname = pc.Status(status).name
        except ValueError:
            sname = f"status {status}"
        try:
            oname = pc.Op(opcode).name
        except ValueError:
            oname = f"opcode {opcode}"
        super().__init__(f"MCU refused {oname}: {sname}")


@dataclass
class InferResult:
    """One INFER reply: boxes in grid cells, optional Q15 scores, work counters."""

    frame_no: int
    macs: int
    ticks: int
    grid_w: int
    grid_h: int
    boxes: List[Dict[str, int]] = field(default_factory=list)
    scores: Optional[np.ndarray] = None  # int16 [n_query, grid_h * grid_w]


@dataclass
class CaptureResult(InferResult):
    """One CAPTURE reply: an INFER result of the device's own frame, its capture time and a thumbnail."""

    capture_us: int = 0                   # device clock, microseconds since boot
    thumbnail: Optional[np.ndarray] = None  # uint8 [thumb_h, thumb_w, input_c]


def ram_row(index: int) -> int:
    """Row id of RAM table row ``index`` (plain indices name flash vocabulary rows)."""
    if not 0 <= index < pc.ROW_RAM:
        raise ValueError(f"RAM table row must be 0..{pc.ROW_RAM - 1}, got {index}")
    return pc.ROW_RAM | index


def parse_result(payload: bytes, want_scores: bool, start: int = 0) -> Tuple[InferResult, int]:
    """Decode an INFER result at ``start`` of a reply payload; returns it and the offset after it."""
    r = unpack_struct("result", payload, start)
    off = start + struct_size("result")
    bsize = struct_size("box")
    boxes = []
    for _ in range(r["n_boxes"]):
        boxes.append(unpack_struct("box", payload, off))
        off += bsize
    scores = None
    cells = r["grid_w"] * r["grid_h"]
    if want_scores:
        need = 2 * cells * r["n_query"]
        if len(payload) - off < need:
            raise ValueError(f"INFER reply carries {len(payload) - off} score bytes, expected {need}")
        scores = np.frombuffer(payload, "<i2", cells * r["n_query"], off).reshape(r["n_query"], cells).copy()
        off += need
    return InferResult(r["frame_no"], r["macs"], r["ticks"], r["grid_w"], r["grid_h"], boxes, scores), off


class McuLink:
    """Talks to one firmware instance over a pyserial URL (``/dev/ttyACM0``, ``/dev/pts/5``, ``socket://…``).

    Args:
        url: pyserial port name or URL.
        baud: baud rate (ignored by pseudo-terminals and sockets).
        timeout: seconds to wait for each reply.
        retries: attempts per request before reconnecting.
        reconnects: reconnect attempts before raising ConnectionError.
        reconnect_delay: seconds between reconnect attempts.
        opener: ``(url, baud) -> serial-like`` (default ``serial.serial_for_url``), for tests of other links.
    """

    def __init__(self, url: str, baud: int = 921600, timeout: float = 2.0, retries: int = 3,
                 reconnects: int = 3, reconnect_delay: float = 0.5,
                 opener: Optional[Callable[[str, int], object]] = None) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.url = url
        self.baud = baud
        self.timeout = timeout
        self.retries = max(1, retries)
        self.reconnects = max(0, reconnects)
        self.reconnect_delay = reconnect_delay
        self._opener = opener
        self._ser = None
        self._parser = FrameParser()
        self._seq = random.randrange(0, 0x10000)
        self.info: Dict[str, int] = {}
        self.boot_id: Optional[int] = None
        self.reboots = 0
        self._table: Optional[bytes] = None
        self._query: Optional[bytes] = None
        self._query_lost = False
        self.stats = {"requests": 0, "retries": 0, "reconnects": 0, "timeouts": 0, "tx_bytes": 0,
                      "rx_bytes": 0}
        #: requests sent per opcode name (retries included), for link budgets and tests
        self.ops: Counter = Counter()

    # ------------------------------------------------------------------ port
    def open(self) -> "McuLink":
        """Open the port and say HELLO; raises ConnectionError when nothing answers."""
        self._open_port()
        self._recover(first=True)
        return self

    def _open_port(self) -> None:
        self._close_port()
        try:
            if self._opener is not None:
                self._ser = self._opener(self.url, self.baud)
            else:
                import serial

                self._ser = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.05,
                                                  write_timeout=self.timeout)
        except Exception as exc:  # serial.SerialException, OSError, ValueError from bad URLs
            raise ConnectionError(f"cannot open MCU port {self.url}: {exc}") from exc
        self._parser.reset()

    def _close_port(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            except Exception:  # closing a dead port must not mask the real error
                pass
        self._ser = None

    def close(self) -> None:
        """Close the port."""
        self._close_port()

    def __enter__(self) -> "McuLink":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        """Tell whether the port is open."""
        return self._ser is not None

    # ------------------------------------------------------------------ transport
    def _write(self, data: bytes) -> None:
        if self._ser is None:
            raise ConnectionError(f"MCU port {self.url} is not open")
        self.stats["tx_bytes"] += len(data)
        try:
            self._ser.write(data)
            self._ser.flush()
        except Exception as exc:
            raise ConnectionError(f"write to MCU at {self.url} failed: {exc}") from exc

    def _read_reply(self, opcode: int, seq: int, timeout: float) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            if self._ser is None:
                raise ConnectionError(f"MCU port {self.url} is not open")
            try:
                chunk = self._ser.read(max(1, self._ser.in_waiting))
            except Exception as exc:
                raise ConnectionError(f"read from MCU at {self.url} failed: {exc}") from exc
            self.stats["rx_bytes"] += len(chunk)
            for f in self._parser.feed(chunk):
                if f.seq == seq and f.opcode == opcode and (f.is_response or f.error):
                    return f
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply from MCU at {self.url} within {timeout:.1f} s "
                                   f"({pc.Op(opcode).name} seq {seq})")

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _exchange(self, opcode: int, payload: bytes, flags: int, timeout: Optional[float],
                  seq: Optional[int] = None) -> Frame:
        """One request with retries on timeout / NAK-CRC; raises TimeoutError or ConnectionError."""
        if seq is None:
            seq = self._next_seq()
        frame = encode_frame(opcode, seq, payload, flags)
        self.stats["requests"] += 1
        last: Exception = TimeoutError("no attempt")
        try:
            name = pc.Op(opcode).name
        except ValueError:
            name = f"op{opcode}"
        for attempt in range(self.retries):
            if attempt:
                self.stats["retries"] += 1
            self.ops[name] += 1
            self._write(frame)
            try:
                reply = self._read_reply(opcode, seq, timeout or self.timeout)
            except TimeoutError as exc:
                self.stats["timeouts"] += 1
                self._parser.reset()  # a partial reply will never complete
                last = exc
                continue
            if reply.error or reply.status == pc.Status.BAD_CRC:
                last = TimeoutError(f"corrupted exchange ({reply.error or 'NAK BAD_CRC'})")
                continue
            return reply
        raise last

    def request(self, opcode: int, payload: bytes = b"", flags: int = 0, timeout: Optional[float] = None,
                recover: bool = True) -> Frame:
        """Send one request and return its reply (status OK or MORE); McuStatusError otherwise.

        With ``recover`` a dead or rebooted device is reconnected (tables reloaded) and the request repeated:
        with the same seq when the device did not reboot (it may have run the request already and answers
        from its reply cache), with a new one after a reboot.
        """
        seq = self._next_seq()
        try:
            reply = self._exchange(opcode, payload, flags, timeout, seq)
        except (TimeoutError, ConnectionError) as exc:
            if not recover:
                raise
            log.warning("MCU link: %s; reconnecting", exc)
            before = self.reboots
            self._recover()
            if self._query_lost and opcode in (pc.Op.INFER, pc.Op.CAPTURE):
                # the rows the query named moved: running it would label boxes with the wrong phrases
                raise McuStatusError(opcode, pc.Status.BAD_STATE)
            reply = self._exchange(opcode, payload, flags, timeout, seq if self.reboots == before else None)
        if reply.status not in (pc.Status.OK, pc.Status.MORE):
            raise McuStatusError(opcode, reply.status)
        return reply

    # ------------------------------------------------------------------ recovery
    def _recover(self, first: bool = False) -> None:
        """Reopen until HELLO answers; after a reboot reload the table and query."""
        errors = []
        for attempt in range(self.reconnects + 1):
            try:
                if not first or attempt:
                    self.stats["reconnects"] += 1
                    if attempt:
                        time.sleep(self.reconnect_delay)
                    self._open_port()
                self._hello()
                return
            except (TimeoutError, ConnectionError) as exc:
                errors.append(str(exc))
        self._close_port()
        raise ConnectionError(f"MCU at {self.url} is not answering after {self.reconnects + 1} attempts: "
                              f"{errors[-1] if errors else 'unknown'}")

    def _hello(self) -> Dict[str, int]:
        reply = self._exchange(pc.Op.HELLO, b"", 0, None)
        if reply.status != pc.Status.OK:
            raise McuStatusError(pc.Op.HELLO, reply.status)
        info = unpack_struct("info", reply.payload)
        if info["proto_version"] != pc.PROTOCOL_VERSION:
            raise ConnectionError(f"MCU speaks protocol {info['proto_version']}, host {pc.PROTOCOL_VERSION}")
        rebooted = self.boot_id is not None and info["boot_id"] != self.boot_id
        vocab_before = self.info.get("vocab_hash")
        self.info = info
        self.boot_id = info["boot_id"]
        if rebooted:
            self.reboots += 1
            log.warning("MCU rebooted (boot id %08x); reloading the RAM table", info["boot_id"])
            self._restore(vocab_changed=vocab_before != info["vocab_hash"])
        return info

    def _restore(self, vocab_changed: bool) -> None:
        if vocab_changed and self._query is not None and self._query_names_vocab():
            log.warning("MCU flash vocabulary changed across the reboot; the query's rows must be looked up "
                        "again")
            self._query = None
            self._query_lost = True
        if self._table is not None:
            self._send_chunks(pc.Op.LOAD_TABLE, self._table, 0, recover=False)
        if self._query is not None:
            self.request(pc.Op.SET_QUERY, self._query, recover=False)
        self._hello_quiet()

    def _query_names_vocab(self) -> bool:
        n = self._query[0]
        ids = struct.unpack_from(f"<{n}H", self._query, struct_size("query"))
        return any(not i & pc.ROW_RAM for i in ids)

    def _hello_quiet(self) -> None:
        reply = self._exchange(pc.Op.HELLO, b"", 0, None)
        self.info = unpack_struct("info", reply.payload)

    # ------------------------------------------------------------------ commands
    def hello(self) -> Dict[str, int]:
        """HELLO: firmware/protocol version, model id and hash, input size, dims, capacity, boot id."""
        try:
            return self._hello()
        except (TimeoutError, ConnectionError):
            self._recover()
            return self.info

    def ping(self, data: bytes = b"ping") -> bytes:
        """PING: the device echoes ``data``."""
        return self.request(pc.Op.PING, data).payload

    def _send_chunks(self, opcode: int, data: bytes, flags: int, recover: bool = True) -> Frame:
        total = len(data)
        if total == 0:
            raise ValueError("nothing to send")
        step = pc.MAX_CHUNK_DATA
        reply = None
        for off in range(0, total, step):
            payload = pack_struct("chunk", offset=off, total=total) + data[off:off + step]
            last = off + step >= total
            reply = self.request(opcode, payload, flags if last else 0, recover=recover)
            if not last and reply.status != pc.Status.MORE:
                raise ConnectionError(f"MCU ended a transfer early at {off} of {total} bytes")
        assert reply is not None
        return reply

    def load_table(self, blob: bytes) -> Dict[str, int]:
        """LOAD_TABLE in chunks; remembered and reloaded after a device reboot.  Returns the new info."""
        self._table = bytes(blob)
        self._query = None
        reply = self._send_chunks_recovering(pc.Op.LOAD_TABLE, self._table, 0)
        self.info = unpack_struct("info", reply.payload)
        return self.info

    def set_query(self, rows: Sequence[int], threshold: float = 0.25, max_boxes: int = 8) -> None:
        """SET_QUERY: which rows to score, the cosine threshold and the box limit.

        Row ids: :func:`ram_row` for RAM table rows, plain indices for flash vocabulary rows.  A query the
        device already holds is not sent again.
        """
        rows = [int(r) for r in rows]
        if any(not 0 <= r < pc.ROW_NONE for r in rows):
            raise ValueError(f"row ids must be 0..{pc.ROW_NONE - 1}, got {rows}")
        if not 1 <= len(rows) <= pc.MAX_QUERY_ROWS:
            raise ValueError(f"query needs 1..{pc.MAX_QUERY_ROWS} rows, got {len(rows)}")
        if not 1 <= max_boxes <= pc.MAX_BOXES:
            raise ValueError(f"max_boxes must be 1..{pc.MAX_BOXES}, got {max_boxes}")
        thr = int(round(max(-1.0, min(threshold, 32767 / 32768)) * 32768))
        payload = pack_struct("query", n_rows=len(rows), max_boxes=max_boxes, threshold_q15=thr)
        payload += struct.pack(f"<{len(rows)}H", *rows)
        if payload == self._query and not self._query_lost:
            return  # the device holds it: only SET_QUERY, a table change or a reboot changes its query
        self._query = None
        self.request(pc.Op.SET_QUERY, payload)
        self._query = payload
        self._query_lost = False

    def _send_chunks_recovering(self, opcode: int, data: bytes, flags: int) -> Frame:
        """Send a chunked transfer, restarting from offset 0 when the device reboots half way."""
        before = self.reboots
        try:
            return self._send_chunks(opcode, data, flags)
        except McuStatusError as exc:
            # a reboot the link has not seen yet shows up as BAD_OFFSET (transfer lost) or BAD_STATE (no
            # table); HELLO notices it and restores the table; then the whole transfer starts again
            if exc.status not in (pc.Status.BAD_OFFSET, pc.Status.BAD_STATE):
                raise
            if self.reboots == before:
                self._hello()
            if exc.status == pc.Status.BAD_STATE and self.reboots == before:
                raise
            if self._query_lost and opcode == pc.Op.INFER:
                raise  # the rows the query named moved with the reboot: never run the device's default query
        return self._send_chunks(opcode, data, flags)

    def infer(self, image: np.ndarray, want_scores: bool = False) -> InferResult:
        """INFER: send an in_h x in_w x in_c uint8 frame, return boxes (grid cells), scores and work."""
        img = np.ascontiguousarray(image, dtype=np.uint8)
        want = (self.info.get("input_h"), self.info.get("input_w"), self.info.get("input_c"))
        if img.shape != want:
            raise ValueError(f"frame shape {img.shape}, the MCU model takes {want}")
        flags = int(pc.Flag.WANT_SCORES) if want_scores else 0
        reply = self._send_chunks_recovering(pc.Op.INFER, img.tobytes(), flags)
        return parse_result(reply.payload, want_scores)[0]

    def capture(self, want_scores: bool = False, thumb_div: int = 0) -> CaptureResult:
        """CAPTURE: the device grabs a frame from its own camera, encodes and scores it against the query.

        Args:
            want_scores: also return the Q15 score map.
            thumb_div: > 0 returns a thumbnail of the captured frame, input size / ``thumb_div`` (box filter).
        """
        if not 0 <= thumb_div <= 255:
            raise ValueError(f"thumb_div must be 0..255, got {thumb_div}")
        flags = int(pc.Flag.WANT_SCORES) if want_scores else 0
        flags |= int(pc.Flag.WANT_THUMB) if thumb_div else 0
        reply = self.request(pc.Op.CAPTURE, pack_struct("capture", thumb_div=thumb_div), flags)
        head = unpack_struct("capture_result", reply.payload)
        res, off = parse_result(reply.payload, want_scores, struct_size("capture_result"))
        thumb = None
        if thumb_div:
            tw, th, c = head["thumb_w"], head["thumb_h"], self.info["input_c"]
            if len(reply.payload) - off != tw * th * c:
                raise ValueError(f"CAPTURE reply carries {len(reply.payload) - off} thumbnail bytes, "
                                 f"expected {tw * th * c}")
            thumb = np.frombuffer(reply.payload, np.uint8, tw * th * c, off).reshape(th, tw, c).copy()
        return CaptureResult(res.frame_no, res.macs, res.ticks, res.grid_w, res.grid_h, res.boxes, res.scores,
                             head["capture_us_lo"] | (head["capture_us_hi"] << 32), thumb)

    def clock(self) -> int:
        """CLOCK: the device clock in microseconds since its boot."""
        c = unpack_struct("clock", self.request(pc.Op.CLOCK).payload)
        return c["now_us_lo"] | (c["now_us_hi"] << 32)

    # ------------------------------------------------------------------ vocabulary
    def vocab_lookup(self, hashes: Sequence[int]) -> List[int]:
        """VOCAB_LOOKUP: phrase hashes -> row ids (flash vocabulary first, then RAM table, else ROW_NONE)."""
        hashes = [int(h) & 0xFFFFFFFF for h in hashes]
        out: List[int] = []
        for i in range(0, len(hashes), pc.MAX_LOOKUP):
            part = hashes[i:i + pc.MAX_LOOKUP]
            payload = self.request(pc.Op.VOCAB_LOOKUP, struct.pack(f"<{len(part)}I", *part)).payload
            if len(payload) != 2 * len(part):
                raise ValueError(f"VOCAB_LOOKUP answered {len(payload)} bytes for {len(part)} hashes")
            out += list(struct.unpack(f"<{len(part)}H", payload))
        return out

    def vocab_list(self) -> Tuple[int, List[int]]:
        """VOCAB_LIST: (dims, phrase hash of every flash vocabulary row)."""
        hashes: List[int] = []
        dims = 0
        while True:
            payload = self.request(pc.Op.VOCAB_LIST, pack_struct("vocab_list", start=len(hashes),
                                                                 count=pc.ROW_RAM - 1)).payload
            head = unpack_struct("vocab_list_reply", payload)
            dims = head["dims"]
            n = head["count"]
            hashes += list(struct.unpack_from(f"<{n}I", payload, struct_size("vocab_list_reply")))
            if n == 0 or len(hashes) >= head["total"]:
                return dims, hashes

    def vocab_write(self, blob: bytes) -> Dict[str, int]:
        """VOCAB_WRITE: store a table blob in the device's flash slot (kept through reboots); HELLO info."""
        self._query = None  # the device falls back to its default query
        reply = self._send_chunks_recovering(pc.Op.VOCAB_WRITE, bytes(blob), 0)
        self.info = unpack_struct("info", reply.payload)
        return self.info

    def vocab_erase(self) -> Dict[str, int]:
        """VOCAB_ERASE: empty the flash slot (the built-in vocabulary, if any, answers again)."""
        self._query = None
        self.info = unpack_struct("info", self.request(pc.Op.VOCAB_ERASE).payload)
        return self.info

    def read_embed(self) -> np.ndarray:
        """READ_EMBED: the last frame's int8 region embeddings [grid_h, grid_w, embed_dim]."""
        gh, gw, d = self.info["grid_h"], self.info["grid_w"], self.info["embed_dim"]
        total = gh * gw * d
        out = bytearray()
        while len(out) < total:
            n = min(pc.MAX_PAYLOAD, total - len(out))
            req = pack_struct("read_embed", offset=len(out), length=n)
            out += self.request(pc.Op.READ_EMBED, req).payload
        return np.frombuffer(bytes(out), np.int8).reshape(gh, gw, d)

    def device_stats(self) -> Dict[str, int]:
        """STATS: frame, byte, CRC-error, resync, NAK and duplicate counters of the device."""
        return unpack_struct("stats", self.request(pc.Op.STATS).payload)

    def reset(self) -> Dict[str, int]:
        """RESET: soft reboot of the device (forgets the table; the link reloads it on next use)."""
        reply = self.request(pc.Op.RESET)
        info = unpack_struct("info", reply.payload)
        self.info = info
        self.boot_id = info["boot_id"]
        self._table = None
        self._query = None
        return info
