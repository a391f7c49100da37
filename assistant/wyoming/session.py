"""One connection: its requests, one at a time, each a pipeline of the assistant's own stages.

A request starts with the event that opens it (transcribe/audio-start, synthesize,
synthesize-start, a text transcript for the handle program, run-pipeline) and ends when its pipeline
has drained. A new request first lets the previous one finish, so answers come back in the order
they were asked. The conversation history belongs to the connection: every ResponderStage this
session builds shares ``self.history``, and nothing else does, so one client's questions never
reach another client's prompt. The one exception is asked for by the client: a text question whose
context names a ``conversation_id`` (Home Assistant's conversation agent connects once per question)
continues that named conversation's history, if it was started from the same address.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from wyoming.asr import Transcribe
from wyoming.asr import Transcript as WyTranscript
from wyoming.audio import AudioChunk as WyAudioChunk
from wyoming.audio import AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import NotHandled
from wyoming.info import Describe, SelectProgram
from wyoming.ping import Ping, Pong
from wyoming.pipeline import RunPipeline
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from assistant.core.bus import EventBus
from assistant.core.messages import ReplyText, SpeechEnded, Transcript
from assistant.core.pipeline import Pipeline, PipelineError
from assistant.core.stage import Stage
from assistant.reply.clauses import ClauseSplitter
from assistant.stages.history import Exchange
from assistant.wyoming import requests
from assistant.wyoming.bridge import AudioFeed, Feed, Outbox
from assistant.wyoming.requests import Request
from assistant.wyoming.service import WyomingService
from assistant.wyoming.stages import ConversationEvents
from assistant.wyoming.wake import WakeRequest
from assistant.wyoming.wire import PcmConverter, ProtocolError

log = logging.getLogger(__name__)

POLL_S = 0.02
# ClauseSplitter word counts that never cut at commas: a TTS client's text, sentence by sentence
NEVER = 10**9


class Session:
    def __init__(self, service: WyomingService, outbox: Outbox, address: str) -> None:
        self.service = service
        self.address = address
        self.cfg = service.cfg
        self.outbox = outbox
        self.history: list[Exchange] = []
        self._current: Request | None = None
        self._discard_audio = False  # after a bad audio stream, until the client starts another
        self._wake: WakeRequest | None = None  # a `detect` takes the audio stream after it (wake.py)

    async def handle(self, event: Event) -> None:
        """Serve one event; raises ProtocolError for what the client must be told about."""
        kind = event.type
        try:
            await self._dispatch(event)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # from_event on bad fields
            raise ProtocolError(
                f"malformed '{kind}' event: {type(exc).__name__}: {exc}", "bad-event"
            ) from None

    async def _dispatch(self, event: Event) -> None:
        kind = event.type
        if self._wake is not None and self._wake.takes(kind):  # the audio after a `detect` (wake.py)
            self._wake.handle(event)
        elif WakeRequest.starts(kind):
            self._wake = WakeRequest(self.cfg, event, self.outbox)
        elif Describe.is_type(kind):
            self.outbox.put(self.service.info)
        elif Ping.is_type(kind):
            self.outbox.put(Pong(text=Ping.from_event(event).text))
        elif SelectProgram.is_type(kind):
            log.debug("client selected program %r", SelectProgram.from_event(event).name)
        elif Transcribe.is_type(kind):
            await self._settle()
            self._discard_audio = False
        elif RunPipeline.is_type(kind):
            await self._run_pipeline(RunPipeline.from_event(event))
        elif AudioStart.is_type(kind):
            await self._audio_start(AudioStart.from_event(event))
        elif WyAudioChunk.is_type(kind):
            await self._audio_chunk(WyAudioChunk.from_event(event))
        elif AudioStop.is_type(kind):
            self._audio_stop()
        elif Synthesize.is_type(kind):
            await self._synthesize(Synthesize.from_event(event).text)
        elif SynthesizeStart.is_type(kind):
            await self._settle()
            self._start_synthesis(streaming=True)
        elif SynthesizeChunk.is_type(kind):
            self._synthesize_chunk(SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(kind):
            self._synthesize_stop()
        elif WyTranscript.is_type(kind):
            transcript = WyTranscript.from_event(event)
            await self._handle_text(transcript.text, transcript.context)
        else:
            log.debug("ignoring a '%s' event", kind)  # the protocol says: drop what you do not know

    async def close(self) -> None:
        """The client has gone: stop whatever runs for it, now."""
        await self.abort()

    async def abort(self) -> None:
        req, self._current = self._current, None
        if req is not None:
            req.pipeline.stop_flag.set()
            req.feed.finish()
            if req.task is not None:
                await req.task

    @property
    def working(self) -> bool:
        """A request is still being answered: the client is waiting, not idle."""
        req = self._current
        return req is not None and req.task is not None and not req.task.done()

    def discard_audio(self) -> None:
        """After a refused audio stream: ignore its remaining chunks, until the next request."""
        self._discard_audio = True

    # -- requests --------------------------------------------------------------------------------
    async def _settle(self) -> None:
        """End the current request's input and wait for its answer to be complete."""
        req, self._current = self._current, None
        if req is not None:
            req.feed.finish()
            if req.task is not None:
                await req.task

    def _start(self, kind: str, feed: Feed, stages: list[Stage], audio: bool = False) -> Request:
        return self._start_pipeline(kind, Pipeline(feed, stages, events=EventBus()), feed, audio)

    def _start_pipeline(self, kind: str, pipeline: Pipeline, feed: Feed, audio: bool) -> Request:
        req = Request(kind, pipeline, feed, takes_audio=audio)
        req.task = asyncio.create_task(self._run(req), name=f"wyoming {kind}")
        self._current = req
        return req

    async def _run(self, req: Request) -> None:
        pipeline = req.pipeline
        try:
            await asyncio.to_thread(pipeline.setup)
            pipeline.start()
            while not pipeline.wait(timeout=0):  # never blocks the event loop
                await asyncio.sleep(POLL_S)
            heard_nothing = req.conversation is not None and req.conversation.heard == 0
            if heard_nothing and not pipeline.stop_flag.is_set():  # the audio ended, nobody spoke
                self.outbox.put(Error("no speech was heard in the audio", "no-speech"))
        except PipelineError as exc:
            log.error("%s request failed: %s", req.kind, exc)
            self.outbox.put(Error(f"{req.kind} failed: {exc.cause}", "internal-error"))
        finally:
            req.feed.finish()
            await asyncio.to_thread(pipeline.stop)

    # -- speech to text, and audio for a conversation ---------------------------------------------
    def _start_transcription(self, converter: PcmConverter | None) -> Request:
        stages = requests.transcription(self.cfg, self.service.engines, self.outbox)
        req = self._start("transcribe", AudioFeed(self.cfg.wyoming.max_audio_s), stages, audio=True)
        req.converter = converter
        return req

    def _audio_request(self) -> Request | None:
        req = self._current
        if req is not None and req.takes_audio and not req.feed.finished.is_set():
            return req
        return None

    async def _audio_start(self, start: AudioStart) -> None:
        self._discard_audio = False
        converter = PcmConverter(start.rate, start.width, start.channels)  # refuses a bad format
        req = self._audio_request()
        if req is not None and req.kind == "pipeline":
            req.converter = converter
            return
        await self._settle()
        self._start_transcription(converter)

    async def _audio_chunk(self, chunk: WyAudioChunk) -> None:
        if self._discard_audio:
            return
        req = self._audio_request()
        if req is None:
            current = self._current
            if current is not None and current.kind == "pipeline":
                return  # a conversation turn is over: audio until the next run-pipeline is not ours
            await self._settle()  # audio without audio-start: a transcription all the same
            req = self._start_transcription(None)
        fmt = (chunk.rate, chunk.width, chunk.channels)
        if req.converter is None or req.converter.format != fmt:
            req.converter = PcmConverter(*fmt)
        req.feed.put_audio(req.converter.convert(chunk.audio))  # type: ignore[attr-defined]

    def _audio_stop(self) -> None:
        req = self._audio_request()
        if req is not None:
            if req.converter is not None:
                req.feed.put_audio(req.converter.flush())  # type: ignore[attr-defined]
            req.feed.finish()

    async def _run_pipeline(self, run: RunPipeline) -> None:
        await self._settle()
        self._discard_audio = False
        start, end = run.start_stage.value, run.end_stage.value
        if start == "tts":
            await self._synthesize(run.announce_text or "")
            return
        if start != "asr":
            raise ProtocolError(
                f"pipelines here start at 'asr', not '{start}' (wake words are the satellite's job)",
                "unsupported-stage",
            )
        # live audio, consumed as it arrives (backlog-bounded)
        plumbing = requests.Plumbing(AudioFeed(max_audio_s=None))

        def turn_done(_turn: int) -> None:  # from a pipeline thread; Feed is thread-safe
            if not run.restart_on_end:
                plumbing.feed.finish()

        stages = requests.conversation(
            self.cfg, self.service.engines, self.outbox, self.history, end, turn_done, plumbing
        )
        pipeline = Pipeline(plumbing.feed, stages, events=plumbing.events, scope=plumbing.scope)
        req = self._start_pipeline("pipeline", pipeline, plumbing.feed, audio=True)
        req.conversation = listener = ConversationEvents(self.outbox, end, turn_done)
        plumbing.events.subscribe(listener, *listener.LISTENS_TO)  # after the barge-in: told second

    # -- text to speech ----------------------------------------------------------------------------
    def _start_synthesis(self, streaming: bool) -> Request:
        stages = requests.synthesis(self.cfg, self.service.engines, self.outbox, streaming)
        req = self._start("synthesize-stream" if streaming else "synthesize", Feed(), stages)
        if streaming:
            req.splitter = ClauseSplitter(first_min_words=NEVER, min_words=NEVER)
        return req

    async def _synthesize(self, text: Any) -> None:
        req = self._current
        if req is not None and req.kind == "synthesize-stream" and not req.feed.finished.is_set():
            return  # inside a stream, `synthesize` is only sent for older servers: the chunks count
        text = self._text(text, 0)
        await self._settle()
        req = self._start_synthesis(streaming=False)
        self._say(req, text)
        req.feed.finish()

    def _stream(self) -> Request:
        req = self._current
        if req is None or req.kind != "synthesize-stream" or req.feed.finished.is_set():
            raise ProtocolError("synthesize-chunk/-stop outside a synthesize-start stream", "bad-sequence")
        return req

    def _synthesize_chunk(self, text: Any) -> None:
        req = self._stream()
        text = self._text(text, req.chars)
        req.chars += len(text)
        assert req.splitter is not None
        for sentence in req.splitter.feed(text):
            self._say(req, sentence)

    def _synthesize_stop(self) -> None:
        req = self._stream()
        assert req.splitter is not None
        rest = req.splitter.flush()
        if rest:
            self._say(req, rest)
        req.feed.finish()

    def _say(self, req: Request, text: str) -> None:
        """Each sentence of a stream is its own turn: its own audio-start .. audio-stop."""
        req.turns += 1
        now = time.monotonic()
        req.feed.put(ReplyText(req.turns, text, True, SpeechEnded(req.turns, 0.0, t_decided=now, t=now), now))

    # -- conversation by text (the handle program) -------------------------------------------------
    async def _handle_text(self, text: Any, context: Any = None) -> None:
        text = self._text(text, 0).strip()
        await self._settle()
        if not text:
            self.outbox.put(NotHandled("There was nothing to answer."))
            return
        service = self.service
        history = self.history  # this connection's, unless the client names the conversation
        named = context.get("conversation_id") if isinstance(context, dict) else None
        if isinstance(named, str) and named:
            history = service.history(self.address, named)
        stages = requests.text_conversation(self.cfg, service.engines, self.outbox, history)
        req = self._start("handle", Feed(), stages)
        now = time.monotonic()
        req.feed.put(Transcript(1, text, True, SpeechEnded(1, 0.0, t_decided=now, t=now), now))
        req.feed.finish()

    def _text(self, value: Any, so_far: int) -> str:
        if not isinstance(value, str):
            raise ProtocolError(f"text must be a string, got {type(value).__name__}", "bad-event")
        limit = self.cfg.wyoming.max_text_chars
        if so_far + len(value) > limit:
            raise ProtocolError(
                f"text longer than this server's limit of {limit} characters", "text-too-long"
            )
        return value
