"""The one percentile and the one latency summary, for `respond`, `eval` and the benches.

numpy is imported inside the functions: the CLI imports the eval summary (for its --help text),
and `assistant --help` should not pay for numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def percentile(values: Sequence[float], q: float, method: str = "linear") -> float:
    """The q-th percentile (0..100), linear between the closest ranks (``method="higher"``: the
    measured value at or above that rank, for values where ``inf`` means "never"); nan when there
    are none. Any order: the values need not be sorted."""
    import numpy as np

    return float(np.percentile(values, q, method=method)) if len(values) else float("nan")


def latency_summary(
    latencies: Iterable[Mapping[str, float]], names: Iterable[str] | None = None
) -> dict[str, dict[str, float]]:
    """Median, p95, max and count of each latency over the turns (each turn: name -> ms).

    ``names`` picks and orders the latencies (those no turn has are left out); by default every
    name any turn has, sorted."""
    import numpy as np

    turns = list(latencies)
    if names is None:
        names = sorted({name for t in turns for name in t})
    summary = {}
    for name in names:
        values = np.array([t[name] for t in turns if name in t], dtype=float)
        if len(values):
            summary[name] = {
                "median": round(float(np.median(values)), 1),
                "p95": round(float(np.percentile(values, 95)), 1),
                "max": round(float(values.max()), 1),
                "n": len(values),
            }
    return summary
