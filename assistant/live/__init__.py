"""Talking to it live: microphone in, speaker out, barge-in, and the terminal's live view.

``run`` wires the devices through the echo guard into the usual stages; ``bargein`` cuts a reply
when the user speaks over it; ``view`` shows what the assistant hears and says, and logs it as JSONL.
"""
