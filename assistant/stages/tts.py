"""Text to speech with piper: each reply clause becomes audio as soon as it arrives."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from assistant.audio.convert import trim_silence
from assistant.config import TtsConfig
from assistant.core.engines import EngineUnavailable, Synthesizer, take_failures
from assistant.core.events import SpeechError, SpeechFailover
from assistant.core.messages import Message, ReplyText, SpeechAudio
from assistant.core.stage import Stage, StageContext

log = logging.getLogger(__name__)

LEAD_KEEP_S = 0.01
FILLER_TRAIL_KEEP_S = 0.05
# A clause that ends mid-sentence ("The capital of France" | "is Paris.") is said with a comma, so the
# voice does not fall as at a sentence end, and its trailing silence is cut to this: piper puts
# 200-380 ms at a comma inside a sentence and 50-130 ms between words (en_US-joe-medium).
JOIN_PAUSE_S = 0.12
# short clauses said again in a conversation ("Timer set for 5 minutes.") are replayed from memory
# instead of synthesised: a few KB each
CACHE_PHRASES = 64
CACHE_MAX_CHARS = 80


class TtsStage(Stage):
    name = "tts"

    def __init__(
        self,
        cfg: TtsConfig,
        engine: Synthesizer,
        prepared: tuple[str, ...] = (),
    ) -> None:
        self.cfg = cfg
        self.engine = engine
        # phrases that must sound at once (the deadline's acknowledgement, apologies): synthesised
        # at start-up, so speaking them costs no TTS time
        self.prepared_phrases = prepared
        self._prepared: dict[str, list[np.ndarray]] = {}
        self._cache: OrderedDict[str, list[np.ndarray]] = OrderedDict()

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        try:
            self.engine.synthesize_all("Ready.")  # warm-up: the first call pays onnxruntime's set-up
            # fillers are trimmed both sides: the answer that follows should not wait for their silence
            rate = self.engine.sample_rate
            self._prepared = {
                text: [trim_silence(self.engine.synthesize_all(text), rate, LEAD_KEEP_S, FILLER_TRAIL_KEEP_S)]
                for text in self.prepared_phrases
            }
        except EngineUnavailable as exc:  # a remote synthesiser that is down: synthesised when said
            log.warning("cannot prepare the fallback phrases now: %s", exc)

    def process(self, msg: Message) -> Iterator[Message]:
        if not isinstance(msg, ReplyText):
            return
        assert self.engine is not None
        rate = self.engine.sample_rate
        if msg.text:
            take_failures(self.engine)  # (those of a request abandoned at a barge-in: no turn's now)
            try:
                for audio in self._pieces(msg.text, msg.continues):
                    if self.ctx.scope.is_stale(msg.turn):
                        return
                    yield SpeechAudio(
                        msg.turn, audio, rate, msg.text, False, msg.ended, time.monotonic(), msg.source
                    )
            except EngineUnavailable as exc:  # a remote synthesiser: this clause is lost, not the pipeline
                log.warning(
                    "speech synthesis failed for turn %d (%r is not said): %s", msg.turn, msg.text, exc
                )
                take_failures(self.engine)  # nobody took over
                self.ctx.events.emit(SpeechError(msg.turn, "tts", str(exc)))
            for server, error in take_failures(self.engine):  # another server took over
                self.ctx.events.emit(SpeechFailover(msg.turn, "tts", server, error))
        if msg.final:
            yield SpeechAudio(msg.turn, np.zeros(0, np.int16), rate, "", True, msg.ended, time.monotonic())

    def _pieces(self, text: str, continues: bool = False) -> Iterator[np.ndarray]:
        """Prepared or cached audio at once; otherwise synthesised sentence by sentence, its leading
        silence trimmed (and kept when short, for the next time it is said)."""
        assert self.engine is not None
        if continues:
            text += ","
        known = self._prepared.get(text) or self._cache.get(text)
        if known is not None:  # (trimmed already)
            if text in self._cache:
                self._cache.move_to_end(text)
            yield from known
            return
        pieces: list[np.ndarray] = []
        for audio in self.engine.synthesize(text):
            # piper starts every sentence with 30-60 ms of silence: the first sound is what counts
            audio = trim_silence(
                audio, self.engine.sample_rate, LEAD_KEEP_S, JOIN_PAUSE_S if continues else None
            )
            pieces.append(audio)
            yield audio
        if len(text) <= CACHE_MAX_CHARS and pieces:  # (a cut-off synthesis never gets here)
            self._cache[text] = pieces
            while len(self._cache) > CACHE_PHRASES:
                self._cache.popitem(last=False)
