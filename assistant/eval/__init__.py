"""Measuring it: per-turn records from the events, and the recorded-audio regression (`assistant eval`).

``turns`` (latencies per turn, for `respond` and benches), ``run`` (a corpus of recordings through
the full pipeline, checked against expectations), ``summary`` (aggregates, baseline comparison),
``view`` (progress bar, tables, report.md), ``plots`` (PNGs), ``textnorm`` (normalised text for WER).
"""
