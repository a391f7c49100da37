"""`listen`, `agent` and `devices`: the commands that use the microphone and the speaker.

A device that cannot be used raises ``DeviceError``; ``main`` prints it on one line (exit 2)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.cli.common import check_output, run_pipeline, say, say_loading, show

if TYPE_CHECKING:
    from assistant.config import Config


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "listen",
        parents=parents,
        help="talk to it: microphone in, speaker out, interrupt it any time",
        description="Live conversation through the microphone and the speaker. Speak over the reply "
        "to interrupt it. Ctrl-C stops. Any microphone rate and channel count is converted.",
    )
    _live_options(p, log_help="append every event to PATH as JSONL")
    p.set_defaults(handler=listen)

    p = sub.add_parser(
        "agent",
        parents=parents,
        help="hands-free desktop agent: wake word, timers, notes, typing, apps",
        description='Hands-free mode. Only speech after the wake word (agent.wake_word, default "okay '
        'nabu", heard by a small model before anything is transcribed; with agent.wake_word none the '
        'transcript must start with agent.wake_phrase, default "hey assistant") is answered, plus '
        "follow-ups within agent.followup_s of a reply. "
        '"Stop" or "cancel" silences it. Commands run on the desktop: the time and date, timers and '
        "reminders, notes, opening a URL or an allowlisted app, typing dictated text, reading the "
        "clipboard, media and volume keys. Launching and typing ask for a spoken yes first "
        "(agent.confirm). Everything it hears and does is appended to the event log "
        "(agent.event_log). Ctrl-C stops.",
        epilog="Examples:\n"
        "  assistant agent                                 live, microphone and speaker\n"
        '  "Hey assistant, set a timer for five minutes."\n'
        '  "Hey assistant, type hello world."  ...  "Yes."\n'
        "  assistant agent --input cmds.wav --out reply.wav --linger 5   over a recording\n"
        "  tail -f ~/.local/state/assistant/agent.jsonl    what it did",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--input", type=Path, metavar="WAV", help="a recording instead of the microphone")
    p.add_argument("--out", type=Path, default=Path("agent-reply.wav"), help="with --input: reply audio")
    p.add_argument(
        "--linger",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="with --input: keep going S seconds after it",
    )
    _live_options(p, log_help="event log (default: agent.event_log)")
    p.set_defaults(handler=agent)

    p = sub.add_parser("devices", parents=parents, help="list microphones and speakers")
    p.set_defaults(handler=devices)


def _live_options(p: argparse.ArgumentParser, log_help: str) -> None:
    """What the microphone-and-speaker commands (listen, agent) take."""
    p.add_argument("--input-device", type=_device, help="microphone: name part or index (see `devices`)")
    p.add_argument("--output-device", type=_device, help="speaker: name part or index (see `devices`)")
    p.add_argument("--log-events", type=Path, metavar="PATH", help=log_help)
    p.add_argument("--duration", type=_seconds, metavar="S", help="stop after S seconds")


def _device(text: str) -> str | int:
    return int(text) if text.strip().isdigit() else text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return value


def listen(cfg: Config, args: argparse.Namespace) -> int:
    import signal

    from assistant.core.bus import EventBus
    from assistant.live.run import run_listen
    from assistant.live.view import LiveView, PlainLog, event_log

    if args.log_events:
        check_output(args.log_events, "event log")
    events = EventBus()
    events.subscribe(PlainLog() if args.quiet else LiveView())
    jsonl = event_log(args.log_events, cfg.logging, events)
    # SIGTERM (a service manager, a test harness) stops as cleanly as Ctrl-C
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        say_loading(cfg, args)
        run_listen(cfg, events, lambda m: say(args, m), args.input_device, args.output_device, args.duration)
    finally:
        if jsonl is not None:
            jsonl.close()
    return 0


def agent(cfg: Config, args: argparse.Namespace) -> int:
    import signal

    from assistant import build
    from assistant.agent.run import Agent, agent_file_pipeline
    from assistant.audio.file_source import probe
    from assistant.audio.sinks import AudioSink, TimelineWavSink
    from assistant.core.bus import EventBus
    from assistant.live.run import run_listen
    from assistant.live.view import LiveView, PlainLog, event_log

    log_path = args.log_events or cfg.agent.event_log
    if log_path:
        check_output(Path(log_path), "event log")
    if args.input is not None:
        probe(args.input)  # a bad recording is refused before the models load, not after
        check_output(args.out, "reply audio", audio=True)
    events = EventBus()
    events.subscribe(PlainLog() if args.quiet or args.input else LiveView())
    jsonl = event_log(log_path, cfg.logging, events)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    progress = lambda m: say(args, m)  # noqa: E731
    say_loading(cfg, args)
    wake = cfg.agent.wake_phrase if cfg.agent.wake_word == "none" else cfg.agent.wake_word.replace("_", " ")
    say(args, f'Say "{wake}" and then what you want. Event log: {log_path or "off"}')
    try:
        if args.input is not None:
            sinks: list[AudioSink] = [TimelineWavSink(args.out)]
            engines = build.load_engines(cfg, progress)
            pipeline = agent_file_pipeline(cfg, engines, args.input, sinks, events, args.linger)
            run_pipeline(pipeline, args, f"Listening to {args.input}")
            print(f"reply audio: {args.out}")
        else:
            live_agent = Agent(cfg, events)
            run_listen(
                cfg,
                events,
                progress,
                args.input_device,
                args.output_device,
                args.duration,
                speaking=live_agent.speaking,
                listening=live_agent.listening,
            )
    finally:
        if jsonl is not None:
            jsonl.close()
    return 0


def devices(cfg: Config, args: argparse.Namespace) -> int:
    from rich import box
    from rich.table import Table

    from assistant.audio.devices import format_devices, list_devices

    found = list_devices()
    if not found:
        print(format_devices(found))  # its words for "no devices at all"
        return 0
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name, justify in [("", "left"), ("index", "right"), ("name", "left"), ("api", "left")] + [
        (n, "right") for n in ("in", "out", "rate")
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for d in found:
        mark = ("<" if d.default_input else " ") + (">" if d.default_output else " ")
        table.add_row(
            mark, str(d.index), d.name, d.host_api, str(d.inputs), str(d.outputs), str(d.default_rate)
        )
    show(table)
    print("(< default microphone, > default speaker; pass a name part or an index)")
    return 0
