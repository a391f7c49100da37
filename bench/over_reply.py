"""Speech over a loudspeaker reply, recognised with each candidate `asr.over_reply_prompt`.

    .venv/bin/python bench/over_reply.py [--prompts "Mm-hmm. Stop.|Mm-hmm. Uh-huh. Yeah. Okay. Stop."]
                                         [--level-db -16] [--show]

What the echo-fitted mic leaves at double talk, made offline: backchannels, stop words and
questions said by piper and espeak-ng, each mixed over two piper replies at four offsets with the
reply --level-db under the user. Every mix is recognised by the shipped Whisper model once per
prompt ("" = none, always measured as the baseline) and judged as the barge-in does
(stages/policy.py InterruptionRules): a backchannel must resume the reply, a stop must stop it,
"Wait." must not resume it, a question must come out word for word. Printed: right per sound and
prompt, and in all; --show lists every miss.
"""

from __future__ import annotations

import argparse
import collections

from assistant import build
from assistant.config import load_config
from assistant.stages.policy import InterruptionRules
from tests.speech.make_speech import word_errors
from tests.speech.sounds import over_reply, said

REPLIES = [
    "A car engine burns fuel in its cylinders, and the pistons turn the crankshaft.",
    "The moon is about three hundred and eighty thousand kilometres away from the earth, and it takes light a second.",
]
# what is said over the reply -> what the barge-in must do with it ("question": heard word for word)
SOUNDS = {
    "Mm-hmm.": "resume",
    "Uh-huh.": "resume",
    "Yeah.": "resume",
    "Okay.": "resume",
    "Stop.": "stop",
    "Stop please.": "stop",
    "Wait.": "not resume",
    "How many legs does a spider have?": "question",
    "What time is it?": "question",
}
OFFSETS_S = (0.4, 1.2, 2.0, 2.8)


def right(rules: InterruptionRules, sound: str, want: str, text: str) -> bool:
    if want == "question":
        return word_errors(sound, text)[0] == 0
    outcome = rules.decide(text)[0]
    return outcome != "resume" if want == "not resume" else outcome == want


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--prompts", default="Mm-hmm. Stop.|Mm-hmm. Uh-huh. Yeah. Okay. Stop.", help="'|'-separated"
    )
    parser.add_argument("--level-db", type=float, default=-16.0, help="the reply's level under the user")
    parser.add_argument("--show", action="store_true", help="print every miss")
    args = parser.parse_args()
    cfg = load_config()
    whisper = build.whisper_engine(cfg, build.model_store(cfg))
    rules = InterruptionRules(cfg.barge_in)
    prompts = ["", *[p for p in args.prompts.split("|") if p]]
    replies = [said(t, "piper") * 10 ** (args.level_db / 20) for t in REPLIES]
    hits: collections.Counter[tuple[str, str]] = collections.Counter()
    trials = len(replies) * len(OFFSETS_S) * 2
    for voice in ("piper", "espeak"):
        for sound, want in SOUNDS.items():
            user = said(sound, voice)
            for reply in replies:
                for offset_s in OFFSETS_S:
                    mix = over_reply(user, reply, offset_s)
                    for prompt in prompts:
                        text = whisper.transcribe_with_prompt(mix, prompt)
                        ok = right(rules, sound, want, text)
                        hits[(sound, prompt)] += ok
                        if args.show and not ok:
                            print(f"miss  {voice:6s} {sound!r} at {offset_s} s, prompt {prompt!r}: {text!r}")
    names = [p or "(none)" for p in prompts]
    print(f"\n{'said over the reply':36s} " + " | ".join(f"{n[:24]:>24s}" for n in names))
    for sound in SOUNDS:
        print(f"{sound:36s} " + " | ".join(f"{hits[(sound, p)]:>21d}/{trials}" for p in prompts))
    total = trials * len(SOUNDS)
    print(f"{'all':36s} " + " | ".join(f"{sum(hits[(s, p)] for s in SOUNDS):>20d}/{total}" for p in prompts))


if __name__ == "__main__":
    main()
