"""Barge-in over Wyoming (issue 14), the plumbing: the client as a paced loudspeaker that speech over
the reply can pause, resume or stop, and what the client is told of an interruption. The same with the
real models and a real client streaming its microphone is in test_wyoming_real.py."""

from __future__ import annotations

import threading
import time

import numpy as np
from wyoming.event import Event, Eventable

from assistant.core import events as ev
from assistant.wyoming.speaker import ClientSpeaker
from assistant.wyoming.stages import ConversationEvents

RATE = 16000


class ListOutbox:
    """The connection's outbox, kept: (arrival time, event)."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, Event]] = []
        self._lock = threading.Lock()

    def put(self, event: Event | Eventable) -> None:
        with self._lock:
            self.sent.append((time.monotonic(), event.event() if isinstance(event, Eventable) else event))

    def kinds(self) -> list[str]:
        with self._lock:
            return [e.type for _, e in self.sent]

    def audio_s(self) -> float:
        with self._lock:
            return sum(len(e.payload or b"") for _, e in self.sent if e.type == "audio-chunk") / 2 / RATE


def tone(seconds: float) -> np.ndarray:
    return (np.sin(np.arange(int(seconds * RATE)) * 0.1) * 8000).astype(np.int16)


def test_unpaced_the_whole_reply_goes_out_at_once() -> None:
    out = ListOutbox()
    speaker = ClientSpeaker(out)  # type: ignore[arg-type]
    told: list[str] = []
    speaker.write(tone(3.0), RATE, 0.0)
    speaker.end_reply(lambda: told.append("done"))
    assert out.audio_s() == 3.0 and told == ["done"]
    assert out.kinds()[0] == "audio-start" and out.kinds()[-1] == "audio-stop"


def test_paced_the_client_holds_no_more_than_the_lead() -> None:
    out = ListOutbox()
    speaker = ClientSpeaker(out, lead_s=0.2)  # type: ignore[arg-type]
    told: list[float] = []
    t0 = time.monotonic()
    speaker.write(tone(1.0), RATE, 0.0)
    speaker.end_reply(lambda: told.append(time.monotonic() - t0))
    try:
        time.sleep(0.3)
        # after 0.3 s the client has played 0.3 s: it holds the lead and a block (64 ms) at most
        assert 0.3 <= out.audio_s() <= 0.3 + 0.2 + 0.064 + 0.1, out.audio_s()
        assert told == []  # the end of the reply is told once its audio is out, not when queued
        assert speaker.pending_s() > 0.4
        deadline = time.monotonic() + 5
        while not told and time.monotonic() < deadline:
            time.sleep(0.02)
        assert told and 0.6 <= told[0] <= 2.0, told
        assert out.kinds()[-1] == "audio-stop" and out.audio_s() == 1.0
    finally:
        speaker.close()


def test_paused_nothing_is_sent_then_it_goes_on_where_it_stopped() -> None:
    out = ListOutbox()
    speaker = ClientSpeaker(out, lead_s=0.1)  # type: ignore[arg-type]
    try:
        speaker.write(tone(2.0), RATE, 0.0)
        time.sleep(0.2)
        held = speaker.pause()
        sent = out.audio_s()
        assert held > 1.0
        time.sleep(0.5)
        assert out.audio_s() == sent  # paused: not one block more
        speaker.resume()
        time.sleep(0.3)
        assert out.audio_s() > sent
        assert out.kinds().count("audio-start") == 1  # one reply, paused and resumed: one audio cycle
    finally:
        speaker.close()


def test_cleared_the_rest_is_dropped_and_the_audio_closed_at_once() -> None:
    out = ListOutbox()
    speaker = ClientSpeaker(out, lead_s=0.1)  # type: ignore[arg-type]
    told: list[str] = []
    try:
        speaker.write(tone(3.0), RATE, 0.0)
        speaker.end_reply(lambda: told.append("done"))
        time.sleep(0.2)
        speaker.pause()
        dropped = speaker.clear()
        assert dropped > 2.0
        assert out.kinds()[-1] == "audio-stop"
        sent = out.audio_s()
        time.sleep(0.3)
        assert out.audio_s() == sent and told == []  # the cut reply's end is never reported
        speaker.write(tone(0.2), RATE, 0.0)  # the next reply opens its own audio
        speaker.end_reply(lambda: told.append("next"))
        deadline = time.monotonic() + 3
        while not told and time.monotonic() < deadline:
            time.sleep(0.02)
        assert told == ["next"] and out.kinds().count("audio-start") == 2
    finally:
        speaker.close()


def test_the_end_of_a_request_waits_for_paced_audio_but_not_past_the_stop_flag() -> None:
    out = ListOutbox()
    speaker = ClientSpeaker(out, lead_s=0.1)  # type: ignore[arg-type]
    speaker.write(tone(0.5), RATE, 0.0)
    t0 = time.monotonic()
    speaker.finish()
    assert 0.3 <= time.monotonic() - t0 <= 2.0
    assert out.audio_s() == 0.5 and out.kinds()[-1] == "audio-stop"

    out = ListOutbox()
    speaker = ClientSpeaker(out, lead_s=0.1)  # type: ignore[arg-type]
    speaker.write(tone(30.0), RATE, 0.0)
    threading.Timer(0.3, speaker.stop.set).start()  # the pipeline stops: the client went away
    t0 = time.monotonic()
    speaker.finish()
    assert time.monotonic() - t0 < 1.0 and out.audio_s() < 1.0
    assert not [t for t in threading.enumerate() if t.name == "to-client" and t.is_alive()]


def test_speech_that_was_no_interruption_is_not_reported_to_the_client() -> None:
    """A cough or an "mm-hmm" over the reply: the client hears of it voice-started/-stopped only; no
    transcript, no not-handled, and the conversation does not end (the reply goes on)."""
    out = ListOutbox()
    ended: list[int] = []
    listener = ConversationEvents(out, "tts", ended.append)  # type: ignore[arg-type]
    listener(ev.SpeechStarted(2, t_input=5.0))
    listener(ev.SpeechEnded(2, t_input=5.6, t_decided=0.0))
    listener(ev.Interruption(2, 1, "resumed", 400.0, "Mm-hmm.", "backchannel"))
    listener(ev.TranscriptFinal(2, "Mm-hmm."))
    listener(ev.ReplySkipped(2, "not an interruption: 'Mm-hmm.'"))
    assert out.kinds() == ["voice-started", "voice-stopped"] and ended == []
    # a stop is: its transcript, and the conversation ends
    listener(ev.SpeechStarted(3, t_input=7.0))
    listener(ev.Interruption(3, 1, "stopped", 600.0, "Stop.", "stop phrase"))
    listener(ev.TranscriptFinal(3, "Stop."))
    listener(ev.ReplySkipped(3, "stop"))
    assert out.kinds()[-2:] == ["transcript", "not-handled"] and ended == [3]


def test_a_held_conversation_decodes_nothing_and_other_conversations_go_on() -> None:
    from assistant.stages.hold import HeldStreamer

    pulled: list[str] = []

    class Model:  # counts what is decoded: a piece is decoded when it is pulled
        def stream(self, messages, should_stop=lambda: False):  # type: ignore[no-untyped-def]
            for word in ("one", "two", "three", "four"):
                pulled.append(word)
                yield word

        def warm_up(self) -> None:
            pass

    held, other = HeldStreamer(Model()), HeldStreamer(Model())  # type: ignore[arg-type]
    reply = held.stream([])
    assert next(reply) == "one"
    held.hold(True)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(reply))
    reader.start()
    time.sleep(0.2)
    assert pulled == ["one", "two"] and got == []  # held: the piece in hand waits, nothing more decoded
    assert list(other.stream([])) == ["one", "two", "three", "four"]  # another conversation is not held
    held.hold(False)
    reader.join(2)
    assert got == ["two", "three", "four"]


def test_the_clients_own_echo_is_told_from_a_user_over_it() -> None:
    """``ClientEcho``: microphone audio that is the reply as scheduled, delayed (here 0.3 s, beyond
    the lead) and scaled, is the assistant's voice; a user alone is not, nor silence."""
    from assistant.wyoming.echo import ClientEcho

    rng = np.random.default_rng(3)
    reply = (np.convolve(rng.standard_normal(RATE * 2), np.ones(4) / 4, mode="same") * 6000).astype(np.int16)
    user = (np.convolve(rng.standard_normal(RATE * 2), np.ones(3) / 3, mode="same") * 6000).astype(np.int16)
    t0 = 1000.0
    for name, mic in (("echo", np.concatenate([np.zeros(int(0.3 * RATE)), reply * 0.5])), ("user", user)):
        echo = ClientEcho()
        for i in range(0, RATE * 2, 1024):
            echo.played(reply[i : i + 1024], RATE, t0 + i / RATE)
        for i in range(0, RATE * 2, 1024):  # the client's chunks, each arriving at its last sample
            echo.heard(mic[i : i + 1024].astype(np.int16), t0 + (i + 1024) / RATE)
        likeness = echo.echo_likeness(t0 + 1.0, t0 + 1.5)
        assert likeness is not None
        assert likeness > 0.9 if name == "echo" else likeness < 0.2, (name, likeness)
        assert echo.echo_path is (name == "echo")
        assert (echo.peak_level(t0 + 1.0, t0 + 1.5) or 0) > 1000
    assert ClientEcho().echo_likeness(t0, t0 + 1) is None  # nothing heard, nothing played
