"""AWS event-stream framing (application/vnd.amazon.eventstream), the encoder side.

A message: total length (4 bytes), headers length (4), CRC32 of those 8 bytes, headers
(name length 1 byte, name, type 7 = string, value length 2 bytes, value), payload, CRC32 of
everything before. botocore's EventStream parser reads exactly this.
"""

from __future__ import annotations

import json
import struct
import zlib


def _headers(headers: dict[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        out += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    return out


def message(headers: dict[str, str], payload: bytes) -> bytes:
    head = _headers(headers)
    prelude = struct.pack(">II", 12 + len(head) + len(payload) + 4, len(head))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


def payload_part(data: bytes) -> bytes:
    """One PayloadPart event of InvokeEndpointWithResponseStream."""
    return message(
        {
            ":event-type": "PayloadPart",
            ":content-type": "application/octet-stream",
            ":message-type": "event",
        },
        data,
    )


def model_stream_error(text: str, code: str = "ModelStreamError") -> bytes:
    """A modeled exception in the stream (the model failed mid-response)."""
    return message(
        {
            ":exception-type": "ModelStreamError",
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"Message": text, "ErrorCode": code}).encode(),
    )
