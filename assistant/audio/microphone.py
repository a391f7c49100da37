"""The microphone as an audio source: 16 kHz mono int16 frames, stamped on the mic's own timeline.

The PortAudio callback only copies the block and its arrival time into a queue; conversion (any
rate, any channel count -> 16 kHz mono) and framing happen on the pipeline's source thread. The
stream is opened with an explicit block size: with PulseAudio, ``blocksize=0`` streams were seen to
stall.

A device that disappears mid-session (unplugged, sound server restarted) is noticed by its silence:
no callback for ``stall_s``. The source then closes it, reports it, and tries to reopen it every
``retry_s`` until it returns, so a session survives a replugged headset. ``t_input`` counts only
delivered audio, so it stays continuous across such a gap.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from assistant.audio.convert import PIPELINE_RATE, StreamResampler, float_to_int16, to_mono
from assistant.audio.devices import DeviceError, explain, resolve
from assistant.core.messages import AudioChunk

log = logging.getLogger(__name__)

StatusCallback = Callable[[str, str], None]  # (kind: "opened"|"lost"|"unavailable", detail)


class Microphone:
    def __init__(
        self,
        device: str | int | None = None,
        frame_ms: int = 20,
        rate: int | None = None,
        on_status: StatusCallback | None = None,
        stall_s: float = 1.0,
        retry_s: float = 1.0,
        stream_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.device = device
        self.frame_ms = frame_ms
        self.frame_len = PIPELINE_RATE * frame_ms // 1000
        self.rate = rate
        self.on_status = on_status or (lambda kind, detail: None)
        self.stall_s = stall_s
        self.retry_s = retry_s
        self._factory = stream_factory  # tests inject a fake stream here
        # Unbounded: the device callback must never block; the VAD thread takes a block in microseconds.
        self._blocks: queue.Queue[tuple[np.ndarray, float]] = queue.Queue()
        self._stream: Any = None
        self._lock = threading.Lock()
        self.opened_rate = 0
        self.opened_channels = 0

    # -- opening -----------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the device now (raises DeviceError with clear words); ``chunks`` opens it otherwise."""
        with self._lock:
            if self._stream is None:
                self._stream = self._open()

    def _open(self) -> Any:
        if self._factory is not None:
            stream = self._factory(self._callback)
            self.opened_rate, self.opened_channels = int(stream.samplerate), int(stream.channels)
            stream.start()
            return stream
        import sounddevice as sd

        index = resolve(self.device, "input")
        info = sd.query_devices(index, "input")
        rate = int(self.rate or info["default_samplerate"])
        # mono if the device offers it (the host converts); else its own channel count, downmixed here
        attempts = [1] if info["max_input_channels"] >= 1 else []
        attempts += [min(2, int(info["max_input_channels"]))]
        last: Exception | None = None
        for channels in dict.fromkeys(attempts):
            try:
                stream = sd.InputStream(
                    samplerate=rate,
                    channels=channels,
                    dtype="float32",
                    device=index,
                    blocksize=rate * self.frame_ms // 1000,
                    latency="low",
                    callback=self._callback,
                )
                stream.start()
            except Exception as exc:  # PortAudioError, ValueError for bad settings
                last = exc
                continue
            self.opened_rate, self.opened_channels = rate, channels
            log.info("listening on %s at %d Hz, %d channel(s)", info["name"], rate, channels)
            return stream
        raise explain(last or RuntimeError("no usable channel count"), "input", self.device)

    def _callback(self, indata: np.ndarray, _frames: int, _time: Any, _status: Any) -> None:
        self._blocks.put((indata.copy(), time.monotonic()))

    # -- the source --------------------------------------------------------------------------------
    def chunks(self, stop: threading.Event) -> Iterator[AudioChunk]:
        position = 0  # samples at the pipeline rate already emitted
        pending = np.zeros(0, dtype=np.int16)
        resampler: StreamResampler | None = None
        last_block = time.monotonic()
        self._drain()  # audio from before the pipeline ran (models loading) is nobody's turn
        while not stop.is_set():
            if self._stream is None:
                if not self._reopen(stop):
                    continue
                resampler = StreamResampler(self.opened_rate, PIPELINE_RATE)
                pending = np.zeros(0, dtype=np.int16)
                last_block = time.monotonic()
            try:
                block, t_arrival = self._blocks.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() - last_block > self.stall_s:
                    self._lost(f"no audio for {self.stall_s:.1f} s")
                continue
            last_block = t_arrival
            if resampler is None:
                resampler = StreamResampler(self.opened_rate, PIPELINE_RATE)
            mono = resampler.process(to_mono(block))
            pending = np.concatenate([pending, float_to_int16(mono)])
            n = len(pending) // self.frame_len
            for i in range(n):
                frame = pending[i * self.frame_len : (i + 1) * self.frame_len]
                yield AudioChunk(-1, frame, PIPELINE_RATE, position / PIPELINE_RATE, t_arrival)
                position += self.frame_len
            pending = pending[n * self.frame_len :]

    def _reopen(self, stop: threading.Event) -> bool:
        try:
            self.open()
        except DeviceError as exc:
            self.on_status("unavailable", str(exc))
            stop.wait(self.retry_s)
            return False
        self.on_status("opened", f"{self.opened_rate} Hz, {self.opened_channels} channel(s)")
        return True

    def _lost(self, why: str) -> None:
        log.warning("microphone lost (%s); will reopen it when it returns", why)
        self.on_status("lost", why)
        self.close()
        self._drain()  # stale audio from before the gap

    def _drain(self) -> None:
        while True:
            try:
                self._blocks.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()  # abort, not stop: do not wait for buffers (Ctrl-C must be quick)
                stream.close()
            except Exception:
                log.debug("closing the microphone failed", exc_info=True)
