"""Finding sound devices by name or index, and saying clearly what is wrong when one cannot be used.

sounddevice is imported inside the functions: importing it loads PortAudio, which scans the sound
system once, and a module import must have no such side effect (nor fail on a machine without one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

Kind = Literal["input", "output"]
_WHAT = {"input": "microphone", "output": "speaker"}


class DeviceError(RuntimeError):
    """A device that cannot be used; the message says which and why, in words a user can act on."""


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    host_api: str
    inputs: int
    outputs: int
    default_rate: int
    default_input: bool
    default_output: bool


def list_devices() -> list[DeviceInfo]:
    import sounddevice as sd

    try:
        devices = sd.query_devices()
        apis = sd.query_hostapis()
        default_in, default_out = sd.default.device
    except Exception as exc:  # PortAudio missing or broken
        raise DeviceError(f"cannot list sound devices: {exc}") from exc
    return [
        DeviceInfo(
            index=d["index"],
            name=d["name"],
            host_api=apis[d["hostapi"]]["name"],
            inputs=d["max_input_channels"],
            outputs=d["max_output_channels"],
            default_rate=int(d["default_samplerate"]),
            default_input=d["index"] == default_in,
            default_output=d["index"] == default_out,
        )
        for d in devices
    ]


def format_devices(devices: list[DeviceInfo]) -> str:
    if not devices:
        return "No sound devices found (is a sound server such as PulseAudio or PipeWire running?)."
    rows = [("", "index", "name", "api", "in", "out", "rate")]
    for d in devices:
        mark = ("<" if d.default_input else " ") + (">" if d.default_output else " ")
        rows.append(
            (mark, str(d.index), d.name, d.host_api, str(d.inputs), str(d.outputs), str(d.default_rate))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines) + "\n(< default microphone, > default speaker; pass a name part or an index)"


def resolve(spec: str | int | None, kind: Kind) -> int:
    """The PortAudio index of the device named by ``spec`` (None = the system default).

    A string that is all digits is an index; otherwise it is matched against device names
    (case-insensitive: an exact name first, then a unique part of a name).
    """
    devices = [d for d in list_devices() if (d.inputs if kind == "input" else d.outputs) > 0]
    what = _WHAT[kind]
    if not devices:
        raise DeviceError(f"no {what} found: the sound system lists no {kind} device")
    if spec is None:
        default = next(
            (d for d in devices if (d.default_input if kind == "input" else d.default_output)), None
        )
        if default is None:
            raise DeviceError(
                f"no default {what} is set; choose one with --{kind}-device (see `assistant devices`)"
            )
        return default.index
    if isinstance(spec, int) or str(spec).strip().isdigit():
        index = int(spec)
        if any(d.index == index for d in devices):
            return index
        raise DeviceError(f"no {what} with index {index}; {kind} devices: {_names(devices)}")
    text = str(spec).strip().lower()
    exact = [d for d in devices if d.name.lower() == text]
    partial = exact or [d for d in devices if text in d.name.lower()]
    if len(partial) == 1 or exact:
        return partial[0].index
    if not partial:
        raise DeviceError(f"no {what} matches '{spec}'; {kind} devices: {_names(devices)}")
    raise DeviceError(
        f"'{spec}' matches several {kind} devices ({_names(partial)}); give more of the name or an index"
    )


def explain(exc: BaseException, kind: Kind, device: str | int | None) -> DeviceError:
    """Turn a PortAudio error into words: busy, gone, or unsupported settings."""
    what = _WHAT[kind]
    name = "the default " + what if device is None else f"{what} '{device}'"
    text = str(exc)
    low = text.lower()
    if "unavailable" in low or "busy" in low or "-9985" in low:
        return DeviceError(f"{name} is busy: another program is using it exclusively ({text})")
    if "invalid device" in low or "-9996" in low or "no such" in low or "error querying device" in low:
        return DeviceError(f"{name} is not there (unplugged or removed?) ({text})")
    if "sample rate" in low or "-9997" in low or "channels" in low or "-9998" in low:
        return DeviceError(f"{name} does not support the requested format ({text})")
    return DeviceError(f"{name} cannot be opened: {text}")


def _names(devices: list[DeviceInfo]) -> str:
    return ", ".join(f"{d.index}: {d.name}" for d in devices)
