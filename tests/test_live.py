"""Live conversation: echo guard, barge-in, microphone, devices, live view; then the real thing on
virtual PulseAudio devices (``real``: the shipped models, real sounddevice streams, a subprocess)."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from assistant.audio import devices
from assistant.audio.devices import DeviceError, DeviceInfo
from assistant.audio.echo import EchoGuard, FarEnd
from assistant.audio.microphone import Microphone
from assistant.config import BargeInConfig
from assistant.core import events as ev
from assistant.core.bus import EventBus, EventLog
from assistant.core.messages import AudioChunk
from assistant.core.turn import TurnScope
from assistant.live.bargein import BargeIn
from assistant.live.view import JsonlLog, LiveView, PlainLog
from tests import pulse

RATE = 16000


def tone(seconds: float, level: float = 0.3, hz: float = 300.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


class ListSource:
    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames

    def chunks(self, stop: threading.Event):
        for i, pcm in enumerate(self.frames):
            yield AudioChunk(-1, pcm, RATE, i * len(pcm) / RATE, time.monotonic())

    def close(self) -> None:
        pass


def frames_of(audio: np.ndarray, n: int = 320) -> list[np.ndarray]:
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    return [pcm[i : i + n] for i in range(0, len(pcm) - n + 1, n)]


# -- the far end --------------------------------------------------------------------------------------


def test_far_end_reads_in_lock_step_behind_the_writer() -> None:
    far = FarEnd(margin_s=0.04, max_lag_s=0.5)  # small numbers, to see the re-anchoring
    ramp = (np.arange(20000) + 0.5).astype(np.float32) / 32767  # sample k holds the value k
    assert not far.read(320).any()  # nothing played yet: silence, no error
    far.push(ramp[:16000], RATE)  # a second ahead: too far, so the reader re-anchors near the end
    first = far.read(320)
    assert first[0] == 16000 - 320 - 640 and np.all(np.diff(first) == 1)
    far.push(ramp[16000:16320], RATE)
    assert far.read(320)[0] == first[-1] + 1  # then it reads on, sample for sample


def test_far_end_reanchors_when_the_writer_stalls() -> None:
    far = FarEnd()
    far.push(np.full(640, 0.5, np.float32), RATE)
    for _ in range(5):  # the reader runs on while the speaker delivers nothing
        far.read(320)
    assert not far.read(320).any()


def test_far_end_skips_resampling_silence_without_losing_step() -> None:
    from assistant.audio.convert import StreamResampler

    def zeros(n: int) -> list[np.ndarray]:
        return [np.zeros(882, np.float32)] * n

    def sound(n: int) -> list[np.ndarray]:
        return [np.full(882, 0.1, np.float32)] * n

    blocks = zeros(50) + sound(20) + zeros(100) + sound(40) + zeros(15) + sound(10) + zeros(300) + sound(5)
    far, reference = FarEnd(seconds=20, max_lag_s=100), StreamResampler(44100, RATE)
    for b in blocks:
        far.push(b, 44100)
    expected = np.concatenate([reference.process(b) for b in blocks])

    def onsets(x: np.ndarray) -> list[int]:
        loud = np.flatnonzero(np.abs(x) > 0.03 * (32767 if x.dtype == np.int16 else 1))
        return [int(loud[0])] + [int(i) for i in loud[np.flatnonzero(np.diff(loud) > 100) + 1]]

    assert onsets(far.read(far._written)) == onsets(expected)  # every reply starts where it should


# -- the echo guard -----------------------------------------------------------------------------------


def guard_run(cfg: BargeInConfig, near: np.ndarray, far_audio: np.ndarray, canceller=None) -> np.ndarray:
    """Feed ``far_audio`` to the far end frame by frame, in step with ``near`` into the guard."""
    far = FarEnd(margin_s=0.0)
    guard = EchoGuard(ListSource([]), cfg, far, EventBus(), canceller=canceller)
    if cfg.echo == "aec":
        guard._aec = canceller()
    return np.concatenate(feed(guard, far, near, far_audio))


def feed(guard: EchoGuard, far: FarEnd, near: np.ndarray, far_audio: np.ndarray, t0: float = 0.0) -> list:
    """``far_audio`` to the far end frame by frame, in step with ``near`` into the guard, from input
    time ``t0``: the guard's output frames."""
    out = []
    for n, f in zip(frames_of(near), frames_of(far_audio), strict=True):
        far.push(f.astype(np.float32) / 32768, RATE)
        out.append(guard.process(AudioChunk(-1, n, RATE, t0 + len(out) * 0.02, time.monotonic())).pcm)
    return out


def test_gate_keeps_the_assistants_own_voice_from_the_vad() -> None:
    cfg = BargeInConfig(echo="gate", gate_margin_db=6.0)
    played = tone(1.0)
    out = guard_run(cfg, played * 0.9, played)  # the echo, a little quieter than what was played
    assert not out.any()


def test_gate_lets_a_louder_user_through_and_none_lets_everything_through() -> None:
    played = tone(1.0, level=0.1)
    user = tone(1.0, level=0.5, hz=700)
    assert guard_run(BargeInConfig(echo="gate"), played + user, played)[3200:].any()
    assert guard_run(BargeInConfig(echo="none"), played, played).any()


def test_half_duplex_ignores_the_microphone_while_speaking() -> None:
    played = tone(1.0, level=0.1)
    cfg = BargeInConfig(echo="gate", enabled=False)
    assert not guard_run(cfg, played + tone(1.0, level=0.8, hz=700), played).any()


class SubtractCanceller:
    """A perfect canceller for a zero-delay echo path: near minus far."""

    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        return (near.astype(np.int32) - far).clip(-32768, 32767).astype(np.int16)


def test_aec_mode_gates_only_the_residue() -> None:
    cfg = BargeInConfig(echo="aec", residual_margin_db=-24.0)
    played = tone(1.0, level=0.3)
    assert not guard_run(cfg, played, played, SubtractCanceller).any()  # pure echo: nothing left
    # the user joins after a second of playback, 10 dB quieter than the reply: still heard
    played = tone(2.0, level=0.3)
    user = np.concatenate([np.zeros(RATE, np.float32), tone(1.0, level=0.1, hz=700)])
    out = guard_run(cfg, played + user, played, SubtractCanceller)
    assert not out[:RATE].any() and out[RATE + 1600 :].any()


def test_aec_mode_holds_the_gate_while_the_canceller_has_not_converged() -> None:
    cfg = BargeInConfig(echo="aec", residual_margin_db=-24.0)
    played = tone(2.0, level=0.3)
    leaky = lambda: lambda near, far: (near * 0.5).astype(np.int16)  # noqa: E731 - removes 6 dB only
    canceller = lambda: SimpleNamespace(process=leaky())  # noqa: E731
    assert not guard_run(cfg, played, played, canceller).any()


def test_the_gate_stays_open_while_the_user_has_the_floor() -> None:
    """Quiet syllables of a barge-in under the echo's tail must not become pauses in the turn."""
    cfg = BargeInConfig(echo="gate", gate_margin_db=6.0)
    far, bus = FarEnd(margin_s=0.0), EventBus()
    guard = EchoGuard(ListSource([]), cfg, far, bus)
    echo = tone(0.2)

    def passed(t0: float) -> list[bool]:
        return [frame.any() for frame in feed(guard, far, echo, echo, t0)]

    assert not any(passed(0.0))  # the echo alone never reaches the VAD
    bus.emit(ev.SpeechStarted(3, 0.2))  # a user turn began (the barge-in has emptied the speaker)
    assert all(passed(0.2))
    bus.emit(ev.SpeechEnded(3, 0.4, t_decided=0.0))
    assert not any(passed(0.4))


def test_webrtc_canceller_removes_a_delayed_echo() -> None:
    from assistant.audio.echo import webrtc_canceller

    rng = np.random.default_rng(0)
    far = (rng.standard_normal(RATE * 3) * 3000).astype(np.int16)
    near = np.concatenate([np.zeros(800, np.int16), far[:-800]])  # 50 ms echo path
    aec = webrtc_canceller()
    out = np.concatenate([aec.process(near[i : i + 320], far[i : i + 320]) for i in range(0, len(far), 320)])
    rms = lambda x: np.sqrt(np.mean(x[RATE:].astype(float) ** 2))  # noqa: E731
    assert 20 * np.log10(rms(near) / rms(out)) > 20  # at least 20 dB of echo removed after 1 s


# -- barge-in ------------------------------------------------------------------------------------------


class FakeSpeaker:
    def __init__(self, pending: float) -> None:
        self.pending = pending
        self.cleared = 0

    def clear(self) -> float:
        self.cleared += 1
        dropped, self.pending = self.pending, 0.0
        return dropped

    def pending_s(self) -> float:
        return self.pending


class FakePlayback:
    interrupted = 0

    def interrupt(self) -> None:
        self.interrupted += 1


def test_speech_over_the_reply_cancels_it_and_reports_what_was_heard() -> None:
    events, log, scope = EventBus(), EventLog(), TurnScope()
    events.subscribe(log)
    speaker, playback = FakeSpeaker(pending=2.0), FakePlayback()
    BargeIn(BargeInConfig(), scope, speaker, playback, events)
    events.emit(ev.TranscriptFinal(1, "tell me a story"))
    now = time.monotonic()
    events.emit(ev.AudioOut(1, "Once upon a time", 0.8, t=now - 1.0))
    events.emit(ev.AudioOut(1, "there was a small dragon", 0.4, t=now - 0.2))
    events.emit(ev.SpeechStarted(2, 5.0))
    assert scope.is_stale(1) and not scope.is_stale(2)
    assert speaker.cleared == 1 and playback.interrupted == 1
    barge = log.first(ev.BargeIn, 2)
    assert barge is not None and barge.interrupted == 1
    assert barge.spoken.startswith("Once upon a time there was")
    assert not barge.spoken.endswith("dragon")  # cut midway
    assert barge.reaction_ms < 50


def test_a_new_turn_while_idle_is_no_barge_in_and_disabled_does_nothing() -> None:
    events, log, scope = EventBus(), EventLog(), TurnScope()
    events.subscribe(log)
    BargeIn(BargeInConfig(), scope, FakeSpeaker(0.0), None, events)
    events.emit(ev.SpeechStarted(1, 0.0))
    assert log.first(ev.BargeIn, 1) is None
    scope2, speaker = TurnScope(), FakeSpeaker(3.0)
    BargeIn(BargeInConfig(enabled=False), scope2, speaker, None, events)
    events.emit(ev.SpeechStarted(2, 1.0))
    assert speaker.cleared == 0 and scope2.floor == 0


def test_a_reply_whose_answer_is_still_in_synthesis_is_cut_as_a_barge_in() -> None:
    """The filler has played and the reply's text is done, but its audio is not: speech now is a
    barge-in (it cancels that audio), and a skipped or fully heard reply is over at once."""
    events, log, scope = EventBus(), EventLog(), TurnScope()
    events.subscribe(log)
    speaker = FakeSpeaker(0.0)
    BargeIn(BargeInConfig(), scope, speaker, None, events)
    events.emit(ev.TranscriptFinal(1, "who was the first president"))
    events.emit(ev.AudioOut(1, "Hmm.", 0.25, t=time.monotonic()))
    events.emit(ev.ReplyDone(1, "George Washington."))  # text done; synthesis still running
    events.emit(ev.PlaybackStopped(-1))  # the filler is over
    events.emit(ev.SpeechStarted(2, 3.0))
    barge = log.first(ev.BargeIn, 2)
    assert barge is not None and barge.interrupted == 1

    events.emit(ev.TranscriptFinal(2, "what is the capital of France"))
    events.emit(ev.ReplySkipped(2, "not addressed to the assistant"))
    events.emit(ev.SpeechStarted(3, 6.0))
    assert log.first(ev.BargeIn, 3) is None  # nothing was playing or coming

    events.emit(ev.TranscriptFinal(3, "and of Spain"))
    speaker.pending = 0.5
    events.emit(ev.ReplyAudioDone(3))
    speaker.pending = 0.0
    events.emit(ev.PlaybackStopped(-1))
    events.emit(ev.SpeechStarted(4, 9.0))
    assert log.first(ev.BargeIn, 4) is None


# -- the microphone ---------------------------------------------------------------------------------------


class FakeStream:
    """Delivers ``blocks`` through the callback from a thread, like PortAudio; then goes silent."""

    def __init__(self, callback, rate: int, channels: int, blocks: list[np.ndarray]) -> None:
        self.callback, self.samplerate, self.channels, self.blocks = callback, rate, channels, blocks
        self.aborted = False

    def start(self) -> None:
        def run() -> None:
            for block in self.blocks:
                self.callback(block, len(block), None, None)
                time.sleep(0.001)

        threading.Thread(target=run, daemon=True).start()

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        pass


def test_a_48k_stereo_microphone_becomes_16k_mono_frames_on_a_continuous_timeline() -> None:
    stereo = np.stack([tone(1.0, rate=48000), tone(1.0, rate=48000)], axis=1)
    blocks = [stereo[i : i + 960] for i in range(0, 48000, 960)]
    mic = Microphone(frame_ms=20, stream_factory=lambda cb: FakeStream(cb, 48000, 2, blocks))
    mic.open()
    stop = threading.Event()
    chunks = []
    for chunk in mic.chunks(stop):
        chunks.append(chunk)
        if len(chunks) >= 45:
            stop.set()
    mic.close()
    assert all(c.pcm.dtype == np.int16 and len(c.pcm) == 320 and c.sample_rate == RATE for c in chunks)
    assert [c.t_input for c in chunks[:3]] == pytest.approx([0.0, 0.02, 0.04])
    level = np.abs(np.concatenate([c.pcm for c in chunks[5:]])).max() / 32768
    assert 0.25 < level < 0.35  # level kept through the resampler and the downmix


def test_a_microphone_that_goes_silent_is_reported_and_reopened() -> None:
    opened: list[FakeStream] = []

    def factory(cb):
        opened.append(FakeStream(cb, 16000, 1, [np.zeros((320, 1), np.float32)] * 5))
        return opened[-1]

    statuses: list[str] = []
    mic = Microphone(
        stream_factory=factory, stall_s=0.2, retry_s=0.05, on_status=lambda k, d: statuses.append(k)
    )
    stop = threading.Event()
    threading.Timer(1.5, stop.set).start()
    frames = sum(1 for _ in mic.chunks(stop))
    mic.close()
    assert "lost" in statuses and "opened" in statuses
    assert len(opened) >= 2 and opened[0].aborted
    assert frames >= 10  # audio from both the first and the reopened stream


def test_a_missing_microphone_is_reported_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "list_devices", lambda: [])
    with pytest.raises(DeviceError, match="no microphone found"):
        Microphone(None).open()


# -- devices -------------------------------------------------------------------------------------------------


def fake_devices() -> list[DeviceInfo]:
    return [
        DeviceInfo(0, "HDA Intel PCH: ALC257 Analog", "ALSA", 2, 2, 48000, True, True),
        DeviceInfo(1, "USB Headset Mic", "ALSA", 1, 0, 44100, False, False),
        DeviceInfo(2, "USB Speaker", "ALSA", 0, 2, 48000, False, False),
    ]


def test_devices_resolve_by_name_part_or_index_with_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "list_devices", fake_devices)
    assert devices.resolve(None, "input") == 0
    assert devices.resolve("headset", "input") == 1
    assert devices.resolve("1", "input") == 1 and devices.resolve(2, "output") == 2
    with pytest.raises(DeviceError, match="no speaker matches 'headset'"):
        devices.resolve("headset", "output")
    with pytest.raises(DeviceError, match="several input devices"):
        devices.resolve("a", "input")
    with pytest.raises(DeviceError, match="no microphone with index 2"):
        devices.resolve(2, "input")
    assert "USB Headset Mic" in devices.format_devices(fake_devices())


@pytest.mark.parametrize(
    ("error", "words"),
    [
        ("Error opening InputStream: Device unavailable [PaErrorCode -9985]", "is busy"),
        ("Error querying device -1", "is not there"),
        ("Invalid sample rate [PaErrorCode -9997]", "does not support"),
    ],
)
def test_portaudio_errors_become_words(error: str, words: str) -> None:
    assert words in str(devices.explain(RuntimeError(error), "input", "USB"))


# -- the live view -------------------------------------------------------------------------------------------


def script(events: EventBus) -> None:
    events.emit(ev.Ready(-1, "aec"))
    events.emit(ev.SpeechStarted(1, 0.5))
    events.emit(ev.InputLevel(-1, -20.0, gated=False))
    events.emit(ev.TranscriptPartial(1, "what is"))
    events.emit(ev.SpeechEnded(1, 2.0, t_decided=time.monotonic()))
    events.emit(ev.TranscriptFinal(1, "what is the capital of France"))
    events.emit(ev.FirstAudio(1, 2.5))
    events.emit(ev.AudioOut(1, "Paris.", 0.5, "llm"))
    events.emit(ev.BargeIn(2, interrupted=1, spoken="Paris", dropped_s=0.1, reaction_ms=0.2))


def test_live_view_plain_log_and_jsonl(tmp_path: Path) -> None:
    events, tty, plain = EventBus(), io.StringIO(), io.StringIO()
    view = LiveView(tty, tty=True)
    events.subscribe(view)
    events.subscribe(PlainLog(plain))
    jsonl = JsonlLog(tmp_path / "events.jsonl")
    events.subscribe(jsonl)
    script(events)
    jsonl.close()
    screen = tty.getvalue()
    assert "you: what is the capital of France" in screen and "assistant: Paris." in screen
    assert "first sound" in screen and "interrupted turn 1" in screen
    assert "hearing" in screen and "dBFS" in screen and "… what is" in screen  # the status line
    assert "\033[" not in plain.getvalue() and re.search(
        r"^\d\d:\d\d:\d\d you: what is", plain.getvalue(), re.M
    )
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records][:2] == ["ready", "speech_started"]
    assert "input_level" not in {r["kind"] for r in records}
    assert all({"t", "wall", "kind", "turn"} <= set(r) for r in records)


# -- real audio I/O --------------------------------------------------------------------------------------------

needs_pulse = pytest.mark.skipif(
    not pulse.available(), reason="pulseaudio not installed (scripts/setup.sh --dev)"
)


@pytest.fixture(scope="module")
def room():
    """A private PulseAudio server for this module's live tests."""
    yield from pulse.session()


@pytest.fixture(scope="module")
def rig(room, tmp_path_factory: pytest.TempPathFactory):
    """One `assistant listen` shared by the live tests (loading the models costs ~10 s each time)."""
    work = tmp_path_factory.mktemp("live")
    speech = work / "speech"
    from tests.speech.make_speech import render

    questions = {c: render(c, "piper", speech) for c in ("capital_france", "first_president", "spider_legs")}
    holder = SimpleNamespace(work=work, questions=questions, assistant=None)

    def assistant() -> pulse.Assistant:
        if holder.assistant is None or holder.assistant.proc.poll() is not None:
            holder.assistant = pulse.Assistant(room, work)
            assert holder.assistant.wait_for("ready", 120), holder.assistant.stderr()[-2000:]
        return holder.assistant

    holder.get = assistant
    yield holder
    if holder.assistant is not None:
        holder.assistant.stop()


def wait_quiet(assistant: pulse.Assistant, since: float, timeout_s: float = 60.0) -> list[dict]:
    """Events after ``since``, once a reply is fully generated, has been heard to its end, and
    nothing new happened for 2 s (the machine may be busy: no fixed waits)."""
    end = time.monotonic() + timeout_s
    events: list[dict] = []
    while time.monotonic() < end:
        if assistant.proc.poll() is not None:
            raise AssertionError(
                f"assistant exited ({assistant.proc.returncode}): {assistant.stderr()[-1500:]}"
            )
        events = [e for e in assistant.events() if e["wall"] >= since]
        kinds = [e["kind"] for e in events]
        done = "reply_done" in kinds and "playback_stopped" in kinds[kinds.index("reply_done") :]
        last_audio = max((i for i, k in enumerate(kinds) if k == "audio_out"), default=-1)
        if done and "playback_stopped" in kinds[last_audio + 1 :] and time.time() - events[-1]["wall"] > 2.0:
            return events
        time.sleep(0.2)
    return events


def recognise(cfg, audio: np.ndarray) -> str:
    from assistant.build import model_store
    from assistant.engines.whisper import WhisperEngine

    engine = WhisperEngine(model_store(cfg).asr_path(cfg.asr.model), replace(cfg.asr, cpu_threads=1))
    return engine.transcribe(audio)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


@pytest.mark.real
@needs_pulse
def test_a_spoken_question_gets_a_spoken_reply(room, rig, cfg) -> None:
    room.echo(False)
    assistant = rig.get()
    rec = room.record(rig.work / "reply.wav")
    t0 = time.time()
    room.say(rig.questions["capital_france"]).wait()
    events = wait_quiet(assistant, t0)
    audio = rec.stop()
    finals = [e for e in events if e["kind"] == "transcript_final"]
    assert finals and "capital" in finals[0]["text"].lower() and "france" in finals[0]["text"].lower()
    said = " ".join(e["text"] for e in events if e["kind"] == "audio_out")
    heard = recognise(cfg, audio)
    assert said and heard, (said, heard)
    overlap = len(words(said) & words(heard)) / len(words(said))
    assert overlap >= 0.5, (said, heard)


@pytest.mark.real
@needs_pulse
def test_with_its_voice_coming_back_it_answers_once(room, rig) -> None:
    room.echo(True)
    try:
        assistant = rig.get()
        t0 = time.time()
        room.say(rig.questions["capital_france"]).wait()
        events = wait_quiet(assistant, t0)
        time.sleep(1.0)
        events = [e for e in assistant.events() if e["wall"] >= t0]
    finally:
        room.echo(False)
    kinds = [e["kind"] for e in events]
    assert kinds.count("speech_started") == 1, assistant.timeline(t0)
    assert "barge_in" not in kinds, assistant.timeline(t0)
    assert any(e["kind"] == "audio_out" for e in events)


@pytest.mark.real
@needs_pulse
def test_a_second_question_over_the_reply_interrupts_it(room, rig) -> None:
    room.echo(True)  # on loudspeakers: the echo canceller must tell the user from its own voice
    try:
        assistant = rig.get()
        rec = room.record(rig.work / "barge.wav")
        t0 = time.time()
        room.say(rig.questions["first_president"]).wait()
        assert assistant.wait_for("first_audio", 30, after=t0), assistant.timeline(t0 - 30)
        t1 = time.time()
        room.say(rig.questions["spider_legs"]).wait()
        barge = assistant.wait_for("barge_in", 10, after=t1)
        assert barge is not None, assistant.timeline(t0)
        # the machine may be busy: wait for the second answer itself, not a fixed time
        is_answer = lambda e: e["turn"] == barge["turn"] and e.get("source") in ("llm", "fastpath")  # noqa: E731
        assistant.wait_for("audio_out", 60, after=t1, where=is_answer)
        events = wait_quiet(assistant, t1)
        audio = rec.stop()
    finally:
        room.echo(False)
    # playback stopped: the cut reply's last sound is close after the detection
    detected = barge["t"] - rec.t_start
    before = [s for s in pulse.sound_spans(audio, gap_s=0.1) if s[0] < detected]
    assert before and before[-1][1] - detected < 0.4, (before, detected)
    second = [e for e in events if e["kind"] == "transcript_final" and e["turn"] == barge["turn"]]
    assert second and words(second[0]["text"]) & {"spider", "legs", "many"}, assistant.timeline(t0)
    assert any(e["kind"] == "audio_out" and e["turn"] == barge["turn"] for e in events)


@pytest.mark.real
@needs_pulse
def test_ctrl_c_while_speaking_ends_at_once_and_frees_the_devices(room, rig) -> None:
    room.echo(False)
    assistant = rig.get()
    t0 = time.time()
    room.say(rig.questions["first_president"]).wait()
    assert assistant.wait_for("first_audio", 30, after=t0), (
        assistant.timeline(t0 - 30) + assistant.stderr()[-1500:]
    )
    time.sleep(0.3)
    took = assistant.interrupt()
    assert assistant.proc.returncode == 130
    assert took < 1.0
    clients = [
        c for c in room.clients("source-outputs") + room.clients("sink-inputs") if "protocol-native" in c
    ]
    assert len(clients) == 2, clients  # only the server's own keep-alive streams are left


@pytest.mark.real
@needs_pulse
def test_no_microphone_is_a_clear_error(room, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = dict(room.env, PULSE_SERVER="unix:/nonexistent/native")
    res = subprocess.run(
        [sys.executable, "-m", "assistant", "listen", "--input-device", "no such mic"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=pulse.REPO,
    )
    assert res.returncode == 2
    assert "error:" in res.stderr and "Traceback" not in res.stderr
