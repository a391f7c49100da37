"""`assistant eval`: the text normaliser, the corpus and its expectations, aggregates, the baseline
comparison and the report (with fake engines); then the regression corpus with the real models."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from assistant.build import Engines
from assistant.cli.main import main
from assistant.config import Config
from assistant.eval.plots import write_plots
from assistant.eval.run import CaseResult, CorpusError, CorpusItem, check_case, find_corpus, run_corpus
from assistant.eval.stats import latency_summary, percentile
from assistant.eval.summary import Tolerance, build_report, compare, write_json
from assistant.eval.textnorm import normalise_text, reply_mentions, sentence_match, word_errors
from assistant.eval.view import ProgressBar, markdown, summary_table
from tests.corpus.make_corpus import make_corpus
from tests.fakes import FakeLlm, FakeRecognizer, FakeSynth

SAMPLES = Path(__file__).resolve().parent.parent / "assistant" / "samples"
# generous: these tests are about behaviour, and the machine is shared (test_responder.py covers the
# deadlines); so no filler may speak, and a "fallback" would mean the LLM failed
NO_DEADLINE = ["--set", "deadline.first_audio_ms=10000", "--set", "deadline.answer_ms=60000"]
NO_DEADLINE += ["--set", "deadline.reply_ms=60000"]  # answer_ms may not exceed reply_ms


# -- the normaliser -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A spider has 8 legs.", "a spider has eight legs"),
        ("Twenty-one!", "twenty one"),
        ("21", "twenty one"),
        ("It's 7:05 PM", "it's seven five pm"),
        ("1,000 people", "one thousand people"),
        ("3.5%", "three point five percent"),
        ("the 21st century", "the twenty first century"),
        ("\u201cParis\u201d, she said\u2019s", "paris she said's"),
        ("  ", ""),
    ],
)
def test_normalise_text(text: str, expected: str) -> None:
    assert normalise_text(text) == expected


def test_scoring_under_the_normaliser() -> None:
    assert word_errors("How many legs does a spider have?", "how many legs does the spider have") == (1, 7)
    assert word_errors("", "") == (0, 0)
    assert sentence_match("It has 12 months.", "it has twelve months")
    assert reply_mentions("A spider has 8 legs.", ["eight"])
    assert reply_mentions("A spider has eight legs.", ["8"])
    assert not reply_mentions("Eighty of them.", ["eight"])
    assert reply_mentions("It is in New York.", ["new york"])


def test_make_speech_keeps_its_names() -> None:
    from tests.speech import make_speech

    assert make_speech.word_errors is word_errors and make_speech.reply_mentions is reply_mentions


# -- the corpus -----------------------------------------------------------------------------------


def _corpus(root: Path, files: dict[str, tuple[str, dict | str | None]]) -> Path:
    """name -> (reference, expectations): copies of the bundled question."""
    for name, (reference, expect) in files.items():
        wav = root / f"{name}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLES / "question.wav", wav)
        wav.with_suffix(".txt").write_text(reference + "\n")
        if expect is not None:
            text = expect if isinstance(expect, str) else json.dumps(expect)
            wav.with_suffix(".json").write_text(text)
    return root


def test_find_corpus_recursive_and_validated(tmp_path: Path) -> None:
    root = _corpus(tmp_path, {"a/one": ("Hello", {"reply_contains_any": ["x"]}), "two": ("Hi", None)})
    shutil.copy(SAMPLES / "question.wav", tmp_path / "a" / "no_transcript.wav")  # not a case
    items = find_corpus(root)
    assert [(i.name, i.group, i.reference) for i in items] == [("a/one", "a", "Hello"), ("two", ".", "Hi")]
    assert items[0].expect == {"reply_contains_any": ["x"]}
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no recordings"):
        find_corpus(tmp_path / "empty")
    _corpus(tmp_path, {"bad": ("x", {"reply_contains": ["x"]})})
    with pytest.raises(CorpusError, match="unknown expectation 'reply_contains'"):
        find_corpus(root)
    _corpus(tmp_path, {"bad": ("x", "{not json")})
    with pytest.raises(CorpusError, match="bad.json"):
        find_corpus(root)


def _result(turns: list[dict], words: tuple[int, int] = (0, 6)) -> CaseResult:
    result = CaseResult("c", ".", "c.wav", "ref", {}, word_errors=words[0], words=words[1])
    result.turns = turns
    return result


def _turn(n: int, reply: str, fallback: str | None = None, **latency: float) -> dict:
    return {"turn": n, "transcript": "q", "reply": reply, "fallback": fallback is not None,
            "fallback_kind": fallback, "fastpath": False, "latency_ms": latency}  # fmt: skip


def test_expectations() -> None:
    expect = {"fallback": False, "max_first_audio_ms": 1500, "turns": [{"reply_contains_any": ["Paris"]}, {}]}
    good = _result([_turn(1, "It is Paris.", first_audio=900), _turn(2, "Sure.", first_audio=1200)])
    assert all(c.ok for c in check_case(expect, good))
    bad = _result([_turn(1, "Lyon.", "timeout", first_audio=2000)])
    failed = {c.name for c in check_case(expect, bad) if not c.ok}
    assert failed == {"turn_count", "reply_contains_any", "fallback", "max_first_audio_ms"}
    # no turn at all fails any per-turn expectation; max_wer is over the whole file
    assert not check_case({"reply_contains_any": ["x"]}, _result([]))[0].ok
    assert not check_case({"max_wer": 0.1}, _result([], words=(1, 6)))[0].ok
    assert check_case({}, _result([])) == []


# -- aggregates, baseline, report -----------------------------------------------------------------


def _report(wer: float, first_audio: float, mode: str = "realtime") -> dict:
    agg = {"wer": wer, "sentence_accuracy": 1.0, "fallback_rate": 0.0,
           "latency_ms": {"first_audio": {"median": first_audio}}}  # fmt: skip
    return {"mode": mode, "aggregate": agg}


def test_baseline_tolerance() -> None:
    tol = Tolerance()
    flagged = lambda now: [r["metric"] for r in compare(now, _report(0.05, 1000), tol) if r["regression"]]  # noqa: E731
    assert flagged(_report(0.069, 1249)) == []  # +1.9 points, +24.9 %
    assert flagged(_report(0.071, 1000)) == ["WER %"]
    assert flagged(_report(0.05, 1251)) == ["first_audio median ms"]
    # small latencies: +25 % is not enough, it must also be +100 ms
    assert [r["regression"] for r in compare(_report(0, 190), _report(0, 100), tol)][-1] is False
    # another pace: latencies are not comparable
    assert flagged(_report(0.05, 5000, mode="fast")) == []


def test_one_percentile_and_one_latency_summary() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5  # any order, linear between ranks
    assert percentile([10.0, 20.0], 95) == pytest.approx(19.5)
    assert percentile([], 95) != percentile([], 95)  # nan: nothing measured
    turns = [{"asr_final": 100.0, "first_audio": 900.0}, {"asr_final": 300.0}, {"asr_final": 200.0}]
    every = latency_summary(turns)
    assert list(every) == ["asr_final", "first_audio"]
    assert every["asr_final"] == {"median": 200.0, "p95": 290.0, "max": 300.0, "n": 3}
    assert every["first_audio"]["n"] == 1
    assert list(latency_summary(turns, ["first_audio", "first_clause", "asr_final"])) == [
        "first_audio",
        "asr_final",
    ]


def test_eval_with_fake_engines_writes_the_report(cfg: Config, tmp_path: Path) -> None:
    root = _corpus(
        tmp_path / "corpus",
        {
            "clean/paris": ("What is the capital of France?", {"reply_contains_any": ["Paris"], "fallback": False}),
            "clean/wrong": ("What is the capital of Spain?", {"reply_contains_any": ["Madrid"]}),
        },
    )  # fmt: skip
    engines = Engines(
        FakeRecognizer("What is the capital of France?"),
        FakeLlm("Paris, of course.", ttft_s=0.15),
        FakeSynth(),
    )
    stream = io.StringIO()
    bar = ProgressBar(2, stream)
    results = run_corpus(
        cfg, engines, find_corpus(root), False, tmp_path / "out" / "replies", bar.start, bar.done
    )
    assert [r.passed for r in results] == [True, False]
    assert stream.getvalue().splitlines()[1].startswith("[2/2] FAIL  clean/wrong")  # plain when not a TTY
    paris = results[0]
    assert paris.turns[0]["reply"] == "Paris, of course." and paris.sentence_ok
    assert paris.turns[0]["latency_ms"]["first_audio"] > 0
    assert Path(paris.reply_wav).exists()  # type: ignore[arg-type]
    meta = {"corpus": str(root), "mode": "fast", "wall_s": 1.0, "models": {"asr": "fake"}}
    report = build_report(meta, results, _report(0.0, 1.0, mode="fast"), tmp_path / "old.json")
    agg = report["aggregate"]
    assert (agg["cases"], agg["passed"], agg["failed"], agg["turns"]) == (2, 1, ["clean/wrong"], 2)
    assert agg["wer"] == pytest.approx(1 / 12, abs=1e-3) and agg["sentence_accuracy"] == 0.5
    assert set(agg["latency_ms"]) >= {"asr_final", "llm_first_token", "first_clause", "first_audio"}
    assert report["regressions"] == ["WER %", "sentence accuracy %", "first_audio median ms"]
    assert not report["ok"]
    write_json(report, tmp_path / "out" / "report.json")
    assert json.loads((tmp_path / "out" / "report.json").read_text())["cases"][1]["checks"][1]["ok"] is False
    pngs = write_plots(report, tmp_path / "out")
    assert [p.name for p in pngs] == ["latency.png", "waterfall.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    md = markdown(report, pngs)
    assert "# Eval of" in md and "| asr_final |" in md and "REGRESSION" in md and "![waterfall]" in md
    assert "FAIL clean/wrong: turn 1 reply_contains_any" in summary_table(report)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_redraws_one_line_on_a_terminal() -> None:
    stream = _Tty()
    bar = ProgressBar(2, stream)
    item = CorpusItem("piper/x", Path("x.wav"), "ref")
    bar.start(0, item)
    bar.done(0, CaseResult("piper/x", "piper", "x.wav", "ref", {}, error="boom"))
    bar.close()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.count("\r\033[K") == 2
    assert "[############------------] 1/2 1 failed" in text and "piper/x ERROR" in text


def test_eval_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path), "-q"]) == 2
    assert "no recordings" in capsys.readouterr().err
    _corpus(tmp_path, {"a": ("x", None)})
    (tmp_path / "old.json").write_text("{}")
    assert main(["eval", str(tmp_path), "--baseline", str(tmp_path / "old.json"), "-q"]) == 2
    assert "not a report.json" in capsys.readouterr().err


# -- the regression corpus, real models -----------------------------------------------------------


@pytest.fixture(scope="module")
def quick_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    corpus = tmp_path_factory.mktemp("corpus")
    return corpus, make_corpus(corpus, quick=True, max_first_audio_ms=20000, no_fallback=True)


@pytest.mark.real
def test_regression_corpus(
    quick_corpus: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The quick subset of tests/corpus (every voice, accent, speed, noise, band and reverb variant,
    one multi-turn recording) through `assistant eval --fast`: every expectation holds."""
    corpus, paths = quick_corpus
    out = tmp_path / "eval"
    code = main(["eval", str(corpus), "--report-dir", str(out), "--fast", "-q", *NO_DEADLINE])
    report = json.loads((out / "report.json").read_text())
    failures = [(c["name"], c["error"], [k for k in c["checks"] if not k["ok"]]) for c in report["cases"]]
    assert code == 0, failures
    agg = report["aggregate"]
    assert agg["cases"] == len(paths) and agg["passed"] == len(paths)
    assert agg["turns"] == len(paths) + 1  # one recording holds two questions
    assert agg["wer"] <= 0.1 and agg["fallbacks"] == 0
    assert agg["fastpath_turns"] >= 4  # "what time is it" in several voices
    assert len(agg["by_group"]) >= 9
    assert {"asr_final", "llm_first_token", "first_audio", "answer_audio"} <= set(agg["latency_ms"])
    for name in ("report.md", "latency.png", "waterfall.png"):
        assert (out / name).stat().st_size > 0
    printed = capsys.readouterr().out
    assert f"{len(paths)}/{len(paths)} recordings passed" in printed


@pytest.mark.real
def test_eval_realtime_fails_on_a_regression(quick_corpus: tuple[Path, list[Path]], tmp_path: Path) -> None:
    """Real-time pace, with a baseline that was impossibly fast: expectations hold, yet the exit code
    says regression, and report.md says which."""
    for name in ("piper/capital_france", "piper/time"):
        for suffix in (".wav", ".txt", ".json"):
            target = tmp_path / "pick" / f"{name}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(quick_corpus[0] / f"{name}{suffix}", target)
    old = tmp_path / "old.json"
    old.write_text(json.dumps(_report(0.0, 1.0)))
    out = tmp_path / "eval"
    code = main(
        ["eval", str(tmp_path / "pick"), "--report-dir", str(out), "--baseline", str(old), "-q", *NO_DEADLINE]
    )
    report = json.loads((out / "report.json").read_text())
    assert code == 1 and report["mode"] == "realtime"
    assert report["aggregate"]["failed"] == [] and report["regressions"] == ["first_audio median ms"]
    # real-time pace: no case can take less than its recording lasts
    assert all(c["wall_s"] >= c["duration_s"] for c in report["cases"])
    assert "REGRESSION" in (out / "report.md").read_text()
