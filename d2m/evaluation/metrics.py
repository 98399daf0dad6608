"""Metrics of how well music follows a dance, on plain arrays of times.

Every function here is pure numpy: it takes event times in seconds (onsets,
beats) or tempi in BPM and returns numbers. Detecting onsets and beats from
audio lives in :mod:`d2m.evaluation.audio`; motion beats come from
:mod:`d2m.motion`. Formulas and the reasons for each default are in
``docs/evaluation.md``.

Conventions:

* times are seconds on one timeline (the session timeline for live runs);
* a *signed offset* is ``music beat - motion beat``: positive means the music
  beat came *after* the dance beat (music late), negative means early;
* an empty input never raises: scores that cannot be computed are ``nan``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

#: Width of a LORIS time bin (s). LORIS quantises onsets into 1-second bins.
LORIS_BIN_S = 1.0
#: Tolerance window of the matched-onset variant of BCS/BHS (s): an onset
#: matches if one of the other track lies within +-this. 70 ms is three onset
#: frames at librosa's default hop (512 / 22050 Hz = 23.2 ms), between the 50 ms
#: of MIREX onset evaluation and the 70 ms of MIREX beat evaluation (F-measure).
ONSET_TOLERANCE_S = 0.070
#: Gaussian width of the Beat Alignment Score (s). The dance literature
#: (AIST++/FACT, Bailando) uses sigma^2 = 9 frames^2 at 60 fps, i.e. 3 frames = 50 ms.
BAS_SIGMA_S = 0.050
#: A plain tempo match: |music - dance| / dance at most this (MIREX tempo "Accuracy 1" uses 4 %).
TEMPO_TOLERANCE = 0.04
#: Tempo ratios (music / dance) counted as metrical-level ("octave") errors.
OCTAVE_RATIOS: dict[str, float] = {"2": 2.0, "1/2": 0.5, "3/2": 1.5, "2/3": 2.0 / 3.0}
#: Lock-in tolerance (s): once locked, every later |offset| stays within this.
LOCK_TOLERANCE_S = 0.050


def _times(x) -> np.ndarray:
    """A sorted 1-D float array of finite times."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    return np.sort(a[np.isfinite(a)])


def _f1(p: float, r: float) -> float:
    """Harmonic mean; 0 if either is 0 (even if the other is undefined), nan if undefined."""
    if p == 0 or r == 0:
        return 0.0
    if not (math.isfinite(p) and math.isfinite(r)):
        return math.nan
    if p + r == 0:
        return 0.0
    return 2.0 * p * r / (p + r)


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


# ---------------------------------------------------------------------------
# Beat Coverage / Beat Hit (music vs reference music)


@dataclass(frozen=True)
class BeatHitScores:
    """Beat Coverage Score, Beat Hit Score and their F1.

    ``bcs`` is the share of the generated track's units that hit the reference
    (precision); ``bhs`` the share of the reference's units that are hit
    (recall). Units are 1-second bins (LORIS) or single onsets (tolerance variant).
    """

    bcs: float
    bhs: float
    f1: float
    hits: int          #: units present in both
    generated: int     #: generated units (bins with onsets, or onsets)
    reference: int     #: reference units (bins with onsets, or onsets)

    def to_dict(self) -> dict:
        return asdict(self)


def onset_bins(onsets, *, bin_s: float = LORIS_BIN_S, duration_s: float | None = None) -> np.ndarray:
    """Boolean occupancy of ``bin_s``-wide bins: bin ``k`` is True if an onset lies in ``[k*bin_s, (k+1)*bin_s)``.

    Onsets before 0 are dropped, and so are those at or after ``duration_s``
    when it is given. Without ``duration_s`` the bins end at the last onset.
    """
    if not bin_s > 0:
        raise ValueError(f"bin_s must be > 0, got {bin_s}")
    t = _times(onsets)
    t = t[t >= 0]
    if duration_s is not None:
        t = t[t < duration_s]
        n = int(math.ceil(duration_s / bin_s - 1e-9)) if duration_s > 0 else 0
    else:
        n = int(t[-1] // bin_s) + 1 if t.size else 0
    occ = np.zeros(n, dtype=bool)
    if t.size:
        occ[np.minimum((t // bin_s).astype(np.int64), n - 1)] = True
    return occ


def beat_coverage_hit(generated_onsets, reference_onsets, *, bin_s: float = LORIS_BIN_S,
                      duration_s: float | None = None) -> BeatHitScores:
    """BCS, BHS and F1 by the LORIS definition.

    Onset times of both tracks are quantised into ``bin_s`` bins (bin index
    ``floor(t / bin_s)``); a *hit* is a bin with onsets in both tracks.
    ``BCS = hits / generated bins with onsets``, ``BHS = hits / reference bins
    with onsets``, ``F1 = 2 BCS BHS / (BCS + BHS)``. With ``duration_s`` (the
    generated track's length) onsets beyond it are ignored in both tracks, as
    LORIS truncates the reference to the generated length.
    """
    g = onset_bins(generated_onsets, bin_s=bin_s, duration_s=duration_s)
    r = onset_bins(reference_onsets, bin_s=bin_s, duration_s=duration_s)
    n = max(g.size, r.size)
    g = np.pad(g, (0, n - g.size))
    r = np.pad(r, (0, n - r.size))
    hits = int(np.count_nonzero(g & r))
    ng, nr = int(g.sum()), int(r.sum())
    bcs, bhs = _ratio(hits, ng), _ratio(hits, nr)
    return BeatHitScores(bcs=bcs, bhs=bhs, f1=_f1(bcs, bhs), hits=hits, generated=ng, reference=nr)


def match_events(a, b, *, tol_s: float) -> list[tuple[int, int]]:
    """One-to-one matching of two sorted event lists: pairs ``(i, j)`` with ``|a[i] - b[j]| <= tol_s``.

    Two-pointer greedy in time order; it finds a maximum matching because each
    event's candidates form a contiguous run that moves forward in time.
    Indices refer to the sorted, finite inputs.
    """
    a, b = _times(a), _times(b)
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < a.size and j < b.size:
        d = b[j] - a[i]
        if d < -tol_s:
            j += 1
        elif d > tol_s:
            i += 1
        else:
            pairs.append((i, j))
            i += 1
            j += 1
    return pairs


def beat_coverage_hit_tolerance(generated_onsets, reference_onsets, *,
                                tol_s: float = ONSET_TOLERANCE_S,
                                duration_s: float | None = None) -> BeatHitScores:
    """Tolerance-window variant of BCS/BHS on single onsets instead of bins.

    Generated and reference onsets are matched one to one when they lie within
    ``+-tol_s`` of each other (:func:`match_events`). ``BCS = matched /
    generated onsets`` (precision), ``BHS = matched / reference onsets``
    (recall), F1 their harmonic mean.
    """
    if not tol_s >= 0:
        raise ValueError(f"tol_s must be >= 0, got {tol_s}")
    g, r = _times(generated_onsets), _times(reference_onsets)
    if duration_s is not None:
        g, r = g[g < duration_s], r[r < duration_s]
    hits = len(match_events(g, r, tol_s=tol_s))
    bcs, bhs = _ratio(hits, g.size), _ratio(hits, r.size)
    return BeatHitScores(bcs=bcs, bhs=bhs, f1=_f1(bcs, bhs), hits=hits,
                         generated=int(g.size), reference=int(r.size))


# ---------------------------------------------------------------------------
# Motion beats vs music beats


def nearest_offsets(motion_beats, music_beats) -> np.ndarray:
    """Signed offset from each motion beat to its nearest music beat: ``music - motion`` (s).

    One value per (sorted, finite) motion beat; all ``nan`` if there is no
    music beat. Ties go to the earlier music beat.
    """
    m, b = _times(motion_beats), _times(music_beats)
    if b.size == 0:
        return np.full(m.size, np.nan)
    k = np.searchsorted(b, m)
    left = b[np.clip(k - 1, 0, b.size - 1)]
    right = b[np.clip(k, 0, b.size - 1)]
    dl, dr = left - m, right - m
    return np.where(np.abs(dl) <= np.abs(dr), dl, dr)


def beat_alignment_score(motion_beats, music_beats, *, sigma_s: float = BAS_SIGMA_S) -> float:
    """Beat Alignment Score: mean over motion beats of ``exp(-d^2 / (2 sigma^2))``.

    ``d`` is the distance (s) from a motion beat to the nearest music beat.
    1 means every motion beat has a music beat exactly on it. ``nan`` without
    motion beats; 0 if there are motion beats but no music beats. Swap the
    arguments for the music-side score (Bailando's code averages over music beats).
    """
    if not sigma_s > 0:
        raise ValueError(f"sigma_s must be > 0, got {sigma_s}")
    m = _times(motion_beats)
    if m.size == 0:
        return math.nan
    d = nearest_offsets(m, music_beats)
    if np.isnan(d).all():
        return 0.0
    return float(np.mean(np.exp(-(d ** 2) / (2.0 * sigma_s ** 2))))


@dataclass(frozen=True)
class OffsetStats:
    """Distribution of signed offsets (music - motion), in milliseconds."""

    n: int
    median_abs_ms: float
    p90_abs_ms: float
    median_ms: float     #: signed median: > 0 music late, < 0 music early
    mean_ms: float       #: signed mean

    def to_dict(self) -> dict:
        return asdict(self)


def offset_stats(offsets_s) -> OffsetStats:
    """Median and 90th percentile of |offset|, signed median and mean, in ms (``nan`` when empty)."""
    o = np.asarray(offsets_s, dtype=np.float64).reshape(-1)
    o = o[np.isfinite(o)] * 1000.0
    if o.size == 0:
        return OffsetStats(0, math.nan, math.nan, math.nan, math.nan)
    a = np.abs(o)
    return OffsetStats(n=int(o.size), median_abs_ms=float(np.median(a)),
                       p90_abs_ms=float(np.percentile(a, 90)),
                       median_ms=float(np.median(o)), mean_ms=float(np.mean(o)))


# ---------------------------------------------------------------------------
# Tempo


@dataclass(frozen=True)
class TempoAgreement:
    """Music tempo against dance tempo.

    ``rel_error`` is the plain error ``|music - dance| / dance``. If the ratio
    ``music / dance`` is near one of :data:`OCTAVE_RATIOS` (and the plain error
    is not already within tolerance), ``octave`` names it and
    ``octave_rel_error`` is the error left after dividing it out.
    """

    music_bpm: float
    dance_bpm: float
    ratio: float                 #: music / dance
    rel_error: float             #: |music - dance| / dance
    match: bool                  #: rel_error <= tolerance
    octave: str | None           #: "2", "1/2", "3/2", "2/3" or None
    octave_rel_error: float      #: |ratio / octave - 1| (nan when no octave error)

    @property
    def octave_error(self) -> bool:
        return self.octave is not None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["octave_error"] = self.octave_error
        return d


def tempo_agreement(music_bpm: float, dance_bpm: float, *, tolerance: float = TEMPO_TOLERANCE,
                    octave_tolerance: float = TEMPO_TOLERANCE) -> TempoAgreement:
    """Compare music and dance tempi; flag metrical-level (octave) errors apart from the plain error."""
    mu, da = float(music_bpm), float(dance_bpm)
    if not (math.isfinite(mu) and math.isfinite(da) and mu > 0 and da > 0):
        return TempoAgreement(mu, da, math.nan, math.nan, False, None, math.nan)
    ratio = mu / da
    rel = abs(mu - da) / da
    match = rel <= tolerance
    octave, oct_err = None, math.nan
    if not match:
        best = min(OCTAVE_RATIOS.items(), key=lambda kv: abs(ratio / kv[1] - 1.0))
        err = abs(ratio / best[1] - 1.0)
        if err <= octave_tolerance:
            octave, oct_err = best[0], err
    return TempoAgreement(mu, da, ratio, rel, match, octave, oct_err)


# ---------------------------------------------------------------------------
# Lock-in


@dataclass(frozen=True)
class LockIn:
    """When the music locked on to the dance.

    ``beat`` is the index (0-based, in time order) of the first motion beat
    from which every later offset stays within the tolerance, i.e. how many
    motion beats passed before lock-in; ``time_s`` that beat's time and
    ``after_first_beat_s`` its distance from the first motion beat. All
    ``None`` if it never locks (the last beat is off, or there are no beats).
    """

    locked: bool
    beat: int | None
    time_s: float | None
    after_first_beat_s: float | None
    tolerance_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


def lock_in(motion_beats, offsets_s, *, tol_s: float = LOCK_TOLERANCE_S) -> LockIn:
    """First motion beat after which all offsets stay within ``+-tol_s``.

    ``motion_beats`` and ``offsets_s`` are parallel (as from
    :func:`nearest_offsets` on sorted beats); a ``nan`` offset counts as off.
    """
    t = np.asarray(motion_beats, dtype=np.float64).reshape(-1)
    o = np.asarray(offsets_s, dtype=np.float64).reshape(-1)
    if t.size != o.size:
        raise ValueError(f"motion_beats ({t.size}) and offsets_s ({o.size}) must have the same length")
    order = np.argsort(t, kind="stable")
    t, o = t[order], o[order]
    ok = np.isfinite(o) & (np.abs(np.nan_to_num(o, nan=np.inf)) <= tol_s)
    if t.size == 0 or not ok[-1]:
        return LockIn(False, None, None, None, tol_s * 1000.0)
    bad = np.flatnonzero(~ok)
    k = int(bad[-1] + 1) if bad.size else 0
    return LockIn(True, k, float(t[k]), float(t[k] - t[0]), tol_s * 1000.0)
