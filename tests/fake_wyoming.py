"""A scripted Wyoming speech server on loopback, for the plumbing tests of the remote engines: what
each connection sent is recorded, the answers are fixed. The real servers (wyoming-faster-whisper,
wyoming-piper, ours) are in tests/speech_servers.py and the real tests."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from dataclasses import dataclass, field

import numpy as np
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, read_event, write_event
from wyoming.info import Attribution, Info, TtsProgram, TtsVoice
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStopped

RATE = 22050


@dataclass
class FakeWyoming:
    text: str = "hello there"
    streaming_tts: bool = False  # says supports_synthesize_streaming in its info
    fail_word: str | None = None  # a text to synthesise with this word gets an error event
    connections: list[list[Event]] = field(default_factory=list)  # events received, per connection

    def __post_init__(self) -> None:
        fake = self
        self._socks: list[socket.socket] = []

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                fake._socks.append(self.connection)
                got: list[Event] = []
                fake.connections.append(got)
                while (event := read_event(self.rfile)) is not None:
                    got.append(event)
                    if not fake._answer(event, self.wfile):
                        return

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"tcp://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def kill(self) -> None:
        """Gone, as a crashed box: no more connections, and those open are cut."""
        self.close()
        for sock in self._socks:
            with contextlib.suppress(OSError):  # (already closed)
                sock.shutdown(socket.SHUT_RDWR)

    def audio_of(self, conn: list[Event]) -> int:
        """Samples of audio a connection sent."""
        return sum(len(AudioChunk.from_event(e).audio) // 2 for e in conn if AudioChunk.is_type(e.type))

    def _answer(self, event: Event, out) -> bool:  # type: ignore[no-untyped-def]
        """Answer one event; False ends the connection (as the reference servers do)."""
        if event.type == "describe":
            attribution = Attribution(name="test", url="")
            voice = TtsVoice(
                name="v",
                description="",
                attribution=attribution,
                installed=True,
                version=None,
                languages=["en"],
            )
            program = TtsProgram(
                name="fake", description="", attribution=attribution, installed=True, version=None,
                voices=[voice], supports_synthesize_streaming=self.streaming_tts,
            )  # fmt: skip
            write_event(Info(tts=[program]).event(), out)
        elif AudioStop.is_type(event.type):
            write_event(Transcript(text=self.text).event(), out)
            return False
        elif Synthesize.is_type(event.type):
            self._speak(Synthesize.from_event(event).text, out)
            return False
        elif SynthesizeChunk.is_type(event.type):
            self._speak(SynthesizeChunk.from_event(event).text, out)
        elif event.type == "synthesize-stop":
            write_event(SynthesizeStopped().event(), out)
            return False
        return True

    def _speak(self, text: str, out) -> None:  # type: ignore[no-untyped-def]
        """100 ms of tone per character: the length says what was said."""
        if self.fail_word and self.fail_word in text:
            write_event(Error(text="this voice cannot say that").event(), out)
            return
        fmt = {"rate": RATE, "width": 2, "channels": 1}
        audio = (np.ones(len(text) * RATE // 10) * 1000).astype("<i2").tobytes()
        write_event(AudioStart(**fmt).event(), out)
        write_event(AudioChunk(audio=audio, **fmt).event(), out)
        write_event(AudioStop().event(), out)
