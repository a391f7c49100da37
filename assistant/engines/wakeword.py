"""The wake-word engine: microWakeWord's shipped models (pymicro-wakeword) on a stream of audio.

Why microWakeWord: its wheel carries four English models (okay_nabu, hey_jarvis, hey_mycroft, alexa)
under Apache-2.0 with a TensorFlow Lite runtime and nothing else to download; openWakeWord's
pretrained models are CC BY-NC-SA (non-commercial). A model costs a few per cent of one core: the
feature front end runs every 10 ms and the network every 30 ms on 40 mel bins.

The model's own cut-off (from its JSON) is used unless ``cutoff`` overrides it; ``feed`` reports a
detection once per crossing (the probability is a sliding mean, so it stays high for a few steps).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

# the shipped models: what each listens for, and the languages it was trained on (from their JSON)
MODELS = {
    "okay_nabu": ("Okay Nabu", ("en", "nl", "fr", "de", "it", "es", "sv")),
    "hey_jarvis": ("Hey Jarvis", ("en",)),
    "hey_mycroft": ("Hey Mycroft", ("en",)),
    "alexa": ("Alexa", ("en",)),
}


class MicroWakeWordEngine:
    def __init__(self, name: str, cutoff: float | None = None) -> None:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        if name not in MODELS:
            raise ValueError(f"unknown wake word {name!r}: one of {', '.join(MODELS)}")
        self._model = MicroWakeWord.from_builtin(Model(name))
        if cutoff is not None:
            self._model.probability_cutoff = cutoff
        self._features_cls = MicroWakeWordFeatures
        self._features = MicroWakeWordFeatures()
        self.name = name
        self.phrase = self._model.wake_word
        self.cutoff = self._model.probability_cutoff
        self._above = False  # the sliding mean is above the cut-off (one detection per crossing)
        self._pending = 0  # feature windows given since the network last ran
        self.last_probability = 0.0

    def feed(self, pcm: np.ndarray) -> bool:
        detected = False
        for features in self._features.process_streaming(pcm.astype(np.int16, copy=False).tobytes()):
            prob = self._model.process_streaming_prob(features)
            # the network runs on every ``stride``-th window; between runs it answers 0.0, which is
            # no new probability (it would end the crossing and count the next run as a new one)
            self._pending += 1
            if prob is None or self._pending < self._model.stride:
                continue
            self._pending = 0
            self.last_probability = prob
            above = prob > self.cutoff
            if above and not self._above:
                detected = True
                log.debug("wake word %s: probability %.3f > %.3f", self.name, prob, self.cutoff)
            self._above = above
        return detected

    def reset(self) -> None:
        """Forget the stream (the model's internal state too: microWakeWord reloads the model)."""
        self._features = self._features_cls()
        self._model.reset()
        self._above = False
        self._pending = 0
