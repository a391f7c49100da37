"""Live benchmark: `assistant listen` on virtual PulseAudio devices, measured from the outside.

    .venv/bin/python bench/live.py [--questions 4] [--trials 3] [--idle-s 20] [--modes aec,gate,none]
    .venv/bin/python bench/live.py --interruptions-only --interruptions 5 [--paths loudspeaker]
        [--cases stop,mm-hmm] [--set barge_in.hold_generation=false]

1. Reply latency: each question is played into the virtual microphone while both the microphone feed
   and the speaker are recorded (two parec processes started together). Latency = end of the
   question's last sound (microphone recording) -> first sound of the reply (speaker recording).
2. Barge-in: a second question is played as soon as the reply starts. Stop time = the assistant's
   ``speech_started`` event (both sides use CLOCK_MONOTONIC) -> last sound of the cut reply in the
   speaker recording; also from the second question's first sound (what a user experiences, which
   includes the vad.min_speech_ms the VAD needs to believe it is speech).
3. Echo: with the speaker looped back into the microphone (a loudspeaker next to the mic), for each
   echo mode: does it answer itself (turns it heard that nobody spoke), and can a user still
   interrupt it?
4. Idle CPU of the whole `assistant listen` and `assistant agent` processes (all threads) over
   --idle-s with no speech (--idle-only: just these).
5. Interruptions (--interruptions N, issue 14): N runs each, without and with the echo path, of a
   sound played one second into a long reply: "Stop." (stop rate: the reply stopped and nothing more
   was said), a cough and an "mm-hmm" (resume rate: never cut), a question (answered), and nothing
   (self-interruptions: pauses and cuts whose speech started outside the sound's own window, in
   every case). Each run waits until every reply has ended or was stopped and every pause is decided
   before the next starts. Pause = the VAD hearing speech -> the speaker paused (median, p95);
   decision = pause -> outcome (the recogniser's time, mostly).

Recordings are made at 16 kHz; "sound" is a 10 ms frame above an RMS of 300 (about -41 dBFS).
The two recorders' start offsets are unknown to a few tens of ms, which bounds the accuracy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.pulse import Assistant, PulseServer, sound_spans
from tests.speech.make_speech import render

REPO = Path(__file__).resolve().parent.parent

QUESTIONS = ["capital_france", "days_week", "sky_colour", "largest_planet", "two_plus_two", "spider_legs"]
LONG_ANSWER = "first_president"  # a question whose reply lasts a few seconds
INTERRUPTER = "spider_legs"


def after(spans: list, t: float) -> list:
    return [s for s in spans if s[1] > t]


def quiet(assistant: Assistant, since: float, timeout_s: float = 20.0) -> None:
    """Wait until the reply that followed ``since`` has finished playing (or ``timeout_s``)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        events = [e for e in assistant.events() if e["wall"] >= since]
        kinds = [e["kind"] for e in events]
        if "playback_stopped" in kinds and kinds[-1] not in ("playback_started", "audio_out"):
            last = max(e["wall"] for e in events)
            if time.time() - last > 1.5:
                return
        time.sleep(0.2)


def latency(server: PulseServer, assistant: Assistant, wavs: list[Path], work: Path) -> list[float]:
    results = []
    for i, wav in enumerate(wavs):
        mic, spk = (
            server.record(work / f"q{i}_mic.wav", "micfeed.monitor"),
            server.record(work / f"q{i}_spk.wav"),
        )
        t0 = time.time()
        server.say(wav).wait()
        quiet(assistant, t0)
        mic_audio, spk_audio = mic.stop(), spk.stop()
        q = sound_spans(mic_audio)
        if not q:
            continue
        q_end = q[-1][1] + (mic.t_start - spk.t_start)  # on the speaker recording's timeline
        reply = after(sound_spans(spk_audio), q_end)
        if reply:
            results.append((reply[0][0] - q_end) * 1000)
            print(f"  {wav.stem}: {results[-1]:.0f} ms", file=sys.stderr)
    return results


def barge_in(
    server: PulseServer, assistant: Assistant, long_q: Path, second: Path, work: Path, i: int
) -> dict:
    mic, spk = server.record(work / f"b{i}_mic.wav", "micfeed.monitor"), server.record(work / f"b{i}_spk.wav")
    t0 = time.time()
    server.say(long_q).wait()
    first = assistant.wait_for("first_audio", 30, after=t0)
    t1, t1_mono = time.time(), time.monotonic()
    server.say(second).wait()
    barge = assistant.wait_for("barge_in", 10, after=t1)
    quiet(assistant, t1)
    mic_audio, spk_audio = mic.stop(), spk.stop()
    if first is None or barge is None:
        return {"ok": False}
    spk_spans = sound_spans(spk_audio, gap_s=0.1)
    detected = barge["t"] - spk.t_start  # the assistant's clock, on the speaker recording's timeline
    cut = [s for s in spk_spans if s[0] < detected]
    onset = [s for s in sound_spans(mic_audio) if s[0] + mic.t_start > t1_mono - 0.05]
    if not cut or not onset:
        return {"ok": False}
    stop = cut[-1][1]
    onset_s = onset[0][0] + (mic.t_start - spk.t_start)
    return {"ok": True, "from_detect_ms": (stop - detected) * 1000, "from_onset_ms": (stop - onset_s) * 1000}


def interruption(server: PulseServer, assistant: Assistant, question: Path, sound: Path | None) -> dict:
    """One long reply with ``sound`` played a second into its answer (None: left alone). Waits until
    every reply has ended (or was stopped) and every pause is decided, so no case overlaps the next;
    a pause or a cut whose speech started outside the sound's own window is a self-interruption."""
    from tests.test_live_interruptions import settle

    t0 = time.time()
    server.say(question).wait()
    answering = lambda e: e.get("source") in ("llm", "fastpath")  # noqa: E731
    if assistant.wait_for("audio_out", 60, after=t0, where=answering) is None:
        return {"error": "no answer"}
    time.sleep(1.0)
    t1 = time.time()
    if sound is not None:
        server.say(sound).wait()
    user_until = time.time() + 0.6 if sound is not None else t1  # (the sound, and the devices' latency)
    try:
        events = settle(assistant, t0, timeout_s=180.0)
    except AssertionError:
        return {"error": "never settled"}
    started = {
        e["turn"]: e["wall"] for e in events if e["kind"] == "speech_started" and e["wall"] >= t1 - 0.2
    }
    mine = {turn for turn, wall in started.items() if wall <= user_until}
    outcomes = [e for e in events if e["kind"] == "interruption" and e["turn"] in mine]
    final = next((e for e in outcomes if e["outcome"] in ("stopped", "answered")), None)
    final = final or (outcomes[-1] if outcomes else None)
    stray = [e for e in events if e["kind"] in ("interruption", "reply_paused", "barge_in")]
    stray = [e for e in stray if e["wall"] >= t1 - 0.2 and e["turn"] not in mine]
    paused = {e["turn"]: e for e in events if e["kind"] == "reply_paused"}
    after = [e for e in events if e["kind"] == "audio_out" and final and e["wall"] > final["wall"]]
    cuts = {e["turn"] for e in stray if e["kind"] == "barge_in"}
    cuts |= {
        e["turn"] for e in stray if e["kind"] == "interruption" and e["outcome"] in ("stopped", "answered")
    }
    playback = [
        e["kind"] for e in events if e["kind"] in ("playback_started", "playback_stopped") and e["wall"] < t1
    ]
    sent = any(e["kind"] == "reply_audio_done" and e["wall"] < t1 for e in events if e["wall"] >= t0)
    return {
        # the reply still played when the sound began, or was still to come (a wait between clauses)
        "over": playback[-1:] == ["playback_started"] or not sent,
        "outcome": final["outcome"] if final else "none",
        "said_after": bool(after and final and final["outcome"] == "stopped"),
        "self": len(cuts),
        "self_paused": len({e["turn"] for e in stray if e["kind"] == "reply_paused"}),
        "pause_ms": paused[final["turn"]]["reaction_ms"] if final and final["turn"] in paused else None,
        "decide_ms": final["pause_ms"] if final else None,
        "heard": final.get("text", "") if final else "",
    }


CASES = ("stop", "cough", "mm-hmm", "question", "nothing")


def interruptions(
    server: PulseServer,
    work: Path,
    runs: int,
    echo: bool,
    settings: tuple[str, ...] = (),
    cases: tuple[str, ...] = CASES,
) -> list[tuple[str, str]]:
    from tests.speech.sounds import over_a_reply

    made = over_a_reply(work)
    question = made.pop("long")
    sounds: dict[str, Path | None] = {**made, "nothing": None}
    server.echo(echo)
    slow = ("--set", "deadline.answer_ms=30000", "--set", "deadline.reply_ms=90000")
    extra = tuple(a for kv in settings for a in ("--set", kv))
    assistant = Assistant(server, work, *slow, "--set", "barge_in.decide_timeout_s=20", *extra)
    rows = []
    where = ("loudspeaker (echo path)" if echo else "no echo path") + "".join(f", {kv}" for kv in settings)
    try:
        if assistant.wait_for("ready", 180) is None:
            return [(f"interruptions, {where}", "assistant did not get ready")]
        for name in cases:
            sound = sounds[name]
            results = [interruption(server, assistant, question, sound) for _ in range(runs)]
            ok = [r for r in results if "error" not in r]
            want = {
                "stop": "stopped",
                "cough": None,
                "mm-hmm": None,
                "question": "answered",
                "nothing": None,
            }[name]
            if want == "stopped":
                good = sum(1 for r in ok if r["outcome"] == "stopped" and not r["said_after"])
            elif want == "answered":
                good = sum(1 for r in ok if r["outcome"] == "answered")
            else:  # resumed, or never paused (none; echo: the sound read as the played audio)
                good = sum(1 for r in ok if r["outcome"] in ("resumed", "none", "echo"))
            pauses = [r["pause_ms"] for r in ok if r["pause_ms"] is not None]
            decided = [r["decide_ms"] for r in ok if r["decide_ms"] is not None]
            selfs = sum(r["self"] for r in ok)
            self_paused = sum(r["self_paused"] for r in ok)
            verdict = {"stopped": "stopped", "answered": "answered"}.get(want or "", "went on")
            errors = len(results) - len(ok)
            ended = sum(1 for r in ok if not r["over"] and sound is not None)
            rows.append(
                (
                    f"{name} over a reply, {where}",
                    f"{verdict} {good}/{len(results)}; self-interruptions {selfs} (self-pauses "
                    f"{self_paused})"
                    + (f"; {errors} runs failed" if errors else "")
                    + (f"; in {ended} the reply had ended before the sound" if ended else ""),
                )
            )
            print(f"{rows[-1][0]}: {rows[-1][1]}", file=sys.stderr, flush=True)  # (a long run: progress)
            misses = [repr(r["heard"]) for r in ok if want == "stopped" and r["outcome"] != "stopped"]
            if misses:
                rows.append((f"  {name}: heard when missed", ", ".join(misses)[:200]))
            if pauses:
                rows.append((f"  {name}: speech heard -> paused", stats(pauses)))
            if decided:
                rows.append((f"  {name}: paused -> decided", stats(decided)))
    finally:
        assistant.interrupt()
        server.echo(False)
    return rows


def echo_check(server: PulseServer, mode: str, long_q: Path, second: Path, work: Path) -> dict:
    server.echo(True)
    assistant = Assistant(server, work, "--set", f"barge_in.echo={mode}")
    try:
        if assistant.wait_for("ready", 120) is None:
            return {"mode": mode, "error": "not ready"}
        t0 = time.time()
        server.say(long_q).wait()
        first = assistant.wait_for("first_audio", 30, after=t0)
        t1 = time.time()
        server.say(second).wait()
        time.sleep(12)
        events = assistant.events()
        started = [e for e in events if e["kind"] == "speech_started"]
        barged = [e for e in events if e["kind"] == "barge_in" and e["wall"] >= t1]
        finals = [e for e in events if e["kind"] == "transcript_final" and e["wall"] >= t1]
        return {
            "mode": mode,
            "turns": len(started),  # two questions were spoken
            "interrupted": bool(first and barged),
            "second_heard": " / ".join(e.get("text", "") for e in finals),
        }
    finally:
        assistant.interrupt()
        server.echo(False)


def idle_cpu(server: PulseServer, work: Path, seconds: float, command: str = "listen") -> float:
    assistant = Assistant(server, work, command=command)
    try:
        assistant.wait_for("ready", 120)
        time.sleep(2.0)
        ticks = os.sysconf("SC_CLK_TCK")
        before, t0 = _cpu_ticks(assistant.proc.pid), time.monotonic()
        time.sleep(seconds)
        used = (_cpu_ticks(assistant.proc.pid) - before) / ticks
        return 100 * used / (time.monotonic() - t0)
    finally:
        assistant.interrupt()


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):.0f} ms, worst {max(values):.0f} ms (n={len(values)})"


def comma_list(
    ap: argparse.ArgumentParser, flag: str, text: str, allowed: tuple[str, ...]
) -> tuple[str, ...]:
    """``text`` split at commas, each one of ``allowed`` (else a usage error naming ``flag``)."""
    values = tuple(v.strip() for v in text.split(","))
    if set(values) - set(allowed):
        ap.error(f"{flag} takes some of {','.join(allowed)}, not {text!r}")
    return values


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--trials", type=int, default=3, help="barge-in trials")
    ap.add_argument("--idle-s", type=float, default=20.0)
    ap.add_argument("--modes", default="aec,gate,none", help="echo modes to check with the loopback")
    ap.add_argument("--idle-only", action="store_true", help="only idle CPU (listen and agent)")
    ap.add_argument(
        "--interruptions", type=int, default=0, metavar="N", help="N runs of each interruption case"
    )
    ap.add_argument("--interruptions-only", action="store_true", help="only the interruption cases")
    ap.add_argument(
        "--paths",
        default="none,loudspeaker",
        help="interruption cases: without (none) and/or with the echo path",
    )
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config for the interruption cases"
    )
    ap.add_argument("--cases", default=",".join(CASES), help="interruption cases to run")
    args = ap.parse_args()
    cases = comma_list(ap, "--cases", args.cases, CASES)
    paths = comma_list(ap, "--paths", args.paths, ("none", "loudspeaker"))
    echo_paths = [p == "loudspeaker" for p in paths]  # the interruption cases' echo path, in order

    work = Path(tempfile.mkdtemp(prefix="bench-live-"))
    speech = work / "speech"
    wavs = [render(q, "piper", speech) for q in QUESTIONS[: args.questions]]
    long_q, second = render(LONG_ANSWER, "piper", speech), render(INTERRUPTER, "piper", speech)
    rows: list[tuple[str, str]] = []
    with PulseServer() as server:
        if args.interruptions_only:
            for echo in echo_paths:
                rows += interruptions(server, work, max(1, args.interruptions), echo, tuple(args.set), cases)
            print_rows(rows, work)
            return 0
        if args.idle_only:
            for command in ("listen", "agent"):
                cpu = idle_cpu(server, work, args.idle_s, command)
                print(f"idle CPU of `assistant {command}` over {args.idle_s:.0f} s: {cpu:.1f} % of one core")
            return 0
        print("reply latency and barge-in (no echo path)...", file=sys.stderr)
        assistant = Assistant(server, work)
        try:
            if assistant.wait_for("ready", 120) is None:
                raise SystemExit("assistant did not get ready")
            lat = latency(server, assistant, wavs, work)
            trials = [barge_in(server, assistant, long_q, second, work, i) for i in range(args.trials)]
        finally:
            assistant.interrupt()
        ok = [t for t in trials if t["ok"]]
        rows.append(("end of question -> first reply sound", stats(lat)))
        rows.append(
            ("barge-in: speech detected -> playback stopped", stats([t["from_detect_ms"] for t in ok]))
        )
        rows.append(
            ("barge-in: user's first sound -> playback stopped", stats([t["from_onset_ms"] for t in ok]))
        )
        rows.append(("barge-in trials that stopped the reply", f"{len(ok)}/{len(trials)}"))
        print("idle CPU...", file=sys.stderr)
        cpu = idle_cpu(server, work, args.idle_s)
        rows.append((f"idle CPU of `assistant listen` over {args.idle_s:.0f} s", f"{cpu:.1f} % of one core"))
        cpu = idle_cpu(server, work, args.idle_s, "agent")
        rows.append((f"idle CPU of `assistant agent` over {args.idle_s:.0f} s", f"{cpu:.1f} % of one core"))
        for mode in [m for m in args.modes.split(",") if m]:
            print(f"echo loopback, mode {mode}...", file=sys.stderr)
            r = echo_check(server, mode, long_q, second, work)
            verdict = (
                f"{r.get('turns')} turns heard for 2 questions; interrupted: {r.get('interrupted')}; "
                f"heard: {r.get('second_heard', '')[:60]!r}"
            )
            rows.append((f"echo loopback on, barge_in.echo={mode}", r.get("error") or verdict))
        if args.interruptions:
            for echo in echo_paths:
                rows += interruptions(server, work, args.interruptions, echo, tuple(args.set), cases)
    print_rows(rows, work)
    return 0


def print_rows(rows: list[tuple[str, str]], work: Path) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(f"\n(recordings in {work}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    sys.exit(main())
