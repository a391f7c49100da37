"""The CLI's commands: each takes the loaded config and the parsed arguments, returns an exit code."""

from __future__ import annotations

import argparse
import logging
import sys
import time

import soundfile as sf

from assistant import build
from assistant.audio.sinks import AudioSink, SpeakerSink, TimelineWavSink
from assistant.cli.console import ConsoleView
from assistant.cli.main import BUNDLED_QUESTION, dump_json
from assistant.config import Config, config_to_dict
from assistant.core.events import EventBus, EventLog
from assistant.core.pipeline import Pipeline
from assistant.engines.store import format_status
from assistant.eval.turns import build_turns, summarize, turns_as_dicts

log = logging.getLogger(__name__)


def respond(cfg: Config, args: argparse.Namespace) -> int:
    path = args.input or BUNDLED_QUESTION
    source = build.file_source(cfg, path, realtime=not args.fast)
    events, event_log = _events(args)
    sinks: list[AudioSink] = [TimelineWavSink(args.out, min_duration_s=source.duration_s)]
    speaker = _speaker(cfg, args)
    if speaker is not None:
        sinks.append(speaker)
    engines = _load_engines(cfg, args)
    pipeline = build.conversation_pipeline(cfg, engines, source, sinks, events)
    mode = "fast" if args.fast else "realtime"
    _run(pipeline, args, f"Answering {path} ({source.duration_s:.1f} s, {mode})")
    turns = build_turns(event_log.events)
    summary = summarize(turns)
    print(_table(turns))
    print(f"reply audio: {args.out}")
    if args.report:
        dump_json(
            {
                "input": str(path),
                "mode": mode,
                "input_duration_s": round(source.duration_s, 3),
                "models": {"asr": cfg.asr.model, "llm": build.llm_label(cfg), "tts": cfg.tts.voice},
                "config": config_to_dict(cfg),
                "turns": turns_as_dicts(turns),
                "summary_ms": summary,
            },
            args.report,
        )
        print(f"report: {args.report}")
    return 0


def transcribe(cfg: Config, args: argparse.Namespace) -> int:
    source = build.file_source(cfg, args.input, realtime=args.realtime)
    events, event_log = _events(args)
    start = time.monotonic()
    recognizer = build.whisper_engine(cfg, build.model_store(cfg))
    _say(args, f"Model ready in {time.monotonic() - start:.1f} s.")
    pipeline = build.transcription_pipeline(cfg, recognizer, source, events)
    _run(pipeline, args, f"Transcribing {args.input}")
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


def say(cfg: Config, args: argparse.Namespace) -> int:
    from assistant.engines.piper import PiperEngine

    model, config = build.model_store(cfg).voice_paths(cfg.tts.voice)
    engine = PiperEngine(model, config, cfg.tts)
    start = time.monotonic()
    audio = engine.synthesize_all(args.text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(args.out), audio, engine.sample_rate, subtype="PCM_16")
    print(
        f"wrote {args.out}: {len(audio) / engine.sample_rate:.2f} s of speech in {time.monotonic() - start:.2f} s"
    )
    return 0


def models(cfg: Config, args: argparse.Namespace) -> int:
    store = build.model_store(cfg)
    if args.prepare is not None:  # --prepare NAME...: install what is missing, as setup does for defaults
        store.prepare(args.prepare or None, progress=lambda m: _say(args, m), verify=True, install=True)
    statuses = store.status(verify=args.verify and args.prepare is None)
    print(format_status(statuses))
    missing = [s for s in statuses if s.default and s.state != "ready"]
    return 2 if missing else 0


# -- helpers --------------------------------------------------------------------------------------


def _events(args: argparse.Namespace) -> tuple[EventBus, EventLog]:
    events, event_log = EventBus(), EventLog()
    events.subscribe(event_log)
    if not args.quiet:
        events.subscribe(ConsoleView())
    return events, event_log


def _speaker(cfg: Config, args: argparse.Namespace) -> SpeakerSink | None:
    play = args.play or cfg.audio.play
    if play == "never" or (play == "auto" and args.fast):
        return None
    try:
        return SpeakerSink(cfg.audio.output_device)
    except Exception as exc:  # no sound card, no server: the WAV is still written
        if play == "always":
            raise
        log.info("no speaker available (%s); writing the WAV only", exc)
        return None


def _load_engines(cfg: Config, args: argparse.Namespace) -> build.Engines:
    _say_loading(cfg, args)
    start = time.monotonic()
    engines = build.load_engines(cfg, progress=lambda m: _say(args, m))
    _say(args, f"Models ready in {time.monotonic() - start:.1f} s.")
    return engines


def _run(pipeline: Pipeline, args: argparse.Namespace, what: str) -> None:
    try:
        pipeline.setup()  # the stages warm their engines up
        _say(args, f"{what}...")
        pipeline.start()
        pipeline.wait()
    finally:
        pipeline.stop()


def _say_loading(cfg: Config, args: argparse.Namespace) -> None:
    _say(args, f"Loading models ({cfg.asr.model}, {build.llm_label(cfg)}, {cfg.tts.voice})...")


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def _table(turns: list) -> str:
    if not turns:
        return "No speech found in the recording."
    rows = [("turn", "speech", "heard", "answered", "asr", "1st token", "1st sound", "answer")]
    for t in turns:
        lat = t.latency_ms
        rows.append(
            (
                str(t.turn),
                f"{t.start_s:.2f}-{t.end_s:.2f}s",
                _clip(t.transcript),
                _clip(t.reply + (f" [{t.fallback_kind}]" if t.fallback else "")),
                _fmt(lat.get("asr_final")),
                _fmt(lat.get("llm_first_token")),
                _fmt(lat.get("first_audio")),
                _fmt(lat.get("answer_audio")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + (
        "\n(ms from the end of user speech; 1st sound includes the deadline's filler, answer is the answer itself)"
    )


def _fmt(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.0f} ms"


def _clip(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def listen(cfg: Config, args: argparse.Namespace) -> int:
    import signal

    from assistant.audio.devices import DeviceError
    from assistant.live.run import run_listen
    from assistant.live.view import JsonlLog, LiveView, PlainLog

    events = EventBus()
    events.subscribe(PlainLog() if args.quiet else LiveView())
    jsonl = JsonlLog(args.log_events) if args.log_events else None
    if jsonl is not None:
        events.subscribe(jsonl)
    # SIGTERM (a service manager, a test harness) stops as cleanly as Ctrl-C
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        _say_loading(cfg, args)
        run_listen(cfg, events, lambda m: _say(args, m), args.input_device, args.output_device, args.duration)
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if jsonl is not None:
            jsonl.close()
    return 0


def agent(cfg: Config, args: argparse.Namespace) -> int:
    import signal

    from assistant.agent.run import agent_file_pipeline, agent_speaking_stages
    from assistant.audio.devices import DeviceError
    from assistant.live.run import run_listen
    from assistant.live.view import JsonlLog, LiveView, PlainLog

    events = EventBus()
    events.subscribe(PlainLog() if args.quiet or args.input else LiveView())
    log_path = args.log_events or cfg.agent.event_log
    jsonl = JsonlLog(log_path)
    events.subscribe(jsonl)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    progress = lambda m: _say(args, m)  # noqa: E731
    _say_loading(cfg, args)
    _say(args, f'Say "{cfg.agent.wake_phrase}" and then what you want. Event log: {log_path}')
    try:
        if args.input is not None:
            sinks: list[AudioSink] = [TimelineWavSink(args.out)]
            engines = build.load_engines(cfg, progress)
            pipeline = agent_file_pipeline(cfg, engines, args.input, sinks, events, args.linger)
            _run(pipeline, args, f"Listening to {args.input}")
            print(f"reply audio: {args.out}")
        else:
            run_listen(
                cfg,
                events,
                progress,
                args.input_device,
                args.output_device,
                args.duration,
                speaking=lambda engines, sinks: agent_speaking_stages(cfg, engines, sinks, events),
            )
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        jsonl.close()
    return 0


def devices(cfg: Config, args: argparse.Namespace) -> int:
    from assistant.audio.devices import DeviceError, format_devices, list_devices

    try:
        print(format_devices(list_devices()))
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def eval(cfg: Config, args: argparse.Namespace) -> int:  # the command's name; shadows a builtin here only
    from assistant.eval import plots
    from assistant.eval import run as evaluate
    from assistant.eval import summary as evalreport
    from assistant.eval import view as evalview

    try:
        items = evaluate.find_corpus(args.corpus)
        baseline = evalreport.load_baseline(args.baseline) if args.baseline else None
    except evaluate.CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mode = "fast" if args.fast else "realtime"
    start = time.monotonic()
    engines = _load_engines(cfg, args)
    _say(args, f"Evaluating {len(items)} recordings from {args.corpus} ({mode})")
    bar = evalview.ProgressBar(len(items), sys.stderr, enabled=not args.quiet)
    sink_log = logging.getLogger("assistant.audio.sinks")
    level = sink_log.level
    sink_log.setLevel(logging.WARNING)  # a "wrote reply.wav" line per case would break the bar
    try:
        results = evaluate.run_corpus(
            cfg, engines, items, not args.fast, args.report_dir / "replies", bar.start, bar.done
        )
    finally:
        sink_log.setLevel(level)
        bar.close()
    meta = {
        "corpus": str(args.corpus),
        "mode": mode,
        "wall_s": round(time.monotonic() - start, 1),
        "models": {"asr": cfg.asr.model, "llm": build.llm_label(cfg), "tts": cfg.tts.voice},
        "config": config_to_dict(cfg),
    }
    report = evalreport.build_report(meta, results, baseline, args.baseline)
    evalreport.write_json(report, args.report_dir / "report.json")
    pngs = plots.write_plots(report, args.report_dir)
    (args.report_dir / "report.md").write_text(evalview.markdown(report, pngs), encoding="utf-8")
    print(evalview.summary_table(report))
    print(f"report: {args.report_dir / 'report.md'}")
    return 0 if report["ok"] else 1


def serve(cfg: Config, args: argparse.Namespace) -> int:
    import asyncio

    from assistant.wyoming.server import check_uri, default_uri
    from assistant.wyoming.service import load_service

    uri = args.wyoming or default_uri(cfg)
    try:
        check_uri(uri)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host = uri.partition("://")[2].rpartition(":")[0].strip("[]")
    if uri.startswith("tcp://") and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: anyone who can reach it can use the assistant (no authentication)", uri)
    _say_loading(cfg, args)
    start = time.monotonic()
    service = load_service(cfg, progress=lambda m: _say(args, m))
    ready = f"Models ready in {time.monotonic() - start:.1f} s. Serving Wyoming on {uri} (Ctrl-C stops)"
    try:  # the line is printed once the port listens: scripts may wait for it
        asyncio.run(_serve_until_signal(service, uri, lambda: print(ready, flush=True)))
    except OSError as exc:  # the port is taken, the socket path is not writable
        print(f"error: cannot listen on {uri}: {exc}", file=sys.stderr)
        return 2
    print("stopped", file=sys.stderr)
    return 0


async def _serve_until_signal(service, uri: str, on_ready) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C or SIGTERM (a service manager) stop the server: connections are closed, their
    pipelines told to stop, and the process ends (cli.run skips the slow interpreter teardown)."""
    import asyncio
    import signal

    from assistant.wyoming.server import serve as serve_wyoming

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve_wyoming(service, uri, stop, on_ready)
