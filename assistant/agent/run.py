"""Wiring the hands-free agent: the usual listening stages, the agent's responder stage (wake phrase,
actions, timers), TTS and the speaker; live from the microphone, or over a recording for tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from assistant import app
from assistant.agent.actions import FIXED_REPLIES, ActionResponder
from assistant.agent.desktop import Desktop
from assistant.agent.stage import WAKE_REPLY, AgentStage
from assistant.agent.timers import Scheduler
from assistant.agent.wake import WakePhrase
from assistant.audio.sinks import AudioSink
from assistant.config import Config
from assistant.events import EventBus
from assistant.pipeline import Pipeline
from assistant.replies import Responder
from assistant.stage import Stage

Progress = Callable[[str], None]


def agent_speaking_stages(
    cfg: Config,
    sinks: Sequence[AudioSink],
    events: EventBus,
    progress: Progress,
    engines: app.Engines | None = None,
    desktop: Desktop | None = None,
) -> list[Stage]:
    store = app.model_store(cfg)
    engines = engines or app.Engines()
    scheduler = Scheduler()
    actions: list[ActionResponder] = []

    def with_actions(inner: Responder) -> Responder:
        actions.append(ActionResponder(inner, cfg.agent, desktop or Desktop(), scheduler, events))
        return actions[0]

    responder = app.responder(cfg, store, progress, engines.llm, wrap=with_actions)
    stage = AgentStage(
        responder,
        cfg.llm.system_prompt,
        WakePhrase(cfg.agent.wake_phrase, cfg.agent.wake_similarity),
        cfg.agent.followup_s,
        scheduler,
        on_stop=actions[0].drop_pending,
        speculative=cfg.llm.speculative,
    )
    return app.speaking_stages(
        cfg, store, sinks, progress, engines, responder_stage=stage, prepared=(WAKE_REPLY, *FIXED_REPLIES)
    )


def agent_file_pipeline(
    cfg: Config,
    path: Path,
    sinks: Sequence[AudioSink],
    events: EventBus,
    progress: Progress,
    linger_s: float = 0.0,
    engines: app.Engines | None = None,
    desktop: Desktop | None = None,
) -> Pipeline:
    """The agent over a recording at real-time pace (timers need the clock), with ``linger_s`` of
    silence after it so that what is due by then is still announced."""
    source = app.file_source(cfg, path, realtime=True)
    source.tail_silence_s += linger_s
    stages = app.listening_stages(cfg, app.model_store(cfg), engines) + agent_speaking_stages(
        cfg, sinks, events, progress, engines, desktop
    )
    return Pipeline(source, stages, events=events)
