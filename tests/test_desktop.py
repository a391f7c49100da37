"""The desktop agent for real: `assistant agent` over a spoken recording, on a virtual X display with
a real window, a real clipboard and a private PulseAudio server, with the shipped models.

One recording carries a whole session (rendering and model loading are the slow parts), and every
step is checked in what the desktop shows afterwards and in the agent's event log.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.desktop.xvfb import TestWindow, VirtualDisplay
from tests.pulse import PulseServer
from tests.speech.make_speech import VARIANTS, Case, Turn, normalise_text, render_audio, write_wav

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.real

# (what is said, the action event it must cause: (action, outcome), or None for no action)
SESSION = [
    ("Type goodbye world.", None),  # no wake phrase, nothing said before: ignored
    ("Hey assistant, type hello world.", ("type", "proposed")),
    ("Yes.", ("type", "done")),  # within the follow-up window: no wake phrase needed
    ("Hey assistant, open the calculator.", ("open_app", "proposed")),
    ("No.", ("open_app", "declined")),
    ("Hey assistant, open the text editor.", ("open_app", "proposed")),
    ("Yes.", ("open_app", "done")),
    ("Hey assistant, run rm -rf my home folder.", ("open_app", "refused")),
    ("Hey assistant, read the clipboard.", ("clipboard", "done")),
    ("Hey assistant, turn the volume down.", ("volume", "done")),
    ("Hey assistant, next track.", ("media", "done")),
    ("Hey assistant, set a timer for three seconds.", ("timer", "done")),
]
CLIPBOARD = "The meeting moved to Friday at noon."


def render_session(folder: Path) -> Path:
    case = Case("desktop_session", tuple(Turn(text, ()) for text, _ in SESSION), gap_s=3.0)
    audio, rate = render_audio(case, VARIANTS["piper"])
    path = folder / "session.wav"
    write_wav(path, audio, rate, case.text)
    return path


def agent_config(folder: Path) -> Path:
    """The shipped defaults, with two harmless programs as the app allowlist (they leave a mark)."""
    config = {
        "models": {"cache_dir": str(REPO / "models" / "cache")},
        "agent": {
            "apps": {
                "calculator": f"touch {folder / 'calculator-launched'}",
                "text editor": f"touch {folder / 'editor-launched'}",
            },
            "notes_file": str(folder / "notes.txt"),
            # the recordings say "hey assistant": the transcript's wake phrase, not the wake-word
            # model (tests/test_wake_word.py runs the model on recordings that say its word)
            "wake_word": "none",
        },
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def sink_volume(pulse: PulseServer) -> int:
    out = pulse.pactl("get-sink-volume", "spk")
    return int(out.split("/")[1].strip().rstrip("%"))


def test_a_spoken_session_on_a_real_desktop(tmp_path: Path) -> None:
    recording = render_session(tmp_path)
    with VirtualDisplay() as display, PulseServer() as pulse:
        window = TestWindow(display, tmp_path)
        try:
            display.set_clipboard(CLIPBOARD)
            volume_before = sink_volume(pulse)
            env = {**pulse.env, "DISPLAY": display.display}
            events_file = tmp_path / "events.jsonl"
            cmd = [
                sys.executable, "-m", "assistant", "agent", "--quiet",
                "--config", str(agent_config(tmp_path)),
                "--input", str(recording), "--out", str(tmp_path / "reply.wav"),
                "--linger", "6", "--log-events", str(events_file),
            ]  # fmt: skip
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
            assert done.returncode == 0, done.stderr[-3000:]
            typed, keys = window.text, window.keys
        finally:
            window.close()
        volume_after = sink_volume(pulse)

    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    actions = [(e["action"], e["outcome"]) for e in events if e["kind"] == "action"]
    expected = [a for _, a in SESSION if a is not None]
    heard = [e["text"] for e in events if e["kind"] == "transcript_final"]
    assert actions == expected, f"heard: {heard}"

    ignored = [e["text"] for e in events if e["kind"] == "wake_ignored"]
    assert [normalise_text(t) for t in ignored] == ["type goodbye world"]
    assert typed.strip().lower() == "hello world"  # dictated, confirmed, typed; "goodbye" never was
    assert not (tmp_path / "calculator-launched").exists()  # declined: not launched
    assert (tmp_path / "editor-launched").exists()  # confirmed: launched
    said = [e["text"] for e in events if e["kind"] == "reply_clause"]
    assert any(CLIPBOARD.rstrip(".") in s for s in said), said
    assert volume_after == volume_before - 10, (volume_before, volume_after)
    if shutil.which("playerctl") is None:  # no MPRIS tool: the media key went to the focused window
        assert "XF86AudioNext" in keys

    announced = [e for e in events if e["kind"] == "audio_out" and e.get("source") == "announcement"]
    assert [e["text"] for e in announced] == ["Your timer for 3 seconds is done."]
    timer_set = next(
        e for e in events if e["kind"] == "audio_out" and e["text"] == "Timer set for 3 seconds."
    )
    assert 2.5 < announced[0]["t"] - timer_set["t"] < 5.0  # on time (the reply itself takes ~1.5 s)
    # and it is in the captured audio: transcribe the reply track around the announcement
    assert "timer for 3 seconds is done" in transcribe_tail(tmp_path / "reply.wav", seconds=8.0)


def transcribe_tail(path: Path, seconds: float) -> str:
    import soundfile as sf
    from faster_whisper import WhisperModel

    from assistant.audio.convert import PIPELINE_RATE, resample
    from assistant.engines.store import ModelStore, default_cache_dir

    audio, rate = sf.read(path, dtype="float32")
    audio = resample(audio[-int(seconds * rate) :], rate, PIPELINE_RATE)
    model = WhisperModel(str(ModelStore(default_cache_dir()).asr_path("tiny.en")), compute_type="int8")
    segments, _ = model.transcribe(audio, language="en", beam_size=1)
    text = normalise_text(" ".join(s.text for s in segments))
    return text.replace("three", "3").replace("two", "2")


def say_wav(folder: Path, name: str, text: str) -> Path:
    audio, rate = render_audio(Case(name, (Turn(text, ()),)), VARIANTS["piper"], pre_s=0.2, post_s=0.5)
    path = folder / f"{name}.wav"
    write_wav(path, audio, rate, text)
    return path


def test_live_agent_answers_only_when_addressed_stops_and_announces(tmp_path: Path) -> None:
    """`assistant agent` on the virtual microphone and speaker: a question without the wake phrase
    gets no answer, "stop" over a reply silences it, a "yes" said over "... Say yes to confirm."
    confirms (not a backchannel that lets the prompt play on), and a timer is heard when due."""
    import time

    from tests import pulse

    question = say_wav(tmp_path, "question", "What is the capital of France?")
    addressed = say_wav(tmp_path, "addressed", "Hey assistant, tell me a long story about a brave dragon.")
    stop = say_wav(tmp_path, "stop", "Stop it.")
    timer = say_wav(tmp_path, "timer", "Hey assistant, set a timer for two seconds.")
    yes = say_wav(tmp_path, "yes", "Yes.")
    with pulse.PulseServer() as room:
        # no echo path in this room: the headphones setting. (On loudspeakers, AEC3 mutes the onset
        # of each syllable said over the reply, and a short "stop" may not be heard at all.)
        agent = pulse.Assistant(
            room, tmp_path, "--set", "barge_in.echo=none", "--set", "agent.wake_word=none",
            "--set", "agent.confirm=[timer]", command="agent",
        )  # fmt: skip
        try:
            assert agent.wait_for("ready", 120), agent.stderr()[-2000:]
            t0 = time.time()
            room.say(question).wait()
            assert agent.wait_for("wake_ignored", 30, after=t0), agent.events()
            time.sleep(1.0)
            assert not [e for e in agent.events() if e["wall"] >= t0 and e["kind"] == "audio_out"]

            t1 = time.time()
            room.say(addressed).wait()
            replying = agent.wait_for("audio_out", 30, after=t1, where=lambda e: e["source"] != "ack")
            assert replying, agent.timeline(t1)
            time.sleep(1.0)  # well into the answer
            room.say(stop).wait()
            cut = agent.wait_for(
                "barge_in", 10, after=t1, where=lambda e: e["interrupted"] == replying["turn"]
            )
            assert cut, agent.timeline(t1)
            assert agent.wait_for("stopped", 30, after=t1), agent.timeline(t1)

            rec = room.record(tmp_path / "timer.wav")
            t2 = time.time()
            room.say(timer).wait()
            proposed = agent.wait_for("audio_out", 30, after=t2, where=lambda e: "Say yes" in e["text"])
            assert proposed, agent.timeline(t2)
            time.sleep(0.3)  # the prompt is still playing
            room.say(yes).wait()
            answered = agent.wait_for("interruption", 15, after=t2)
            assert answered and answered["outcome"] == "answered", agent.timeline(t2)
            announced = agent.wait_for(
                "audio_out", 30, after=t2, where=lambda e: e["source"] == "announcement"
            )
            assert announced and announced["text"] == "Your timer for 2 seconds is done.", agent.events()
            time.sleep(3.0)  # let it be heard to the end
            audio = rec.stop()
            took = agent.interrupt()
        finally:
            agent.stop()
    assert agent.proc.returncode == 130 and took < 1.0
    import soundfile as sf

    sf.write(tmp_path / "timer-heard.wav", audio, pulse.Recorder.RATE)
    assert "timer for 2 seconds is done" in transcribe_tail(tmp_path / "timer-heard.wav", seconds=4.0)
