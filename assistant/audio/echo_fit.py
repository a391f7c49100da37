"""The microphone minus the assistant's voice, fitted afresh each frame: what barge-in's recogniser
hears besides the echo canceller's output.

WebRTC's AEC3 keeps its own output free of echo by suppressing whatever it is unsure of, and over a
loudspeaker it is unsure exactly when the user talks over the reply: live (frame dumps, the loopback
echo path), the part of a "Stop." that overlapped loud echo came out 30-60 dB down, and so did the
onset after each jump in the echo's delay (the speaker-to-mic delay here steps by 10-40 ms several
times a reply: a late callback, a resync), while AEC3 re-converged. tiny.en then heard "Yeah." or
"It's up." This linear estimate never suppresses: it subtracts the played audio passed through a
short filter, fitted by least squares over the last ``WINDOW_FRAMES`` of raw microphone at the lag
where the two correlate best. The user's speech is uncorrelated with the played audio, so it does not
bias the fit (double talk needs no detector), and a delay jump is followed within a window. A room's
echo is filtered, not a copy: ``TAPS`` around the lag take its direct part and first reflections;
its reverberant tail stays in, as quiet residue under the user's voice. Replayed on the dumps, the
"Stop." tiny.en heard as "Yeah." from AEC3 came out as "Stop." here; it costs ~0.2 ms a frame.
"""

from __future__ import annotations

import numpy as np

WINDOW_FRAMES = 15  # 0.3 s of microphone per fit: long enough to be sure, short enough to follow
TAPS = 9  # filter taps around the best lag (0.5 ms at 16 kHz)
RIDGE = 1e-3  # regularisation, relative to the mean tap energy: a near-silent far end fits nothing
# a frame the fit explains to within this part of its energy (-10 dB) is the played audio alone: it
# comes out silent, as the canceller's echo frames do. Live (bench/live.py), tiny.en made words of the
# residue around a "Stop." ("It's a dog, it's a chemical."); replayed with this floor: "Stop."
RESIDUE_FLOOR = 0.1


def best_squared_correlation(near: np.ndarray, far: np.ndarray) -> float:
    """max over lags of corr(near, the stretch of ``far`` that ends ``lag`` samples before its end)²;
    ``far`` is ``near``'s reference plus what was played before it (the echo comes later)."""
    n, m = len(near), len(far)
    size = 1 << (n + m).bit_length()
    dots = np.fft.irfft(np.fft.rfft(far, size) * np.conj(np.fft.rfft(near, size)), size)[: m - n + 1]
    energy = np.concatenate([[0.0], np.cumsum(far**2)])
    windows = energy[n:] - energy[: m - n + 1]  # the energy of each stretch of far, len m - n + 1
    near_energy = float(np.sum(near**2))
    rho2 = dots**2 / np.maximum(windows * near_energy, 1e-9)
    return float(np.clip(rho2.max(), 0.0, 1.0))


def subtract_echo(near: np.ndarray, far: np.ndarray, frame: int) -> np.ndarray:
    """The last ``frame`` samples of ``near`` (raw microphone) minus their predicted echo, as int16.

    ``far`` is the played audio beside ``near``, preceded by whatever was played before it (the echo
    comes later): ``far[-len(near):]`` was read in step with ``near``."""
    d = near.astype(np.float64)
    x = far.astype(np.float64)
    n, m = len(d), len(x)
    size = 1 << (n + m).bit_length()
    dots = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(d, size)), size)[: m - n + 1]
    start = int(np.argmax(np.abs(dots)))  # x[start : start + n] lines up with d
    half = TAPS // 2
    cols = [
        x[s : s + n] if s >= 0 and s + n <= m else np.zeros(n) for s in range(start - half, start + half + 1)
    ]
    a = np.stack(cols, axis=1)
    gram = a.T @ a
    reg = RIDGE * np.trace(gram) / TAPS + 1e-6
    w = np.linalg.solve(gram + reg * np.eye(TAPS), a.T @ d)
    out = d[-frame:] - a[-frame:] @ w
    if out @ out < RESIDUE_FLOOR * (d[-frame:] @ d[-frame:]):
        return np.zeros(frame, dtype=np.int16)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)
