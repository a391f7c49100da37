"""Turn-taking: a pause inside an unfinished sentence does not end the turn; a finished one ends sooner.

The fake tests check the plumbing (the VAD asks the end-of-turn engine at a pause, waits for the
speculative transcript, holds or ends the turn); the real ones run the shipped Smart Turn model and
recogniser over the hesitation corpus (tests/speech/hesitations.py). bench/turns.py has the figures.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from assistant import build
from assistant.audio.file_source import FileSource
from assistant.config import Config, load_config
from assistant.core.bus import EventBus, EventLog
from assistant.core.engines import Heard
from assistant.core.events import EndOfTurn, TranscriptSpeculative
from assistant.core.pipeline import Pipeline
from assistant.engines.llm_turn import LlmTurnEngine, normalise
from assistant.engines.turn import blend, ends_unfinished
from assistant.eval.textnorm import normalise_text
from assistant.eval.turns import build_turns
from assistant.stages.asr import AsrStage
from assistant.stages.vad import VadStage
from tests.fakes import FakeRecognizer

SAMPLES = Path(__file__).resolve().parent.parent / "assistant" / "samples"


class FakeTurn:
    """An end-of-turn engine that hears every pause as ``p`` finished; the real blend."""

    def __init__(self, p: float) -> None:
        self.p = p
        self.calls = 0
        self.judged_on: list[str] = []  # the threads transcripts were judged on

    def complete(self, pcm: np.ndarray) -> float:
        self.calls += 1
        return self.p

    def blend(self, p_audio: float | None, text: str | None, last_word_p: float | None = None) -> float:
        if text is not None:
            self.judged_on.append(threading.current_thread().name)
        return blend(p_audio, text, last_word_p)

    def warm_up(self) -> None:
        pass


@pytest.fixture(scope="module")
def paused(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample question with 0.9 s of silence in the middle of its speech."""
    audio, rate = sf.read(SAMPLES / "question.wav", dtype="int16")
    loud = np.flatnonzero(np.abs(audio) > 1000)
    middle = (loud[0] + loud[-1]) // 2
    quiet = middle + int(np.argmin(np.abs(audio[middle : middle + rate // 5])))
    path = tmp_path_factory.mktemp("paused") / "paused.wav"
    sf.write(path, np.concatenate([audio[:quiet], np.zeros(int(0.9 * rate), np.int16), audio[quiet:]]), rate)
    return path


def transcribe(cfg: Config, path: Path, turn: FakeTurn | None, text: str, await_transcript: bool = True):  # type: ignore[no-untyped-def]
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    stages = [
        VadStage(cfg.vad, cfg.audio.frame_ms, turn, await_transcript=await_transcript),
        AsrStage(cfg.asr, engine=FakeRecognizer(text)),
    ]
    Pipeline(FileSource(path, realtime=False, tail_silence_s=2.5), stages, events=events).run()
    return build_turns(log.events), log


def test_the_last_word_says_whether_a_sentence_is_finished() -> None:
    for text in [
        "What is the capital of?",
        "Set a timer for",
        "Tell me about...",
        "I was wondering if you could",
        "What is the capital of, um",  # a filler: still looking for the word
        "Set a timer, uh...",
        "Please remind me to-",  # Whisper's mark for a word broken off
    ]:
        assert ends_unfinished(text), text
    for text in ["What is the capital of France?", "Set a timer for five minutes.", "What time is it?", ""]:
        assert not ends_unfinished(text), text


class FakeTokenizer:
    """Three tokens: "?" closes a sentence, "<e>" ends the message, " x" does neither."""

    pieces = [" x", "?", "<e>"]

    def __len__(self) -> int:
        return len(self.pieces)

    def batch_decode(self, ids: list[list[int]]) -> list[str]:
        return [self.pieces[i[0]] for i in ids]

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool) -> str:
        return "".join(f"<{m['role']}>{m['content']}<e>" for m in messages)


class FakeLlm:
    """A language model whose next token is " x", "?" or "<e>" with the given probabilities."""

    stop_ids = frozenset({2})

    def __init__(self, probs: list[float]) -> None:
        self.tokenizer = FakeTokenizer()
        self.probs = np.array(probs)
        self.prompts: list[str] = []

    def next_token_probabilities(self, prompt: str) -> np.ndarray:
        self.prompts.append(prompt)
        return self.probs


def test_the_llm_reads_the_transcript_as_an_open_message_without_its_punctuation() -> None:
    llm = FakeLlm([0.9, 0.06, 0.04])  # P(end) = "?" + "<e>" = 0.1
    engine = LlmTurnEngine(llm, threshold=0.1, system_prompt="Be brief.")  # type: ignore[arg-type]
    assert normalise("What's the capital, then?") == "what's the capital then"
    assert engine.blend(None, "What is the capital?") == pytest.approx(0.5)  # at the threshold
    # the message is left open: no end token after it, and tiny.en's "?" does not give it away
    assert llm.prompts == ["<system>Be brief.<e><user>what is the capital"]
    assert engine.blend(None, "What is the capital of?") == 0.0  # the last word decides, no pass
    assert engine.blend(0.3, None) == 0.3 and engine.blend(0.3, " ... ") == 0.3  # no words: audio
    assert len(llm.prompts) == 1
    sure = LlmTurnEngine(FakeLlm([0.0, 0.5, 0.5]), 0.1, "")  # type: ignore[arg-type]
    unsure = LlmTurnEngine(FakeLlm([0.99, 0.0, 0.01]), 0.1, "")  # type: ignore[arg-type]
    assert sure.blend(None, "what time is it") > 0.8 and unsure.blend(None, "why is the sky") < 0.1


def test_the_llm_decides_the_last_words_questions_end_on_and_the_word_list_short_messages() -> None:
    llm = FakeLlm([0.5, 0.3, 0.2])  # P(end) 0.5: finished
    engine = LlmTurnEngine(llm, threshold=0.01, system_prompt="")  # type: ignore[arg-type]
    for finished in ["Where are you from?", "Can you repeat that?", "What's that?"]:
        assert ends_unfinished(finished) and engine.blend(None, finished) > 0.9, finished  # the LLM's
    assert len(llm.prompts) == 3
    assert engine.blend(None, "Turn off the lights in the") == 0.0  # no sentence ends on "the"
    assert engine.blend(None, "How far is it to, um,") == 0.0  # nor on a filler
    assert engine.blend(None, "Please remind me to-") == 0.0  # nor on a word broken off
    assert engine.blend(None, "Stop.") > 0.5 and engine.blend(None, "Who is") == 0.0  # by the list
    assert len(llm.prompts) == 3  # no pass for any of these


class HeadLlm(FakeLlm):
    """Judges a message finished unless it ends on "for"."""

    def next_token_probabilities(self, prompt: str) -> np.ndarray:
        self.prompts.append(prompt)
        return np.array([1.0, 0.0, 0.0] if prompt.endswith(" for") else [0.0, 0.5, 0.5])


def test_a_doubted_last_word_is_also_judged_left_out() -> None:
    """tiny.en closes "Set a timer for ... ten minutes" at the pause as "Set a timer for it." with
    its "it" at 0.2-0.4: a last word under vad.last_word_doubt is read as maybe not said."""
    head = "Set a timer for it."
    assert blend(None, head, 0.3, doubt=0.5) == 0.0  # the word list: "set a timer for" dangles
    assert blend(None, head, 0.9, doubt=0.5) > 0.5 and blend(None, head, 0.3) > 0.5  # sure, or off
    assert blend(None, "What is the capital of France?", 0.3, doubt=0.5) > 0.5  # a name: not a stand-in
    assert blend(None, "Stop.", 0.1, doubt=0.5) > 0.5  # one word: nothing left to judge

    llm = HeadLlm([0.0, 0.0, 0.0])
    engine = LlmTurnEngine(llm, threshold=0.01, system_prompt="", doubt=0.5)  # type: ignore[arg-type]
    assert engine.blend(None, head, 0.95) > 0.9 and len(llm.prompts) == 1  # sure: one pass
    assert engine.blend(None, head) > 0.9 and len(llm.prompts) == 2  # not measured: trusted
    assert engine.blend(None, head, 0.3) < 0.1  # doubted: "set a timer for" is unfinished
    assert llm.prompts[-2:] == ["<user>set a timer for it", "<user>set a timer for"]
    assert engine.blend(None, "What is the capital of it", 0.3) == 0.0  # "of": no second pass
    assert len(llm.prompts) == 5


def test_the_recogniser_tells_the_judge_how_sure_it_was_of_the_last_word(cfg: Config, paused: Path) -> None:
    class Doubtful(FakeRecognizer):
        def hear(self, pcm: np.ndarray, prompt: str = "") -> Heard:
            return Heard(self.transcribe(pcm), 0.3)

    seen: list[float | None] = []

    class Judge(FakeTurn):
        def blend(self, p_audio: float | None, text: str | None, last_word_p: float | None = None) -> float:
            if text is not None:
                seen.append(last_word_p)
            return blend(p_audio, text, last_word_p, doubt=0.5)

    events, log = EventBus(), EventLog()
    events.subscribe(log)
    stages = [
        VadStage(cfg.vad, cfg.audio.frame_ms, Judge(0.9), await_transcript=True),
        AsrStage(cfg.asr, engine=Doubtful("set a timer for it")),
    ]
    Pipeline(FileSource(paused, realtime=False, tail_silence_s=2.5), stages, events=events).run()
    spec = log.of(TranscriptSpeculative)
    assert spec and spec[0].last_word_p == 0.3 and seen[0] == 0.3
    assert len(build_turns(log.events)) == 1  # held through the pause: "set a timer for" dangles


def test_without_an_engine_the_hangover_splits_a_paused_sentence(cfg: Config, paused: Path) -> None:
    turns, _ = transcribe(cfg, paused, None, "what is the capital of")
    assert len(turns) == 2


def test_a_transcript_that_dangles_holds_the_turn_through_the_pause(cfg: Config, paused: Path) -> None:
    engine = FakeTurn(0.99)  # the audio alone would end it: the transcript overrules
    turns, log = transcribe(cfg, paused, engine, "what is the capital of")
    assert len(turns) == 1
    first = log.first(EndOfTurn, 1)
    assert first is not None and first.text == "what is the capital of" and not first.complete
    assert engine.calls == 0  # with the transcript there, the audio model was not needed


def test_a_finished_transcript_ends_the_turn_at_min_silence(cfg: Config, paused: Path) -> None:
    engine = FakeTurn(0.0)
    turns, log = transcribe(cfg, paused, engine, "what is the capital of france")
    assert len(turns) == 2  # the pause ended the (apparently finished) turn...
    decisions = log.of(EndOfTurn)
    assert decisions[0].complete and decisions[0].silence_ms == cfg.vad.min_silence_ms  # ...soon
    # judged as the recogniser made it, before it went on to the reply: not on the VAD's thread
    assert engine.judged_on and set(engine.judged_on) == {"asr"}
    assert decisions[0].infer_ms is not None  # the verdict's own time, for bench/turns.py


def test_without_a_transcript_the_audio_decides(cfg: Config, paused: Path) -> None:
    # (the recogniser has words, or the turns would not count: it is just not waited for)
    held, _ = transcribe(cfg, paused, FakeTurn(0.1), "what is the capital of", await_transcript=False)
    ended, _ = transcribe(cfg, paused, FakeTurn(0.9), "what is the capital of", await_transcript=False)
    assert (len(held), len(ended)) == (1, 2)


def test_every_command_builds_the_vad_with_the_end_of_turn_engine(cfg: Config) -> None:
    engines = build.Engines(FakeRecognizer(), None, None, FakeTurn(0.5))  # type: ignore[arg-type]
    vad = build.listening_stages(cfg, engines)[0]
    assert isinstance(vad, VadStage) and vad.engine is engines.turn and vad.await_transcript
    assert build.longest_pause_ms(cfg) == cfg.vad.max_silence_ms
    off = load_config(overrides=["vad.end_of_turn=none"])  # the hangover, whatever engines hold
    assert build.vad_stage(off, engines.turn).engine is None


@pytest.mark.real
def test_smart_turn_hears_a_finished_question_and_an_unfinished_one() -> None:
    from assistant.engines.turn import SmartTurnEngine

    engine = SmartTurnEngine()
    audio, _ = sf.read(SAMPLES / "question.wav", dtype="int16")
    loud = np.flatnonzero(np.abs(audio) > 300)  # -40 dBFS: the last sound of "France?"
    pause = np.zeros(3200, np.int16)  # 200 ms, where the VAD asks
    finished = engine.complete(np.concatenate([audio[: loud[-1]], pause]))
    assert finished > 0.5


@pytest.mark.real
def test_the_recogniser_is_surer_of_a_real_last_word_than_of_one_cut_short(cfg: Config) -> None:
    """Scored passes hear what plain ones do, on the short window (the whole question, 3.6 s) and on
    the full one (its first 1.2 s, a word cut in the middle: "What is the cap?")."""
    whisper = build.whisper_engine(cfg, build.model_store(cfg))
    audio, rate = sf.read(SAMPLES / "question.wav", dtype="int16")
    whole, cut = whisper.hear(audio), whisper.hear(audio[: int(1.2 * rate)])
    assert (whole.text, cut.text) == (whisper.transcribe(audio), whisper.transcribe(audio[: int(1.2 * rate)]))
    assert whole.last_word_p is not None and cut.last_word_p is not None
    assert whole.last_word_p > 0.8 and cut.last_word_p < whole.last_word_p - 0.2, (whole, cut)


@pytest.mark.real
def test_the_loaded_llm_hears_a_finished_question_and_an_unfinished_one(cfg: Config) -> None:
    """The default LLM's P(the message ends here): the same words with and without their end (heads
    whose last word is not on the dangling list, so the LLM decides alone)."""
    llm = build.llm_engine(cfg, build.model_store(cfg))
    engine = build.turn_engine(load_config(overrides=["vad.end_of_turn=llm"]), llm)
    assert isinstance(engine, LlmTurnEngine) and engine.llm is llm  # the loaded model, not a copy
    threshold = cfg.vad.end_of_turn_threshold
    for head, whole in [
        ("What is the largest", "What is the largest planet in the solar system?"),
        ("Why is the sky", "Why is the sky blue?"),
    ]:
        assert engine.blend(None, head) < threshold < engine.blend(None, whole), (head, whole)
    # last words on engines/turn.py's list, which questions end on too: the LLM tells them apart
    for head, whole in [
        ("Can you tell me what", "Where are you from?"),
        ("Send a message to", "Who are you talking to?"),
    ]:
        assert engine.blend(None, head) < threshold < engine.blend(None, whole), (head, whole)
    # each judgement after the first fed only the transcript: the system prompt and the template's
    # opening came from the judge's prefix cache (the previous message's first words too, here)
    prefix = llm.tokenizer.apply_chat_template(
        [{"role": "system", "content": cfg.llm.system_prompt}, {"role": "user", "content": "x"}],
        tokenize=False,
    )
    fixed = len(llm.tokenizer(prefix[: prefix.rfind("x")], add_special_tokens=False)["input_ids"])
    assert llm.judge_reused >= fixed > 10


@pytest.mark.real
def test_hesitations_are_kept_whole_more_often_than_with_the_hangover(tmp_path: Path) -> None:
    """Real recogniser, Smart Turn and LLM over piper's hesitations (fed at full speed: the decision
    waits for the transcript, so pace does not change it): one turn holding the whole sentence."""
    from tests.speech.hesitations import render_corpus

    items = [i for i in render_corpus(tmp_path, ["piper"], questions=2) if i.kind != "whole"]
    kept: dict[str, dict[tuple[str, str], bool]] = {}
    recognizer = None
    for setting in ("none", "smart_turn", "llm"):
        cfg = load_config(overrides=[f"vad.end_of_turn={setting}"])
        recognizer = recognizer or build.whisper_engine(cfg, build.model_store(cfg))
        turn = build.turn_engine(cfg)  # once: llm mode loads the LLM here (no conversation)
        for item in items:
            events, log = EventBus(), EventLog()
            events.subscribe(log)
            stages = [build.vad_stage(cfg, turn), AsrStage(cfg.asr, recognizer)]
            Pipeline(build.file_source(cfg, item.path, realtime=False), stages, events=events).run()
            turns = [t for t in build_turns(log.events) if t.transcript.strip()]
            last = normalise_text(item.text).split()[-1]
            ok = len(turns) == 1 and last in normalise_text(turns[0].transcript).split()
            kept.setdefault(setting, {})[(item.kind, item.path.stem)] = ok
    hesitations = [k for k in kept["none"] if k[0] == "hesitation"]
    whole = {s: sum(kept[s][h] for h in hesitations) for s in kept}
    for setting in ("smart_turn", "llm"):
        assert all(v for k, v in kept[setting].items() if k[0] == "question"), kept  # stay one turn
        assert whole[setting] > whole["none"], kept
    assert whole["llm"] >= whole["smart_turn"], kept
