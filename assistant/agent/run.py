"""Wiring the hands-free agent: the wake-word gate (agent/gate.py) and the usual listening stages,
the responder stage with the agent's policy (wake word or phrase, follow-up window) and actions
(and timers), TTS and the speaker; live from the microphone, or over a recording for tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from assistant import build
from assistant.agent.actions import FIXED_REPLIES, ActionResponder
from assistant.agent.desktop import Desktop
from assistant.agent.gate import WakeGate
from assistant.agent.policy import WAKE_REPLY, WakePolicy
from assistant.agent.timers import Scheduler
from assistant.agent.tools import offered
from assistant.agent.wake import WakePhrase
from assistant.audio.sinks import AudioSink
from assistant.config import Config
from assistant.core.bus import EventBus
from assistant.core.pipeline import Pipeline
from assistant.core.stage import Stage
from assistant.reply.base import Responder


class Agent:
    """The agent's stages around one policy, which the gate before the VAD asks whether the room
    is being addressed (the follow-up window) and which the gate's detections address."""

    def __init__(self, cfg: Config, events: EventBus, desktop: Desktop | None = None) -> None:
        self.cfg = cfg
        self.events = events
        self.desktop = desktop or Desktop()
        self.scheduler = Scheduler()
        self.actions: list[ActionResponder] = []
        a = cfg.agent
        self.detector = build.wake_detector(a.wake_word, a.wake_cutoff)
        self.policy = WakePolicy(
            WakePhrase(a.wake_phrase, a.wake_similarity),
            a.followup_s,
            self.scheduler,
            on_stop=self._drop_pending,
            word=WakePhrase(self.detector.phrase, a.wake_similarity) if self.detector else None,
            listen_s=a.wake_listen_s,
        )
        self.gate: WakeGate | None = None

    def _drop_pending(self) -> None:
        for action in self.actions:
            action.drop_pending()

    def listening(self, engines: build.Engines) -> list[Stage]:
        """The gate (with a wake-word model), VAD and ASR."""
        if self.detector is not None:
            a = self.cfg.agent
            self.gate = WakeGate(self.detector, self.policy.in_window, a.wake_listen_s, a.wake_refractory_s)
            return [self.gate, *build.listening_stages(self.cfg, engines)]
        return build.listening_stages(self.cfg, engines)

    def speaking(self, engines: build.Engines, sinks: Sequence[AudioSink]) -> list[Stage]:
        def with_actions(inner: Responder) -> Responder:
            self.actions.append(
                ActionResponder(inner, self.cfg.agent, self.desktop, self.scheduler, self.events)
            )
            return self.actions[-1]

        responder = build.responder_chain(self.cfg, engines.llm, wrap=with_actions, tools=offered(self.cfg))
        stage = build.responder_stage(self.cfg, responder, policy=self.policy)
        prepared = (WAKE_REPLY, *FIXED_REPLIES)
        return build.speaking_stages(self.cfg, engines, sinks, responder=stage, prepared=prepared)


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
    agent = Agent(cfg, events, desktop)
    engines = build.held_engines(cfg, engines, events)
    stages = agent.listening(engines) + agent.speaking(engines, sinks)
    return Pipeline(source, stages, events=events)
