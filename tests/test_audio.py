"""Audio edges: file conversion, bad files, the reply timeline."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from assistant.audio.file_source import AudioFileError, FileSource
from assistant.audio.sinks import TimelineWavSink


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (44100, 2), (48000, 1), (8000, 1), (22050, 2)])
def test_any_rate_and_channel_count_becomes_16k_mono(tmp_path: Path, rate: int, channels: int) -> None:
    path = tmp_path / "in.wav"
    sf.write(path, tone(2.0, rate, channels), rate)
    chunks = list(FileSource(path, realtime=False).chunks(threading.Event()))
    audio = np.concatenate([c.pcm for c in chunks])
    assert all(c.sample_rate == 16000 and c.pcm.dtype == np.int16 and c.pcm.ndim == 1 for c in chunks)
    assert abs(len(audio) / 16000 - 2.0) < 0.03
    assert 0.25 < np.abs(audio).max() / 32768 < 0.35  # level kept
    assert [c.t_input for c in chunks[:3]] == pytest.approx([0.0, 0.02, 0.04])


def test_flac_and_tail_silence(tmp_path: Path) -> None:
    path = tmp_path / "in.flac"
    sf.write(path, tone(1.0, 16000), 16000)
    chunks = list(FileSource(path, realtime=False, tail_silence_s=0.5).chunks(threading.Event()))
    assert sum(len(c.pcm) for c in chunks) == pytest.approx(1.5 * 16000, abs=320)


def test_real_time_pace(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    sf.write(path, tone(0.5, 16000), 16000)
    start = time.monotonic()
    chunks = list(FileSource(path, realtime=True).chunks(threading.Event()))
    # from the call, not from the first chunk: a first chunk stamped late on a busy machine lets
    # the rest catch up with the clock, which is what real-time pacing should do
    assert chunks[-1].t_arrival - start >= 0.45


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.wav", b"", "not a readable audio file"),
        ("notes.wav", b"this is text, not sound\n" * 10, "not a readable audio file"),
        ("missing.wav", None, "no such file"),
    ],
)
def test_unusable_files_are_refused_with_their_name(
    tmp_path: Path, name: str, content: bytes | None, message: str
):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioFileError, match=message) as info:
        FileSource(path)
    assert str(path) in str(info.value)


def test_header_only_wav_has_no_audio(tmp_path: Path) -> None:
    path = tmp_path / "header.wav"
    sf.write(path, np.zeros(0, dtype=np.int16), 16000)
    with pytest.raises(AudioFileError, match="contains no audio"):
        FileSource(path)


def test_truncated_wav_still_plays_what_it_has(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    sf.write(path, tone(2.0, 16000), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still claims 2 s
    chunks = list(FileSource(path, realtime=False).chunks(threading.Event()))
    assert 0.8 < sum(len(c.pcm) for c in chunks) / 16000 < 1.1


def test_timeline_sink_places_audio_and_pads_to_the_input(tmp_path: Path) -> None:
    path = tmp_path / "reply.wav"
    sink = TimelineWavSink(path, min_duration_s=5.0)
    one = np.full(1000, 1000, dtype=np.int16)
    sink.write(one, 10000, at_input_s=1.0)
    sink.write(one, 10000, at_input_s=1.05)  # overlaps the first: plays right after it
    sink.finish()
    audio, rate = sf.read(path, dtype="int16")
    assert rate == 10000 and len(audio) == 50000
    assert not audio[:10000].any()
    assert (audio[10000:12000] == 1000).all()
    assert not audio[12000:].any()
