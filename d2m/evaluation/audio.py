"""Onsets, beats and tempo of music audio (librosa), for the metrics.

Functions take a sample array and its rate and return times in seconds from
the first sample. Audio is mixed to mono and resampled to
:data:`ANALYSIS_SR` first, so results do not depend on the file's rate.
Reading files is the caller's business (the ``d2m eval`` command does it).
"""

from __future__ import annotations

import numpy as np

from .metrics import (LORIS_BIN_S, ONSET_TOLERANCE_S, BeatHitScores, beat_coverage_hit,
                      beat_coverage_hit_tolerance)

#: Analysis sample rate (Hz): librosa's default, and what LORIS loads audio at.
ANALYSIS_SR = 22050
#: Hop between analysis frames (samples at ANALYSIS_SR): 512 -> 23.2 ms resolution.
HOP_LENGTH = 512
#: librosa.onset.onset_detect peak-picking settings used by LORIS's BCS/BHS script
#: (in frames of HOP_LENGTH; delta is the threshold over the local mean of the
#: normalised onset strength).
LORIS_ONSET_PARAMS = dict(wait=1, delta=0.2, pre_avg=3, post_avg=3, pre_max=3, post_max=3)
#: Starting tempo guess for librosa's beat tracker (BPM); librosa's default.
START_BPM = 120.0
#: Beat refinement: each tracked beat moves to the peak of a fine onset envelope
#: within +-REFINE_WINDOW_S. The tracker's beats sit on 23.2 ms frames and, for sharp
#: percussive onsets, 11-35 ms late; the fine envelope (FINE_N_FFT-sample window,
#: FINE_HOP hop = 2.9 ms) brings that to about +3 ms (clicks) / +5 ms (kicks).
REFINE_WINDOW_S = 0.035
FINE_N_FFT = 512
FINE_HOP = 64
FINE_N_MELS = 64
#: Leading/trailing beats weaker than this fraction of the median beat strength are dropped.
TRIM_RATIO = 0.3


def to_analysis(y: np.ndarray, sr: int) -> np.ndarray:
    """Mono float32 at :data:`ANALYSIS_SR`; ``y`` is ``(n,)`` or ``(n, channels)`` as soundfile reads it."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=1)
    elif y.ndim != 1:
        raise ValueError(f"audio must be (samples,) or (samples, channels), got shape {y.shape}")
    y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    if int(sr) != ANALYSIS_SR and y.size:
        y = librosa.resample(y, orig_sr=int(sr), target_sr=ANALYSIS_SR)
    return np.ascontiguousarray(y, dtype=np.float32)


def detect_onsets(y: np.ndarray, sr: int) -> np.ndarray:
    """Onset times (s) by ``librosa.onset.onset_detect`` with :data:`LORIS_ONSET_PARAMS`."""
    import librosa

    x = to_analysis(y, sr)
    if x.size < HOP_LENGTH or not np.any(x):
        return np.zeros(0)
    return np.asarray(librosa.onset.onset_detect(y=x, sr=ANALYSIS_SR, hop_length=HOP_LENGTH,
                                                 units="time", **LORIS_ONSET_PARAMS), dtype=np.float64)


def detect_beats(y: np.ndarray, sr: int, *, start_bpm: float = START_BPM,
                 refine: bool = True) -> tuple[float, np.ndarray]:
    """Tempo (BPM) and beat times (s) of music.

    Beats come from ``librosa.beat.beat_track`` (hop :data:`HOP_LENGTH` at
    :data:`ANALYSIS_SR`, i.e. 23.2 ms frames, times ``frame * hop / sr``).
    With ``refine`` (the default) the tracker runs untrimmed and each beat is
    moved to the fine onset peak near it, then weak beats at either end are
    dropped (:func:`refine_beats`); librosa's own trimming also drops real
    final beats. The tempo is :func:`grid_bpm` of the beats, seeded with
    librosa's estimate (which is quantised to whole autocorrelation lags, e.g.
    117.5 BPM for an exact 120). Silence gives ``(nan, [])``.
    """
    import librosa

    x = to_analysis(y, sr)
    if x.size < HOP_LENGTH or not np.any(x):
        return float("nan"), np.zeros(0)
    tempo, beats = librosa.beat.beat_track(y=x, sr=ANALYSIS_SR, hop_length=HOP_LENGTH,
                                           start_bpm=start_bpm, units="time", trim=not refine)
    coarse = float(np.atleast_1d(tempo)[0])
    beats = np.asarray(beats, dtype=np.float64)
    if refine and beats.size:
        beats = refine_beats(x, ANALYSIS_SR, beats)
    if beats.size == 0 or not coarse > 0:
        return float("nan"), np.zeros(0)
    return grid_bpm(beats, coarse), beats


def refine_beats(x: np.ndarray, sr: int, beats: np.ndarray, *, window_s: float = REFINE_WINDOW_S,
                 trim_ratio: float = TRIM_RATIO) -> np.ndarray:
    """Move each beat to the highest fine-resolution onset-strength peak within ``+-window_s``.

    ``x`` is mono audio at ``sr``. Leading and trailing beats whose peak
    strength is below ``trim_ratio`` times the median over all beats are
    dropped (the untrimmed tracker puts beats on the silent file edges).
    """
    import librosa

    env = librosa.onset.onset_strength(y=x, sr=sr, n_fft=FINE_N_FFT, hop_length=FINE_HOP,
                                       n_mels=FINE_N_MELS)
    t = librosa.times_like(env, sr=sr, hop_length=FINE_HOP)
    out = np.array(beats, dtype=np.float64, copy=True)
    strength = np.zeros(out.size)
    lo = np.searchsorted(t, out - window_s, side="left")
    hi = np.searchsorted(t, out + window_s, side="right")
    for i, (a, b) in enumerate(zip(lo, hi)):
        if b > a:
            j = a + int(np.argmax(env[a:b]))
            strength[i] = env[j]
            if env[j] > 0:
                out[i] = t[j]
    floor = trim_ratio * float(np.median(strength)) if strength.size else 0.0
    strong = np.flatnonzero(strength > floor)
    if strong.size == 0:
        return np.zeros(0)
    out = out[strong[0]:strong[-1] + 1]
    return np.unique(out)


def grid_bpm(beats: np.ndarray, coarse_bpm: float) -> float:
    """Tempo of a beat sequence: ``60 /`` slope of a line fit of beat time against beat number.

    Beat numbers advance by ``round(interval / coarse period)`` (at least 1),
    so a missed beat does not bend the fit. Falls back to ``coarse_bpm`` with
    fewer than three beats.
    """
    b = np.sort(np.asarray(beats, dtype=np.float64))
    if b.size < 3 or not coarse_bpm > 0:
        return float(coarse_bpm)
    p0 = 60.0 / coarse_bpm
    k = np.concatenate([[0], np.cumsum(np.maximum(1, np.round(np.diff(b) / p0)))])
    slope = float(np.polyfit(k, b, 1)[0])
    return 60.0 / slope if slope > 0 else float(coarse_bpm)


def beat_coverage_hit_audio(generated: np.ndarray, generated_sr: int, reference: np.ndarray,
                            reference_sr: int, *, bin_s: float = LORIS_BIN_S,
                            tol_s: float = ONSET_TOLERANCE_S) -> tuple[BeatHitScores, BeatHitScores]:
    """LORIS BCS/BHS (``bin_s`` bins) and the tolerance variant (``+-tol_s``) of two audio tracks.

    Both tracks are read from their first sample; the reference is cut to the
    generated track's length (as LORIS does).
    """
    gen_on = detect_onsets(generated, generated_sr)
    ref_on = detect_onsets(reference, reference_sr)
    duration = len(generated) / float(generated_sr)
    return (beat_coverage_hit(gen_on, ref_on, bin_s=bin_s, duration_s=duration),
            beat_coverage_hit_tolerance(gen_on, ref_on, tol_s=tol_s, duration_s=duration))
