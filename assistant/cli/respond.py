"""`respond`, `transcribe` and `say`: the commands that work on files (a recording in, text or a
reply out). Each ``register`` adds its parser and sets its handler; the pipeline is imported only
when a command runs."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.cli.common import (
    BUNDLED_QUESTION,
    UsageError,
    check_output,
    console_events,
    dump_json,
    load_engines,
    ms,
    run_pipeline,
    say,
    show,
)

if TYPE_CHECKING:
    from rich.table import Table

    from assistant.audio.sinks import AudioSink, SpeakerSink
    from assistant.config import Config
    from assistant.eval.turns import TurnRecord

log = logging.getLogger(__name__)

LATENCY_NOTE = (
    "(ms from the end of user speech; 1st sound includes the deadline's filler, answer is the answer itself)"
)


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "respond",
        parents=parents,
        help="answer every question in a recording, out loud",
        description="Run the full pipeline over a recording: every user turn gets a spoken reply. "
        "Any rate and channel count is converted. Real-time pace by default (latencies are what a "
        "user would experience); --fast feeds as fast as the pipeline takes it (compute only).",
    )
    p.add_argument(
        "input", nargs="?", type=Path, default=None, help="recording (default: a bundled question)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("reply.wav"),
        help="reply audio on the input's timeline (default: reply.wav)",
    )
    p.add_argument("--report", type=Path, help="write a JSON report: turns, transcripts, replies, latencies")
    p.add_argument("--fast", action="store_true", help="feed the recording as fast as possible")
    play = p.add_mutually_exclusive_group()
    play.add_argument(
        "--play", dest="play", action="store_const", const="always", help="also play through the speaker"
    )
    play.add_argument("--no-play", dest="play", action="store_const", const="never", help="never play")
    p.set_defaults(handler=respond)

    p = sub.add_parser(
        "transcribe",
        parents=parents,
        help="VAD + speech recognition only",
        description="Turns and their transcripts. Turns end as in every command (vad.end_of_turn: llm "
        "loads the LLM to judge them; --set vad.end_of_turn=smart_turn judges by the last word alone).",
    )
    p.add_argument("input", type=Path, help="recording")
    p.add_argument("--json", action="store_true", help="print JSON (one object per turn)")
    p.add_argument("--realtime", action="store_true", help="feed at real-time pace (default: fast)")
    p.set_defaults(handler=transcribe)

    p = sub.add_parser("say", parents=parents, help="text to speech only")
    p.add_argument("text", help="what to say")
    p.add_argument("--out", type=Path, required=True, help="WAV file to write")
    p.set_defaults(handler=say_command)


def respond(cfg: Config, args: argparse.Namespace) -> int:
    from assistant import build
    from assistant.audio.sinks import TimelineWavSink
    from assistant.config import config_to_dict
    from assistant.eval.stats import latency_summary
    from assistant.eval.turns import build_turns, turns_as_dicts

    path = args.input or BUNDLED_QUESTION
    source = build.file_source(cfg, path, realtime=not args.fast)
    check_output(args.out, "reply audio", audio=True)
    if args.report:
        check_output(args.report, "report")
    events, event_log = console_events(args)
    sinks: list[AudioSink] = [TimelineWavSink(args.out, min_duration_s=source.duration_s)]
    speaker = _speaker(cfg, args)
    if speaker is not None:
        sinks.append(speaker)
    engines = load_engines(cfg, args)
    pipeline = build.conversation_pipeline(cfg, engines, source, sinks, events)
    mode = "fast" if args.fast else "realtime"
    run_pipeline(pipeline, args, f"Answering {path} ({source.duration_s:.1f} s, {mode})")
    turns = build_turns(event_log.events)
    if turns:
        show(turn_table(turns))
        print(LATENCY_NOTE)
    else:
        print("No speech found in the recording.")
    print(f"reply audio: {args.out}")
    if args.report:
        dump_json(
            {
                "input": str(path),
                "mode": mode,
                "input_duration_s": round(source.duration_s, 3),
                "models": {
                    "asr": build.asr_label(cfg),
                    "llm": build.llm_label(cfg),
                    "tts": build.tts_label(cfg),
                },
                "config": config_to_dict(cfg),
                "turns": turns_as_dicts(turns),
                "summary_ms": latency_summary(t.latency_ms for t in turns),
                "failovers": sum(t.failovers for t in turns),  # remote speech servers
                "speech_errors": sum(t.speech_errors for t in turns),
            },
            args.report,
        )
        print(f"report: {args.report}")
    return 0


def turn_table(turns: list[TurnRecord]) -> Table:
    """One row per turn: what was heard and answered, and how fast."""
    from dataclasses import asdict

    from rich import box
    from rich.table import Table

    from assistant.eval.view import servers_note

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("turn", justify="right")
    table.add_column("speech")
    for name in ("heard", "answered"):  # long sentences end in "…" rather than wrap the table
        table.add_column(name, max_width=48, no_wrap=True, overflow="ellipsis")
    for name in ("asr", "1st token", "1st sound", "answer"):
        table.add_column(name, justify="right")
    servers = any(t.failovers or t.speech_errors for t in turns)
    if servers:  # remote speech servers that failed: a failover, a lost request
        table.add_column("speech servers")
    for t in turns:
        lat = t.latency_ms
        table.add_row(
            str(t.turn),
            f"{t.start_s:.2f}-{t.end_s:.2f}s",
            t.transcript,
            t.reply + (f" [{t.fallback_kind}]" if t.fallback else "") + (" [ack]" if t.acknowledged else ""),
            ms(lat.get("asr_final")),
            ms(lat.get("llm_first_token")),
            ms(lat.get("first_audio")),
            ms(lat.get("answer_audio")),
            *([servers_note(asdict(t)).strip(" []") or "-"] if servers else []),
        )
    return table


def _speaker(cfg: Config, args: argparse.Namespace) -> SpeakerSink | None:
    from assistant.audio.devices import DeviceError
    from assistant.audio.sinks import SpeakerSink

    play = args.play or cfg.audio.play
    if play == "never" or (play == "auto" and args.fast):
        return None
    try:
        return SpeakerSink(cfg.audio.output_device)
    except DeviceError as exc:  # no sound card, no server: the WAV is still written
        if play == "always":
            raise UsageError(f"cannot play the reply: {exc} (--no-play writes the WAV only)") from None
        log.info("no speaker available (%s); writing the WAV only", exc)
        return None


def transcribe(cfg: Config, args: argparse.Namespace) -> int:
    from assistant import build
    from assistant.eval.turns import build_turns

    source = build.file_source(cfg, args.input, realtime=args.realtime)
    events, event_log = console_events(args)
    start = time.monotonic()
    judge = (
        f", {build.llm_label(cfg)} to judge each turn's end" if build.judges_turns_with_local_llm(cfg) else ""
    )
    say(args, f"Loading models ({build.asr_label(cfg)}{judge})...")
    recognizer = build.whisper_engine(cfg, build.model_store(cfg))
    turn = build.turn_engine(cfg)
    say(args, f"Models ready in {time.monotonic() - start:.1f} s.")
    pipeline = build.transcription_pipeline(cfg, recognizer, source, events, turn)
    run_pipeline(pipeline, args, f"Transcribing {args.input}")
    turns = [
        {"turn": t.turn, "start_s": t.start_s, "end_s": t.end_s, "text": t.transcript}
        for t in build_turns(event_log.events)
    ]
    if args.json:
        dump_json(turns, None)
    else:
        for t in turns:
            print(f"[{t['start_s']:7.2f} - {t['end_s']:7.2f}] {t['text']}")
    return 0


def say_command(cfg: Config, args: argparse.Namespace) -> int:
    import soundfile as sf

    from assistant import build
    from assistant.engines.piper import PiperEngine

    if not args.text.strip():
        raise UsageError("nothing to say: the text is empty")
    check_output(args.out, "speech", audio=True)
    model, config = build.model_store(cfg).voice_paths(cfg.tts.voice)
    engine = PiperEngine(model, config, cfg.tts)
    start = time.monotonic()
    audio = engine.synthesize_all(args.text)
    if len(audio) == 0:
        raise UsageError(f"nothing to say: the voice made no sound of {args.text!r}")
    sf.write(str(args.out), audio, engine.sample_rate, subtype="PCM_16")
    print(
        f"wrote {args.out}: {len(audio) / engine.sample_rate:.2f} s of speech in {time.monotonic() - start:.2f} s"
    )
    return 0
