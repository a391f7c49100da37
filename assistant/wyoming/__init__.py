"""The assistant over the Wyoming protocol, the way Home Assistant reaches speech services.

One server, many clients. The models are loaded once and shared (engines.py: locks where an engine
is not thread-safe); every connection is a ``Session`` with its own conversation history. Each
request a client makes (transcribe, synthesize, a text question, a whole spoken conversation) runs
as a short-lived ``Pipeline`` of the assistant's own stages (VadStage, AsrStage, ResponderStage,
TtsStage, PlaybackStage), fed by a network ``Feed`` instead of a file or a microphone, and ended by a
stage that turns the pipeline's messages into Wyoming events (stages.py). So the Wyoming server is
not a second implementation of the assistant: it is the same pipeline with a network at both ends.

    wire.py      reading events with limits; client audio converted to 16 kHz mono int16
    bridge.py    Feed (network -> pipeline thread) and Outbox (pipeline threads -> the socket)
    engines.py   shared engines, serialised where they must be
    stages.py    the stages at the edges: one utterance in, Wyoming events out
    requests.py  which stages serve which request
    session.py   one connection: which request is running, and the conversation history
    service.py   what every connection shares: config, engines, named conversations
    server.py    the listener, the connection limit, a server thread for tests and benchmarks
    info.py      the answer to ``describe``
"""
