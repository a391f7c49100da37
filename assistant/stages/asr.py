"""Speech recognition with faster-whisper, working while the user speaks.

Three moments per turn:
- while speaking, a partial transcript every ``partial_interval_ms`` of new audio (for the live view);
- at the first pause, a speculative transcript of the audio so far: if the user does not go on, it
  *is* the final transcript, ready the moment the VAD's hangover ends instead of ~0.5 s later;
- at the end of speech, the final transcript (reusing the speculation when no speech followed it).

A turn's audio is kept only up to one Whisper window (``MAX_PASS_S``): when a turn runs longer (a
long transcription request, or speech up to vad.max_utterance_s), the oldest part is transcribed once,
at its quietest moment, and only its text is kept. So a turn's memory is bounded and no pass, which
holds the recogniser (shared between Wyoming clients) for its whole length, is longer than a window.

With a recogniser on a server (asr.backend: wyoming), the turn's audio travels to it as it comes
(``RecognitionStream``), so a pass at the pause or the end of speech sends only its last moments.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from assistant.audio.convert import PIPELINE_RATE
from assistant.config import AsrConfig
from assistant.core.engines import (
    EngineUnavailable,
    Heard,
    PromptableRecognizer,
    RecognitionStream,
    Recognizer,
    ScoredRecognizer,
    StreamingRecognizer,
    take_failures,
)
from assistant.core.events import (
    SpeechError,
    SpeechFailover,
    TranscriptCommitted,
    TranscriptFinal,
    TranscriptPartial,
    TranscriptSpeculative,
)
from assistant.core.messages import (
    AudioChunk,
    End,
    Message,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    Transcript,
)
from assistant.core.stage import Stage, StageContext

log = logging.getLogger(__name__)

# The final and the speculative pass hear exactly the same input: the audio up to vad.pause_ms after the
# last voiced frame (all the speculative pass can have), then TAIL_ZEROS_S of digital silence. So a
# reused speculation is what the final pass would have said, and recognition does not depend on
# timing. Measured on the golden corpus: this cut matched raw faster-whisper on the whole file (10
# word errors in 328 both); 0.1 s of audio without the zeros made 13, 0.2 s made 10, 0.3 s 16.
# (vad.pause_ms's default, for a stage built by hand in tests; build.asr_stage passes the config's)
END_PAD_S = 0.1
TAIL_ZEROS_S = 0.1
# Partial and speculative passes only pay off when the stage keeps up with the audio; when input is
# queued (a fast file replay, or a busy machine) they would only delay the final transcript.
CAUGHT_UP_S = 0.15
SPECULATE_WITHIN_S = 0.3  # a pause seen later than this is likely already past the hangover
# A partial pass takes a few hundred ms; one running when the user pauses delays the speculative
# pass (and so the reply). Start one only in the middle of a voiced run, when a pause is unlikely.
PARTIAL_AFTER_VOICED_S = 0.3
# Whisper hears 30 s at a time; a pass over more is several windows, each with a cut the model did
# not choose. 25 s leaves room for the tail zeros and a cut a few seconds early at a quiet moment.
MAX_PASS_S = 25.0
CUT_SEARCH_S = 5.0  # the cut goes at the quietest 20 ms of the last few seconds of a full window
CUT_FRAME = PIPELINE_RATE // 50


@dataclass
class _Turn:
    number: int
    chunks: list[np.ndarray]
    samples: int = 0  # received in this turn
    kept_from: int = 0  # samples before this were transcribed into ``committed`` and dropped
    committed: str = ""
    t_input_start: float = 0.0
    partial_at: int = 0  # samples covered by the last partial
    voiced_run: int = 0  # samples of the current run of voiced frames
    spec_text: str | None = None
    spec_until: float = -1.0  # input time up to which the speculation heard speech
    stream: RecognitionStream | None = None  # a remote recogniser's: the audio travels as it comes
    voiced_until: int = 0  # samples up to the end of the last voiced chunk
    near: list[np.ndarray] | None = None  # AudioChunk.near beside ``chunks`` (pcm where it had none)


class AsrStage(Stage):
    name = "asr"

    def __init__(self, cfg: AsrConfig, engine: Recognizer, end_pad_s: float = END_PAD_S) -> None:
        """``end_pad_s``: the audio every pass hears after the last voiced frame, the VAD's pause
        (``vad.pause_ms``): all a speculative pass at that pause can have."""
        self.cfg = cfg
        self.engine = engine
        self.end_pad_s = end_pad_s
        self._turn: _Turn | None = None

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        self.engine.warm_up()

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, SpeechStarted):
            self._close_stream()
            self._turn = _Turn(msg.turn, [], t_input_start=msg.t_input)
            if isinstance(self.engine, StreamingRecognizer):
                self._turn.stream = self.engine.open_stream()
        elif isinstance(msg, AudioChunk) and self._turn is not None and msg.turn == self._turn.number:
            if msg.near is not None and self._turn.near is None and self._turn.kept_from == 0:
                self._turn.near = list(self._turn.chunks)  # over a reply: keep the echo-fitted mic too
            if self._turn.near is not None:
                self._turn.near.append(msg.pcm if msg.near is None else msg.near)
            if msg.echo:  # the played audio, not the user (see AudioChunk.echo): heard as silence
                msg = replace(msg, pcm=np.zeros_like(msg.pcm))
            self._turn.chunks.append(msg.pcm)
            self._turn.samples += len(msg.pcm)
            if self._turn.stream is not None:
                self._stream(self._turn, msg)
            self._turn.voiced_run = self._turn.voiced_run + len(msg.pcm) if msg.voiced else 0
            if self._turn.samples - self._turn.kept_from > MAX_PASS_S * PIPELINE_RATE:
                self._commit(self._turn)
            if _caught_up(msg):
                yield from self._maybe_partial()
        elif (
            isinstance(msg, SpeechPaused)
            and self._turn is not None
            and self.cfg.speculative
            # (a pause the VAD's end-of-turn judgement waits on is not past, however late it is seen)
            and (msg.awaited or _caught_up(msg, SPECULATE_WITHIN_S))
        ):
            turn = self._turn
            heard = self._try_transcribe(self._samples_until(turn, msg.t_input), scored=True)
            if heard is None:
                return  # no speculation: the final pass tries again
            turn.spec_text, turn.spec_until = heard.text, msg.t_input
            # `until` names the pause, so the VAD's end-of-turn decision knows which one it hears
            self.ctx.events.emit(
                TranscriptSpeculative(
                    turn.number, heard.text, until=msg.t_input, last_word_p=heard.last_word_p
                )
            )
            # downstream may start answering; a SpeechResumed or a different final text voids it
            yield Transcript(turn.number, turn.spec_text, False, None, time.monotonic(), speculative=True)
        elif isinstance(msg, SpeechResumed):
            yield msg
        elif isinstance(msg, SpeechEnded) and self._turn is not None:
            yield msg  # first: the responder opens the reply (and its deadlines) now
            yield self._final(msg)
        elif isinstance(msg, End):
            self._close_stream()
            self._turn = None

    def _stream(self, turn: _Turn, msg: AudioChunk) -> None:
        """Give the audio to the remote recogniser as it comes, up to where a pass may end: the
        last voiced frame, plus the pause every pass hears after it (see END_PAD_S). What lies
        beyond is sent once more speech follows it; a pass cannot take back audio it was sent."""
        assert turn.stream is not None
        if msg.voiced:
            turn.voiced_until = turn.samples
        turn.stream.feed(msg.pcm, turn.voiced_until + round(self.end_pad_s * PIPELINE_RATE) - turn.kept_from)

    def _close_stream(self) -> None:
        if self._turn is not None and self._turn.stream is not None:
            self._turn.stream.close()
            self._turn.stream = None

    def _maybe_partial(self) -> Iterator[Message]:
        turn = self._turn
        interval = self.cfg.partial_interval_ms * PIPELINE_RATE // 1000
        if turn is None or interval <= 0 or turn.samples - turn.partial_at < interval:
            return
        if turn.voiced_run < PARTIAL_AFTER_VOICED_S * PIPELINE_RATE:
            return
        turn.partial_at = turn.samples
        heard = self._try_transcribe(turn.samples)
        if heard is None:
            return
        self.ctx.events.emit(TranscriptPartial(turn.number, heard.text))
        yield Transcript(turn.number, heard.text, final=False, ended=None, t=time.monotonic())

    def _final(self, ended: SpeechEnded) -> Transcript:
        turn = self._turn
        assert turn is not None
        self._turn = None
        # the speculation stands if it already covered the last voiced frame
        reused = turn.spec_text is not None and turn.spec_until >= ended.t_input
        failed = False
        if reused:
            text = turn.spec_text or ""
        else:
            try:
                text = self._transcribe(self._samples_until(turn, ended.t_input + self.end_pad_s), turn).text
            except EngineUnavailable as exc:  # a remote recogniser: this turn is lost, the pipeline is not
                log.warning("speech recognition failed for turn %d: %s", turn.number, exc)
                self.ctx.events.emit(SpeechError(turn.number, "asr", str(exc)))
                text, failed = "", True
        if turn.stream is not None:
            turn.stream.close()
            if not failed:  # a server lost while the audio was streamed, whose pass never came
                self._report_failovers(turn.number)
        near_text = None if failed else self._near_pass(turn, ended)
        now = time.monotonic()
        self.ctx.events.emit(TranscriptFinal(turn.number, text, reused, near_text, t=now))
        return Transcript(turn.number, text, final=True, ended=ended, t=now, failed=failed)

    def _near_pass(self, turn: _Turn, ended: SpeechEnded) -> str | None:
        """A second transcript of speech over a loudspeaker's reply, from the mic minus the fitted
        echo (AudioChunk.near), for barge-in's rules; None for other turns. The whole turn is
        kept (a turn committed in parts is no short interruption), and a remote recogniser is not
        asked twice."""
        if turn.near is None or turn.kept_from > 0 or turn.stream is not None:
            return None
        audio = np.concatenate(turn.near)[: self._samples_until(turn, ended.t_input + self.end_pad_s)]
        try:
            return self._pass(audio, turn).text
        except EngineUnavailable:
            return None

    def _commit(self, turn: _Turn) -> None:
        """Transcribe the oldest part of a full window, keep its text, drop its audio."""
        audio = np.concatenate(turn.chunks)
        search = audio[max(0, len(audio) - int(CUT_SEARCH_S * PIPELINE_RATE)) :]
        frames = len(search) // CUT_FRAME
        energy = np.abs(search[: frames * CUT_FRAME].reshape(frames, CUT_FRAME).astype(np.int32)).sum(1)
        cut = len(audio) - len(search) + int(np.argmin(energy)) * CUT_FRAME + CUT_FRAME // 2
        try:
            text = self._pass(audio[:cut], turn).text
        except EngineUnavailable as exc:  # the window's audio goes all the same: memory stays bounded
            log.warning(
                "speech recognition failed for %.1f s of turn %d: %s", cut / PIPELINE_RATE, turn.number, exc
            )
            self.ctx.events.emit(SpeechError(turn.number, "asr", str(exc)))
            text = ""
        turn.committed = f"{turn.committed} {text}".strip()
        turn.chunks, turn.near = [audio[cut:]], None
        turn.kept_from += cut
        if turn.stream is not None:
            turn.stream.drop(cut)
        turn.spec_text, turn.spec_until = None, -1.0  # it heard audio that is now only text
        self.ctx.events.emit(TranscriptCommitted(turn.number, round(cut / PIPELINE_RATE, 2)))

    @staticmethod
    def _samples_until(turn: _Turn, t_input: float) -> int:
        return max(0, min(turn.samples, round((t_input - turn.t_input_start) * PIPELINE_RATE)))

    def _transcribe(self, samples: int, turn: _Turn | None = None, scored: bool = False) -> Heard:
        """The turn's text up to ``samples`` (counted from its start): committed text, and a pass
        over the audio kept since (``scored``: with the last word's probability, where known)."""
        turn = turn or self._turn
        assert turn is not None
        kept = samples - turn.kept_from
        audio = np.concatenate(turn.chunks)[:kept] if turn.chunks and kept > 0 else np.zeros(0, np.int16)
        heard = self._pass(audio, turn, scored)
        return replace(heard, text=f"{turn.committed} {heard.text}".strip())

    def _pass(self, audio: np.ndarray, turn: _Turn, scored: bool = False) -> Heard:
        if len(audio) == 0:
            return Heard("")
        prompt = self.cfg.over_reply_prompt if turn.near is not None else ""
        recognize = self._recognizer(turn, prompt, scored)
        try:
            heard = recognize(np.concatenate([audio, np.zeros(int(TAIL_ZEROS_S * PIPELINE_RATE), np.int16)]))
        except EngineUnavailable:
            take_failures(self.engine)  # nobody took over: the caller reports the loss (or retries)
            raise
        self._report_failovers(turn.number)
        return heard

    def _recognizer(self, turn: _Turn, prompt: str, scored: bool) -> Callable[[np.ndarray], Heard]:
        """The engine's call for this pass: a remote stream's, the prompted one over a reply
        (``prompt``), the scored one for a pause's judgement, else plain transcription."""
        if turn.stream is not None:
            return lambda pcm: Heard(turn.stream.transcribe(pcm))  # type: ignore[union-attr]
        if scored and isinstance(self.engine, ScoredRecognizer):
            return partial(self.engine.hear, prompt=prompt)
        if prompt and isinstance(self.engine, PromptableRecognizer):
            text = partial(self.engine.transcribe_with_prompt, prompt=prompt)  # speech over a reply
            return lambda pcm: Heard(text(pcm))
        return lambda pcm: Heard(self.engine.transcribe(pcm))

    def _report_failovers(self, turn: int) -> None:
        for server, error in take_failures(self.engine):  # a remote server failed, another answered
            self.ctx.events.emit(SpeechFailover(turn, "asr", server, error))

    def _try_transcribe(self, samples: int, scored: bool = False) -> Heard | None:
        """A partial or speculative pass: None when it failed (the final pass tries again)."""
        try:
            return self._transcribe(samples, scored=scored)
        except EngineUnavailable as exc:
            log.warning("speech recognition failed (a partial or speculative pass): %s", exc)
            return None


def _caught_up(msg: AudioChunk | SpeechPaused, within_s: float = CAUGHT_UP_S) -> bool:
    return time.monotonic() - msg.t_arrival < within_s
