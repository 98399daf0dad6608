"""A picture of one evaluation: onset envelope, beats, offsets and tempo over time.

Uses matplotlib's object API with the Agg canvas (no display, no pyplot state).
:func:`make_figure` returns the figure; the caller saves it.
"""

from __future__ import annotations

import numpy as np

from .motion_input import MotionAnalysis
from .report import EvalReport

#: Figure size (inches) and resolution (dots per inch) of the saved PNG.
FIGSIZE = (12.0, 8.0)
DPI = 110
#: Inter-beat intervals averaged (running median) for the music's local tempo curve.
MUSIC_TEMPO_SMOOTH = 5
#: Envelope panel height as a multiple of the envelope's peak (room for the legend).
LEGEND_HEADROOM = 1.45
#: Least span of the tempo axis (BPM), so tiny jitter does not look dramatic.
MIN_TEMPO_SPAN_BPM = 20.0
#: Least room (BPM) above and below the tempo curves.
TEMPO_PAD_BPM = 5.0


def music_tempo_curve(music_beats: np.ndarray, *, smooth: int = MUSIC_TEMPO_SMOOTH) -> tuple[np.ndarray, np.ndarray]:
    """Local music tempo ``60 / IBI`` at interval midpoints, running median over ``smooth`` intervals."""
    b = np.sort(np.asarray(music_beats, dtype=np.float64))
    if b.size < 2:
        return np.zeros(0), np.zeros(0)
    ibi = np.diff(b)
    mids = (b[:-1] + b[1:]) / 2
    half = max(0, smooth // 2)
    med = np.array([np.median(ibi[max(0, i - half):i + half + 1]) for i in range(ibi.size)])
    return mids, 60.0 / med


def make_figure(report: EvalReport, motion: MotionAnalysis,
                dance_tempo: tuple[np.ndarray, np.ndarray] | None = None, *, title: str = ""):
    """Three panels sharing the time axis: envelope and beats; offsets; tempo."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1.3, 1.3]})

    # 1: motion envelope, motion beats, music beats
    t, env = motion.t_grid - motion.lag_s, motion.envelope
    lag_note = f" (shifted {-motion.lag_s * 1000:.0f} ms for its lag)" if motion.lag_s else ""
    ax1.plot(t, env, color="tab:blue", lw=0.9, label="motion onset envelope" + lag_note)
    for i, mb in enumerate(report.music_beats):
        ax1.axvline(mb, color="tab:red", lw=0.8, alpha=0.55, label="music beats" if i == 0 else None)
    if report.motion_beats.size:
        ev = np.interp(report.motion_beats, t, env) if t.size else np.zeros(report.motion_beats.size)
        ax1.plot(report.motion_beats, ev, "v", color="k", ms=6, label="motion beats")
    if report.music_duration_s is not None:
        ax1.axvspan(report.music_start_s, report.music_start_s + report.music_duration_s,
                    color="tab:orange", alpha=0.06, label="music span (scored)")
    top = float(np.nanmax(env)) if env.size and np.isfinite(env).any() else 1.0
    ax1.set_ylim(0.0, (top if top > 0 else 1.0) * LEGEND_HEADROOM)
    ax1.set_ylabel("onset envelope")
    ax1.legend(loc="upper right", fontsize=8, ncol=4)
    us = report.music_side
    summary = (f"BAS {report.motion_side.bas:.3f} (per music beat {us.bas:.3f});  per music beat "
               f"|offset| median {us.stats.median_abs_ms:.0f} ms, p90 {us.stats.p90_abs_ms:.0f} ms")
    ax1.set_title(f"{title}\n{summary}" if title else summary, fontsize=10)

    # 2: signed offsets, per motion beat and per music beat
    ms, us = report.motion_side, report.music_side
    tol = ms.lock.tolerance_ms
    ax2.axhspan(-tol, tol, color="tab:green", alpha=0.12, label=f"+-{tol:.0f} ms")
    ax2.axhline(0, color="0.5", lw=0.6)
    if ms.beats.size:
        ax2.plot(ms.beats, ms.offsets_s * 1000.0, "v", ms=4, color="k", alpha=0.6,
                 label="per motion beat")
    if us.beats.size:
        ax2.plot(us.beats, us.offsets_s * 1000.0, "o-", ms=3.5, lw=0.7, color="tab:red",
                 label="per music beat")
    if us.lock.locked:
        ax2.axvline(us.lock.time_s, color="tab:green", ls="--", lw=1.2,
                    label=f"music locked after {us.lock.beat} beats")
    ax2.set_ylabel("offset (ms)\nmusic - motion")
    ax2.legend(loc="upper right", fontsize=8, ncol=4)

    # 3: tempo over time
    mt, mbpm = music_tempo_curve(report.music_beats)
    if mt.size:
        ax3.plot(mt, mbpm, color="tab:red", lw=1.2, label="music (60/IBI)")
    if dance_tempo is not None and dance_tempo[0].size:
        ax3.plot(dance_tempo[0], dance_tempo[1], color="tab:blue", lw=1.2, label="dance (local estimate)")
    if np.isfinite(report.music_bpm):
        ax3.axhline(report.music_bpm, color="tab:red", ls=":", lw=1, label=f"music {report.music_bpm:.1f}")
    if np.isfinite(report.dance_bpm):
        ax3.axhline(report.dance_bpm, color="tab:blue", ls=":", lw=1, label=f"dance {report.dance_bpm:.1f}")
    vals = np.concatenate([mbpm, dance_tempo[1] if dance_tempo is not None else np.zeros(0),
                           [report.music_bpm, report.dance_bpm]])
    vals = vals[np.isfinite(vals)]
    if vals.size:
        lo, hi = float(vals.min()), float(vals.max())
        pad = max(TEMPO_PAD_BPM, (MIN_TEMPO_SPAN_BPM - (hi - lo)) / 2)
        ax3.set_ylim(lo - pad, hi + pad)
    ax3.set_ylabel("tempo (BPM)")
    ax3.set_xlabel("session time (s)")
    ax3.legend(loc="center right", fontsize=8, ncol=2)
    fig.tight_layout()
    return fig
