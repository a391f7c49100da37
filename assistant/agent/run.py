"""Wiring the hands-free agent: the usual listening stages, the responder stage with the agent's
policy (wake phrase, follow-up window) and actions (and timers), TTS and the speaker; live from the
microphone, or over a recording for tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from assistant import build
from assistant.agent.actions import FIXED_REPLIES, ActionResponder
from assistant.agent.desktop import Desktop
from assistant.agent.policy import WAKE_REPLY, WakePolicy
from assistant.agent.timers import Scheduler
from assistant.agent.wake import WakePhrase
from assistant.audio.sinks import AudioSink
from assistant.config import Config
from assistant.core.events import EventBus
from assistant.core.pipeline import Pipeline
from assistant.core.stage import Stage
from assistant.reply.base import Responder
from assistant.stages.policy import InterruptionRules


def agent_speaking_stages(
    cfg: Config,
    engines: build.Engines,
    sinks: Sequence[AudioSink],
    events: EventBus,
    desktop: Desktop | None = None,
) -> list[Stage]:
    scheduler = Scheduler()
    actions: list[ActionResponder] = []

    def with_actions(inner: Responder) -> Responder:
        actions.append(ActionResponder(inner, cfg.agent, desktop or Desktop(), scheduler, events))
        return actions[0]

    responder = build.responder_chain(cfg, engines.llm, wrap=with_actions)
    policy = WakePolicy(
        WakePhrase(cfg.agent.wake_phrase, cfg.agent.wake_similarity),
        cfg.agent.followup_s,
        scheduler,
        on_stop=actions[0].drop_pending,
        rules=InterruptionRules(cfg.barge_in),
    )
    stage = build.responder_stage(cfg, responder, policy=policy)
    return build.speaking_stages(cfg, engines, sinks, responder=stage, prepared=(WAKE_REPLY, *FIXED_REPLIES))


def agent_file_pipeline(
    cfg: Config,
    engines: build.Engines,
    path: Path,
    sinks: Sequence[AudioSink],
    events: EventBus,
    linger_s: float = 0.0,
    desktop: Desktop | None = None,
) -> Pipeline:
    """The agent over a recording at real-time pace (timers need the clock), with ``linger_s`` of
    silence after it so that what is due by then is still announced."""
    source = build.file_source(cfg, path, realtime=True)
    source.tail_silence_s += linger_s
    stages = build.listening_stages(cfg, engines) + agent_speaking_stages(
        cfg, engines, sinks, events, desktop
    )
    return Pipeline(source, stages, events=events)
