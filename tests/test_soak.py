"""The soak, short: 50 spoken turns and 20 Wyoming conversations through one process with the scripted
engines (the real VAD, stages, queues, threads and server; bench/soak.py runs the shipped models and
longer). Nothing may grow: threads and file descriptors come back to where they were, memory stays
within a generous bound."""

from __future__ import annotations

from assistant.config import Config
from bench.soak import Row, fake_engines, soak

RSS_GROWTH_MB = 100  # generous: the allocator keeps freed memory; a leak of a turn's audio would pass it fast


def test_turns_and_conversations_leave_no_threads_fds_or_memory_behind(cfg: Config) -> None:
    rows: list[Row] = soak(cfg, fake_engines(), turns=50, conversations=20, block=25, clients=4)
    start, stopped = rows[0], rows[-1]
    turns = [r for r in rows if r.phase == "turns"]
    wyoming = [r for r in rows if r.phase == "wyoming"]
    assert [r.done for r in turns] == [25, 50] and [r.done for r in wyoming] == [20]
    assert all(r.outcome == "25 turns, 25 answered (0 after the filler)" for r in turns), turns
    assert wyoming[0].outcome == "20 conversations, 20 answered"
    for row in [*turns, stopped]:  # every pipeline's threads and the server's sockets are gone
        assert row.threads <= start.threads and row.fds <= start.fds, row
    assert stopped.rss_mb - turns[0].rss_mb < RSS_GROWTH_MB
