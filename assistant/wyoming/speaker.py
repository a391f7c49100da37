"""The Wyoming client as the loudspeaker of a spoken conversation (run-pipeline).

Reply audio goes to the client as audio events. Sent all at once (``lead_s`` None), the client holds
the whole reply and nothing said over it can stop it. Paced, it goes out as the client plays it,
``lead_s`` ahead: then barge-in (``assistant.stages.bargein``) can pause it (nothing more is sent),
resume it, or drop the rest (audio-stop at once), as with a local speaker. What the client already
holds, at most ``lead_s``, still plays: the lead trades that against gaps when this server is slow
to send (2 cores shared with the recogniser and the LLM).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from wyoming.audio import AudioStart, AudioStop

from assistant.core.messages import Message, SpeechAudio
from assistant.core.stage import StageContext
from assistant.stages.playback import PlaybackStage
from assistant.wyoming.bridge import Outbox
from assistant.wyoming.stages import SAMPLES_PER_CHUNK, audio_events

POLL_S = 0.1  # the sender looks at the stop flag at least this often
FINISH_WAIT_S = 60.0  # the end of a request waits at most this long for paced audio to go out
OnPlay = Callable[[np.ndarray, int, float], None]  # (pcm, rate, when the client starts playing it)


@dataclass
class _Block:
    pcm: np.ndarray
    rate: int

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.rate


@dataclass
class _EndOfReply:
    on_sent: Callable[[], None] | None  # told once the client has the reply's audio-stop


class ClientSpeaker:
    """An ``AudioSink`` that is also barge-in's ``Speaker`` (pause, resume, clear, pending_s).

    ``end_reply`` closes a reply's audio (audio-stop) after its last block has gone out, and then
    tells ``on_sent``: a conversation ends when the client has heard its reply, not when the reply
    was synthesised (speech over its tail must still be heard). ``stop`` is the pipeline's stop flag:
    once set, nothing more is sent and nothing waits.
    """

    def __init__(self, outbox: Outbox, lead_s: float | None = None, on_play: OnPlay | None = None) -> None:
        self.outbox = outbox
        self.lead_s = lead_s
        self.on_play = on_play  # told each block and when the client starts playing it (echo.py)
        self.stop = threading.Event()  # ClientPlayback hands it the pipeline's
        self._closed = False
        self._items: deque[_Block | _EndOfReply] = deque()
        self._cond = threading.Condition()
        self._paused = False
        self._open = False  # an audio-start was sent, its audio-stop not yet
        self._client_until = 0.0  # when the client will have played all audio sent so far
        self._thread: threading.Thread | None = None

    # -- AudioSink ---------------------------------------------------------------------------------
    def write(self, pcm: np.ndarray, sample_rate: int, at_input_s: float) -> None:
        blocks = [
            _Block(pcm[i : i + SAMPLES_PER_CHUNK], sample_rate) for i in range(0, len(pcm), SAMPLES_PER_CHUNK)
        ]
        self._add(*blocks)

    def end_reply(self, on_sent: Callable[[], None] | None = None) -> None:
        self._add(_EndOfReply(on_sent))

    def finish(self) -> None:
        """The request is over: wait (bounded) for what is queued to go out, then close the audio."""
        end = time.monotonic() + FINISH_WAIT_S
        with self._cond:
            while self._items and not self._ended() and time.monotonic() < end:
                self._cond.wait(POLL_S)
            self._close_audio()
        self.close()

    def close(self) -> None:
        """Stop sending (the client went away, or the request is over) and end the sender thread."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(POLL_S * 2)

    # -- barge-in's Speaker ------------------------------------------------------------------------
    def pause(self) -> float:
        """Send nothing more until ``resume``; returns the seconds held here."""
        with self._cond:
            self._paused = True
            return self._queued_s()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def clear(self) -> float:
        """Drop the reply's audio not yet sent and close it (audio-stop); returns the seconds dropped
        here (the client may still play up to ``lead_s`` of what it has)."""
        with self._cond:
            dropped = self._queued_s()
            self._items.clear()  # (a dropped reply's end tells nobody: the turn that cut it ends the run)
            self._paused = False
            self._close_audio()
            self._cond.notify_all()
        return dropped

    def pending_s(self) -> float:
        """Audio not yet heard by the client: queued here, or sent and still playing there."""
        with self._cond:
            return self._queued_s() + max(0.0, self._client_until - time.monotonic())

    # -- sending -----------------------------------------------------------------------------------
    def _add(self, *items: _Block | _EndOfReply) -> None:
        done: list[Callable[[], None]] = []
        with self._cond:
            if self._ended():
                return
            self._items.extend(items)
            if self.lead_s is None:  # unpaced: out at once, on the caller's thread
                done, _ = self._send_due()
            elif self._thread is None:
                self._thread = threading.Thread(target=self._run, name="to-client", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        for callback in done:  # outside the lock, as the sender thread does
            callback()

    def _run(self) -> None:
        while not self._ended():
            with self._cond:
                done, wait_s = self._send_due()
                if not done:
                    self._cond.wait(POLL_S if wait_s is None else min(POLL_S, wait_s))
            for callback in done:  # outside the lock: they end the request (feed.finish)
                callback()

    def _send_due(self) -> tuple[list[Callable[[], None]], float | None]:
        """Under the lock: send what is due; the callbacks of replies closed, and how long until the
        next block is due (None: nothing to send until more arrives or the pause ends)."""
        done: list[Callable[[], None]] = []
        while self._items and not self._paused and not self._ended():
            item = self._items[0]
            if isinstance(item, _EndOfReply):
                self._items.popleft()
                self._close_audio()
                if item.on_sent is not None:
                    done.append(item.on_sent)
                continue
            now = time.monotonic()
            ahead = self._client_until - now
            if self.lead_s is not None and ahead > self.lead_s:
                return done, ahead - self.lead_s
            self._items.popleft()
            if not self._open:
                self.outbox.put(AudioStart(rate=item.rate, width=2, channels=1))
                self._open = True
            for event in audio_events(item.pcm, item.rate):
                self.outbox.put(event)
            start = max(self._client_until, now)
            self._client_until = start + item.duration
            if self.on_play is not None:
                self.on_play(item.pcm, item.rate, start)
        if not self._items:
            self._cond.notify_all()  # (finish waits for an empty queue)
        return done, None

    def _ended(self) -> bool:
        return self._closed or self.stop.is_set()

    def _close_audio(self) -> None:
        if self._open:
            self.outbox.put(AudioStop())
            self._open = False

    def _queued_s(self) -> float:
        return sum(item.duration for item in self._items if isinstance(item, _Block))


class ClientPlayback(PlaybackStage):
    """``PlaybackStage`` (first-audio timing, what was played) with the client as its speaker; it
    closes each reply's audio and reports the reply as delivered once the client has all of it."""

    def __init__(self, speaker: ClientSpeaker, on_reply_done: Callable[[int], None]) -> None:
        super().__init__([speaker])
        self.speaker = speaker
        self.on_reply_done = on_reply_done

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        self.speaker.stop = ctx.stop

    def process(self, msg: Message) -> Iterator[Message]:
        yield from super().process(msg)
        if isinstance(msg, SpeechAudio) and msg.final:
            turn = msg.turn
            self.speaker.end_reply(lambda: self.on_reply_done(turn))

    def close(self) -> None:
        self.speaker.close()
