"""The Wyoming wire format read with limits, and client audio converted to the pipeline's format.

``wyoming.event.async_read_event`` trusts the lengths a client announces (``data_length``,
``payload_length``) and turns any malformed event into a silent disconnect. A server facing unknown
clients needs both the other way round: refuse announced lengths over a limit *before* reading
them, and say what was wrong. So events are read here; they are the package's own ``Event`` objects.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
from wyoming.event import Event

from assistant.audio.convert import PIPELINE_RATE, StreamResampler, float_to_int16, to_mono

# asyncio's StreamReader refuses lines longer than its limit (64 KiB by default), which the
# wyoming package's server keeps: that is the cap on one JSON header.
MAX_HEADER_BYTES = 64 * 1024
RATES = (8000, 192000)  # sample rates accepted from clients, Hz (the range audio.input_rate allows)
WIDTHS = (1, 2, 3, 4)  # bytes per sample: 8-bit unsigned (as in WAV), 16/24/32-bit signed
MAX_CHANNELS = 8


class ProtocolError(Exception):
    """Something a client sent that the server refuses; ``text`` and ``code`` go back in an error
    event. ``fatal``: the byte stream cannot be trusted any more, so the connection is closed."""

    def __init__(self, text: str, code: str, fatal: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.fatal = fatal


async def read_event(reader: asyncio.StreamReader, max_bytes: int) -> Event | None:
    """The next event, None when the client has gone, or ProtocolError (fatal) when it is malformed."""
    try:
        line = await reader.readline()
    except ValueError:  # asyncio's LimitOverrunError surfaces as ValueError from readline()
        raise ProtocolError(
            f"event header longer than {MAX_HEADER_BYTES} bytes", "header-too-large", True
        ) from None
    except ConnectionError:
        return None
    if not line:
        return None
    if not line.endswith(b"\n"):
        return None  # the connection closed in the middle of a header
    try:
        header = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("event header is not a JSON object", "bad-event", True) from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("event header needs a string 'type'", "bad-event", True)
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError("event 'data' must be a JSON object", "bad-event", True)
    data_length = _length(header, "data_length", max_bytes)
    payload_length = _length(header, "payload_length", max_bytes)
    try:
        if data_length:
            extra = _json_object(await reader.readexactly(data_length))
            data.update(extra)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except (asyncio.IncompleteReadError, ConnectionError):
        return None  # gone in the middle of an event
    return Event(type=header["type"], data=data, payload=payload)


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"{key} must be a non-negative integer", "bad-event", True)
    if value > limit:
        raise ProtocolError(
            f"{key} {value} is over this server's limit of {limit} bytes", "payload-too-large", True
        )
    return value


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("event data is not a JSON object", "bad-event", True) from None
    if not isinstance(value, dict):
        raise ProtocolError("event data is not a JSON object", "bad-event", True)
    return value


def check_format(rate: Any, width: Any, channels: Any) -> tuple[int, int, int]:
    """The audio format of an audio-start/audio-chunk, or ProtocolError naming what is unsupported."""
    for name, value in (("rate", rate), ("width", width), ("channels", channels)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"audio {name} must be an integer, got {value!r}", "bad-audio-format")
    if not RATES[0] <= rate <= RATES[1]:
        raise ProtocolError(
            f"audio rate {rate} Hz is not supported ({RATES[0]}..{RATES[1]} Hz)", "bad-audio-format"
        )
    if width not in WIDTHS:
        raise ProtocolError(f"audio width {width} bytes is not supported (1, 2, 3 or 4)", "bad-audio-format")
    if not 1 <= channels <= MAX_CHANNELS:
        raise ProtocolError(
            f"audio with {channels} channels is not supported (1..{MAX_CHANNELS})", "bad-audio-format"
        )
    return rate, width, channels


class PcmConverter:
    """A client's PCM stream (any supported rate, width and channel count) as mono int16 at 16 kHz,
    resampled with state across chunks (no clicks at chunk edges)."""

    def __init__(self, rate: int, width: int, channels: int) -> None:
        self.format = check_format(rate, width, channels)
        self.rate, self.width, self.channels = self.format
        self._resampler = StreamResampler(rate, PIPELINE_RATE)

    def convert(self, payload: bytes) -> np.ndarray:
        frame = self.width * self.channels
        if len(payload) % frame:
            raise ProtocolError(
                f"audio chunk of {len(payload)} bytes is not whole frames of {self.width}-byte samples "
                f"x {self.channels} channels",
                "bad-audio",
            )
        samples = _decode(payload, self.width).reshape(-1, self.channels)
        return float_to_int16(self._resampler.process(to_mono(samples)))

    def flush(self) -> np.ndarray:
        """What the resampler still holds at the end of the stream."""
        return float_to_int16(self._resampler.process(np.zeros(0, np.float32), last=True))


def _decode(payload: bytes, width: int) -> np.ndarray:
    """Little-endian PCM -> float32 in [-1, 1]."""
    raw = np.frombuffer(payload, dtype=np.uint8)
    if width == 1:  # WAV's 8-bit PCM is unsigned, centred on 128
        return (raw.astype(np.float32) - 128.0) / 128.0
    if width == 2:
        return raw.view("<i2").astype(np.float32) / 32768.0
    if width == 3:
        triples = raw.reshape(-1, 3).astype(np.int32)
        value = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        return value.astype(np.float32) / float(1 << 23)
    return raw.view("<i4").astype(np.float32) / float(1 << 31)
