"""Live conversation: the microphone in, the speaker out, barge-in, and no answering itself.

Three parts, each small:

- ``FarEnd`` keeps what the speaker actually played (the speaker's callback feeds it), placed on the
  monotonic clock: the reference for echo cancellation and for echo-aware gating.
- ``EchoGuard`` wraps the microphone (an audio source itself). It removes the assistant's own voice from
  the mic signal (WebRTC AEC3, ``barge_in.echo: aec``) and/or gates it (``gate``): while the speaker
  plays and for an echo tail after it, a frame reaches the VAD only when it is louder than the echo
  could be. So the VAD never hears the assistant, and only real user speech can start a turn.
- ``BargeIn`` listens to the VAD's ``speech_started``: a new user turn cancels every older one
  (``scope.interrupt``: the LLM loop, TTS and playback drop them) and empties the speaker at once.
  The VAD only starts a turn after ``vad.min_speech_ms`` of voice, so coughs, clicks and short
  backchannels never interrupt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from assistant.audio.convert import PIPELINE_RATE, StreamResampler, float_to_int16
from assistant.audio.sinks import AudioSink
from assistant.config import BargeInConfig, Config
from assistant.events import Event, EventBus
from assistant.messages import AudioChunk
from assistant.pipeline import AudioSource, Pipeline
from assistant.stage import Stage
from assistant.turn import TurnScope

log = logging.getLogger(__name__)

SILENT_RMS = 30.0  # int16 RMS under which the far end counts as silent (about -60 dBFS)
GATE_HOLD_S = 0.25  # once a frame passes the gate, keep it open this long: words have quiet parts
AEC_IDLE_S = 30.0  # keep the canceller running this long after playback: pausing it between
# replies was followed by echo getting through; idle (no reply for 30 s) it costs nothing
LEVEL_EVERY_S = 0.1
RESIDUAL_WINDOW = 250  # frames of playback (5 s) over which the canceller's residue is judged
RESIDUAL_HEADROOM_DB = 6.0  # input level events for the live view


class FarEnd:
    """What the speaker played, at 16 kHz, read by the microphone side in lock-step.

    The speaker's callback appends every block it plays (silence included); the echo guard reads as
    many samples as each microphone frame holds. Both streams run on sample clocks, so the distance
    between writer and reader stays fixed (up to slow drift) and the echo canceller sees a steady
    delay. Mapping both through callback times instead was measured to jitter by several ms and
    halve the cancellation. The reader starts ``margin_s`` behind the writer so callback jitter does
    not make it catch up; it skips ahead when more than ``max_lag_s`` behind (start-up, a stall), and
    gets silence without moving when the writer is late.
    """

    def __init__(self, seconds: float = 4.0, margin_s: float = 0.06, max_lag_s: float = 2.0) -> None:
        self._ring = np.zeros(int(seconds * PIPELINE_RATE), dtype=np.int16)
        self._written = 0  # samples appended so far
        self._read = 0  # next sample the reader gets
        self.margin = int(margin_s * PIPELINE_RATE)
        self.max_lag = int(max_lag_s * PIPELINE_RATE)
        self._resamplers: dict[int, StreamResampler] = {}
        self._silent_blocks = 0
        self.resyncs = 0  # times the reader had to skip ahead (reported: the canceller re-converges)
        self._frac = 0.0  # fraction of a sample carried between skipped blocks
        self._lock = threading.Lock()

    def push(self, block: np.ndarray, rate: int) -> None:
        """Called from the speaker's callback with the float block it just handed to the device."""
        resampler = self._resamplers.get(rate)
        if resampler is None:
            resampler = self._resamplers[rate] = StreamResampler(rate, PIPELINE_RATE)
        silent = not block.any()
        if silent and self._silent_blocks >= 10:  # 10 blocks of silence flushed its filter
            # idle: the resampler holds only silence, so skip it (most of the idle CPU) and count
            # the samples it would have made; resumed later, its output lines up as if never paused
            self._frac += len(block) * PIPELINE_RATE / rate
            pcm = np.zeros(int(self._frac), dtype=np.int16)
            self._frac -= len(pcm)
        else:
            pcm = float_to_int16(resampler.process(block))
        self._silent_blocks = self._silent_blocks + 1 if silent else 0
        pcm = pcm[-len(self._ring) :]
        with self._lock:
            size = len(self._ring)
            start = self._written % size
            first = min(len(pcm), size - start)
            self._ring[start : start + first] = pcm[:first]
            self._ring[: len(pcm) - first] = pcm[first:]
            self._written += len(pcm)

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` played samples (zeros while the speaker delivers nothing)."""
        with self._lock:
            if self._written - self._read > self.max_lag:  # fell behind (start-up, a stall): skip on
                self._read = self._written - n - self.margin
                self.resyncs += 1
            if self._written - self._read < n:  # the speaker is late: wait for it, never re-read
                return np.zeros(n, dtype=np.int16)
            size = len(self._ring)
            start = self._read % size
            self._read += n
            if start + n <= size:
                return self._ring[start : start + n].copy()
            return np.concatenate([self._ring[start:], self._ring[: start + n - size]])


class Canceller(Protocol):
    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray: ...


def webrtc_canceller(delay_ms: int = 0) -> Canceller:
    """WebRTC's AEC3 (pywebrtc-audio): the canceller Chrome uses, with its own delay estimator."""
    from pywebrtc_audio import EchoCanceller

    return EchoCanceller(sample_rate=PIPELINE_RATE, num_channels=1, stream_delay_ms=delay_ms)


def _rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


def dbfs(rms: float) -> float:
    return 20 * np.log10(max(rms, 1.0) / 32768)


class EchoGuard:
    """The microphone without the assistant's voice: an audio source wrapping an audio source.

    A wrapper rather than a stage: it runs on the source thread, before any turn exists, and every
    frame it yields goes on (gated frames become silence, so the input timeline stays whole).
    """

    def __init__(
        self,
        source: AudioSource,
        cfg: BargeInConfig,
        far: FarEnd,
        events: EventBus,
        canceller: Callable[[], Canceller] | None = None,
    ) -> None:
        self.source = source
        self.cfg = cfg
        self.far = far
        self.events = events
        self._make_canceller = canceller or (lambda: webrtc_canceller(cfg.aec_delay_ms))
        self._aec: Canceller | None = None
        self._far_levels: deque[tuple[float, float]] = deque()  # (t, rms) within the echo tail
        self._far_heard_at = -1e9  # last time the far end was not silent
        self._open_until = -1e9
        self._residuals: deque[float] = deque(maxlen=RESIDUAL_WINDOW)
        self._playing = False
        self._level_at = 0.0
        self._level_peak = 0.0
        self._gated = False

    def chunks(self, stop: threading.Event) -> Iterator[AudioChunk]:
        if self.cfg.echo == "aec" and self._aec is None:
            self._aec = self._make_canceller()
        for chunk in self.source.chunks(stop):
            yield self.process(chunk)

    def close(self) -> None:
        self.source.close()

    def process(self, msg: AudioChunk) -> AudioChunk:
        t_end = msg.t_input + msg.duration  # the mic's own timeline: steady, unlike arrival times
        resyncs = self.far.resyncs
        far = self.far.read(len(msg.pcm))  # always: the reader must keep in step
        if self.far.resyncs != resyncs:
            self.events.emit("echo_resync", -1, backlog_s=round(time.monotonic() - msg.t_arrival, 3))
        echo_rms = self._echo_level(t_end, _rms(far) if far.any() else 0.0, msg.duration)
        pcm = msg.pcm
        if self._aec is not None and t_end - self._far_heard_at < AEC_IDLE_S:
            pcm = self._aec.process(pcm, far)
        gated = self._gate(pcm, echo_rms, t_end)
        self._report(t_end, msg.pcm, echo_rms > 0, gated)
        return AudioChunk(
            msg.turn, np.zeros_like(pcm) if gated else pcm, msg.sample_rate, msg.t_input, msg.t_arrival
        )

    def _echo_level(self, t: float, far_rms: float, frame_s: float) -> float:
        """The loudest far-end level within the echo tail: what may still be ringing in the room."""
        if far_rms > SILENT_RMS:
            self._far_heard_at = t
            self._far_levels.append((t, far_rms))
        tail = self.cfg.echo_tail_ms / 1000
        while self._far_levels and self._far_levels[0][0] < t - tail - frame_s:
            self._far_levels.popleft()
        return max((level for _, level in self._far_levels), default=0.0)

    def _gate(self, pcm: np.ndarray, echo_rms: float, t: float) -> bool:
        """True when the frame must not reach the VAD (it may be the assistant's own voice)."""
        if echo_rms <= 0 or self.cfg.echo == "none":
            return False
        if not self.cfg.enabled:
            return True  # half duplex: nobody can talk over the assistant
        level = _rms(pcm)
        margin = self.cfg.gate_margin_db if self._aec is None else self._residual_threshold(level, echo_rms)
        if level >= echo_rms * 10 ** (margin / 20):
            self._open_until = t + GATE_HOLD_S
        return t > self._open_until

    def _residual_threshold(self, level: float, echo_rms: float) -> float:
        """The aec gate's margin: ``residual_margin_db``, raised while the canceller leaves more.

        When the echo path changes (a window opened, the mic moved, the loopback switched on) AEC3
        needs a second or two of speech to re-converge; meanwhile its residue is near the echo's own
        level and would pass a fixed gate. So the gate also keeps the residue's 80th percentile over
        the last frames of playback (a user's few hundred ms of barge-in cannot move it) and
        requires RESIDUAL_HEADROOM_DB above that. Before any playback it assumes the worst (0 dB).
        """
        self._residuals.append(20 * np.log10(max(level, 1.0) / echo_rms))
        typical = float(np.percentile(self._residuals, 80)) if len(self._residuals) >= 25 else 0.0
        return max(self.cfg.residual_margin_db, typical + RESIDUAL_HEADROOM_DB)

    def _report(self, t: float, raw: np.ndarray, playing: bool, gated: bool) -> None:
        if playing != self._playing:
            self._playing = playing
            self.events.emit("playback_started" if playing else "playback_stopped", -1)
        self._level_peak = max(self._level_peak, _rms(raw))
        self._gated = self._gated or gated
        if t - self._level_at >= LEVEL_EVERY_S:
            self.events.emit(
                "input_level", -1, dbfs=round(float(dbfs(self._level_peak)), 1), gated=self._gated
            )
            self._level_at, self._level_peak, self._gated = t, 0.0, False


class Speaker(Protocol):
    def clear(self) -> float: ...

    def pending_s(self) -> float: ...


class Interruptible(Protocol):
    def interrupt(self) -> None: ...


@dataclass
class _Clause:
    text: str
    start: float
    duration: float


class BargeIn:
    """An event listener: a new user turn cancels the older ones and silences the speaker at once.

    Runs on the VAD's thread, synchronously with ``speech_started``, so the stop is not delayed by
    any queue. Reports ``barge_in`` with what of the cut reply was actually heard.
    """

    def __init__(
        self,
        cfg: BargeInConfig,
        scope: TurnScope,
        speaker: Speaker,
        playback: Interruptible | None,
        events: EventBus,
    ) -> None:
        self.cfg = cfg
        self.scope = scope
        self.speaker = speaker
        self.playback = playback
        self.events = events
        self._lock = threading.Lock()
        self._clauses: dict[int, list[_Clause]] = {}
        self._replying: set[int] = set()  # turns with a transcript whose reply is not done playing
        self._done: set[int] = set()  # turns whose reply audio is all queued for the speaker
        events.subscribe(self)

    def __call__(self, e: Event) -> None:
        if e.kind == "speech_started":
            self._on_speech(e)
        elif e.kind == "audio_out":
            with self._lock:
                self._clauses.setdefault(e.turn, []).append(
                    _Clause(e.data["text"], e.t, e.data["duration_s"])
                )
        elif e.kind == "transcript_final" and e.data.get("text", "").strip():
            with self._lock:
                self._replying.add(e.turn)
        elif e.kind in ("reply_audio_done", "reply_skipped"):
            # not reply_done: that is the text, and its last clauses may still be in synthesis
            with self._lock:
                self._done.add(e.turn)
                if self.speaker.pending_s() <= 0:  # already heard (or nothing to hear)
                    self._replying -= self._done
        elif e.kind == "playback_stopped":  # a reply is over once all its audio has been heard
            with self._lock:
                self._replying -= self._done

    def _on_speech(self, e: Event) -> None:
        if not self.cfg.enabled:
            return
        older = [t for t in self._replying if t < e.turn]
        playing = self.speaker.pending_s() > 0
        self.scope.interrupt(e.turn)  # a new turn makes every older reply moot, spoken or not
        dropped = self.speaker.clear()
        if self.playback is not None:
            self.playback.interrupt()
        now = time.monotonic()
        with self._lock:
            self._replying.clear()
            self._done.clear()
            cut = max(older, default=None)
            spoken = self._spoken(cut, now) if cut is not None else ""
            for t in [t for t in self._clauses if t < e.turn]:
                del self._clauses[t]
        if cut is None and not playing:
            return
        log.info("barge-in: turn %s interrupted by turn %d after %.2f s of reply", cut, e.turn, dropped)
        self.events.emit(
            "barge_in",
            e.turn,
            t=now,
            interrupted=cut,
            dropped_s=round(dropped, 3),
            spoken=spoken,
            reaction_ms=round((now - e.t) * 1000, 1),
        )

    def _spoken(self, turn: int, now: float) -> str:
        """The words of ``turn``'s reply heard before ``now`` (a clause cut midway: pro rata)."""
        words: list[str] = []
        for c in self._clauses.get(turn, []):
            if now <= c.start:
                break
            part = c.text.split()
            heard = 1.0 if c.duration <= 0 else min(1.0, (now - c.start) / c.duration)
            words += part[: int(round(len(part) * heard))]
        return " ".join(words)


# Builds the stages from the responder to the speaker, given the audio sinks.
SpeakingStages = Callable[[list[AudioSink]], list[Stage]]


class Watchdog:
    """Checks the speaker every ``every_s`` and reopens it when its device went away and came back."""

    def __init__(self, speaker: Any, events: EventBus, every_s: float = 0.5) -> None:
        self.speaker = speaker
        self.events = events
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="speaker-watchdog", daemon=True)
        self._lost = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(0.2)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            ok = self.speaker.reopen_if_lost()
            if ok == self._lost:  # state changed
                self._lost = not ok
                self.events.emit("device", -1, device="speaker", state="lost" if self._lost else "opened")
                (log.warning if self._lost else log.info)(
                    "speaker %s", "lost; retrying" if self._lost else "is back"
                )


def run_listen(
    cfg: Config,
    events: EventBus,
    progress: Callable[[str], None],
    input_device: str | int | None = None,
    output_device: str | int | None = None,
    duration_s: float | None = None,
    speaking: SpeakingStages | None = None,
) -> None:
    """Microphone -> echo stage -> the usual listening and speaking stages -> speaker, until Ctrl-C
    (or ``duration_s``). ``speaking`` builds other speaking stages (the agent's) for the speaker.
    Device errors at start-up raise DeviceError; later ones are survived."""
    from assistant import app
    from assistant.audio.microphone import Microphone
    from assistant.audio.sinks import PlaybackStage, SpeakerSink

    def mic_status(state: str, detail: str) -> None:
        events.emit("device", -1, device="microphone", state=state, detail=detail)

    far = FarEnd()
    mic = Microphone(
        input_device if input_device is not None else cfg.audio.input_device,
        frame_ms=cfg.audio.frame_ms,
        rate=cfg.audio.input_rate,
        on_status=mic_status,
    )
    mic.open()  # before the models load: a missing or busy device is reported at once
    speaker = None
    try:
        out = output_device if output_device is not None else cfg.audio.output_device
        speaker = SpeakerSink(out, block_s=0.02, on_played=far.push, latency="low")
        store = app.model_store(cfg)
        if speaking is None:
            speaking_stages = app.speaking_stages(cfg, store, [speaker], progress)
        else:
            speaking_stages = speaking([speaker])
        stages = [*app.listening_stages(cfg, store), *speaking_stages]
        pipeline = Pipeline(EchoGuard(mic, cfg.barge_in, far, events), stages, events=events)
        playback = next((s for s in stages if isinstance(s, PlaybackStage)), None)
        BargeIn(cfg.barge_in, pipeline.scope, speaker, playback, events)
        watchdog = Watchdog(speaker, events)
        try:
            pipeline.setup()
            pipeline.start()
            watchdog.start()
            events.emit("ready", -1, echo=cfg.barge_in.echo, barge_in=cfg.barge_in.enabled)
            end = None if duration_s is None else time.monotonic() + duration_s
            while not pipeline.wait(timeout=0.1):
                if end is not None and time.monotonic() >= end:
                    break
        finally:
            # devices first: aborting the streams is instant and frees them even if a model call
            # keeps a thread busy past the pipeline's join budget
            mic.close()
            speaker.close()
            watchdog.stop()
            pipeline.stop()
    finally:
        mic.close()
        if speaker is not None:
            speaker.close()
