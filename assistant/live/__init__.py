"""Talking to it live: microphone in, speaker out, barge-in, and the terminal's live view.

``run`` wires the devices through the echo guard into the usual stages, with barge-in
(``assistant.stages.bargein``, shared with the Wyoming server) judging speech over a reply; ``view``
shows what the assistant hears and says, and logs it as JSONL.
"""
