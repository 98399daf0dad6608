"""Piecewise-linear time warping that moves detected beats onto a beat grid. Pure numpy.

The generator beat-tracks its audio (see :mod:`d2m.musicgen.backend`) and
calls :func:`beat_lock` to put those beats where the plan wants them:

1. :func:`match_beats` pairs each grid beat with the nearest detected beat
   within a tolerance (one-to-one, order kept);
2. :func:`warp_positions` builds the map *output sample -> source position*
   through those anchors, linear between them and slope 1 outside, dropping
   anchors that would stretch any stretch of audio by more than
   ``max_stretch``;
3. :func:`apply_warp` reads the source at those positions (linear
   interpolation; a varispeed warp, so pitch bends by the stretch ratio, at
   most a few percent with the default limits).

Positions are in samples. The source may start before output sample 0
(``origin`` > 0 says where output sample 0 sits in the source when there is
no anchor), so a beat that came early can still be pulled back.
"""

from __future__ import annotations

import numpy as np

#: A detected beat is paired with a grid beat only within this fraction of a beat period.
MATCH_TOLERANCE = 0.3
#: Largest local stretch (or 1/compression) the warp may apply between anchors.
MAX_STRETCH = 1.15


def match_beats(source_beats, target_beats, *, tolerance: float) -> list[tuple[float, float]]:
    """Pair targets with detected beats: ``[(target, source), ...]`` sorted by target.

    ``source_beats`` must already be in output coordinates' frame of
    reference (i.e. minus the origin). Each source beat is used once; pairs
    whose order would cross are dropped.
    """
    src = sorted(float(s) for s in source_beats)
    pairs: list[tuple[float, float]] = []
    used: set[int] = set()
    for t in sorted(float(x) for x in target_beats):
        best, best_d = None, tolerance
        for i, s in enumerate(src):
            d = abs(s - t)
            if i not in used and d <= best_d:
                best, best_d = i, d
        if best is not None:
            used.add(best)
            pairs.append((t, src[best]))
    out: list[tuple[float, float]] = []
    for t, s in pairs:
        if not out or (t > out[-1][0] and s > out[-1][1]):
            out.append((t, s))
    return out


def warp_positions(anchors, n_out: int, *, max_stretch: float = MAX_STRETCH) -> np.ndarray:
    """Source position of each output sample, ``(n_out,)`` float64.

    ``anchors`` are ``(output, source)`` pairs; before the first and after the
    last the map has slope 1 (a plain shift); between them it is linear.
    Anchors whose segment slope falls outside ``[1/max_stretch, max_stretch]``
    are dropped (greedily, left to right). No anchors: the identity.
    """
    kept: list[tuple[float, float]] = []
    for t, s in sorted(anchors):
        if kept:
            dt, ds = t - kept[-1][0], s - kept[-1][1]
            if dt <= 0 or ds <= 0 or not (1.0 / max_stretch <= ds / dt <= max_stretch):
                continue
        kept.append((float(t), float(s)))
    x = np.arange(n_out, dtype=np.float64)
    if not kept:
        return x
    ts = np.array([a[0] for a in kept])
    ss = np.array([a[1] for a in kept])
    pos = np.interp(x, ts, ss)
    pos[x < ts[0]] = x[x < ts[0]] + (ss[0] - ts[0])
    pos[x > ts[-1]] = x[x > ts[-1]] + (ss[-1] - ts[-1])
    return pos


def apply_warp(source: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Read ``source`` ``(n, C)`` (or ``(n,)``) at fractional ``positions`` (clamped to its ends)."""
    src = np.asarray(source, dtype=np.float64)
    squeeze = src.ndim == 1
    if squeeze:
        src = src[:, None]
    n = src.shape[0]
    if n == 0:
        raise ValueError("cannot warp an empty source")
    p = np.clip(np.asarray(positions, dtype=np.float64), 0.0, n - 1)
    i0 = np.floor(p).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    frac = (p - i0)[:, None]
    out = src[i0] * (1.0 - frac) + src[i1] * frac
    out = out.astype(np.float32)
    return out[:, 0] if squeeze else out


def beat_lock(source: np.ndarray, source_beats, target_beats, n_out: int, *, origin: int = 0,
              period: float, tolerance: float = MATCH_TOLERANCE,
              max_stretch: float = MAX_STRETCH) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Warp ``source`` so its beats land on ``target_beats``; returns ``(audio, anchors)``.

    ``source_beats`` are sample positions in ``source``; ``target_beats`` are
    output sample positions; ``origin`` is where output sample 0 lies in
    ``source`` when unwarped; ``period`` is the beat period in samples
    (tolerance is a fraction of it). ``anchors`` are the pairs used, in
    (output, source) samples.
    """
    rel = [float(s) - origin for s in source_beats]
    pairs = match_beats(rel, target_beats, tolerance=tolerance * period)
    anchors = [(t, s + origin) for t, s in pairs]
    if anchors:
        positions = warp_positions(anchors, n_out, max_stretch=max_stretch)
    else:
        positions = np.arange(n_out, dtype=np.float64) + origin
    kept = _anchors_used(anchors, positions)
    return apply_warp(source, positions), kept


def _anchors_used(anchors, positions) -> list[tuple[float, float]]:
    out = []
    n = len(positions)
    for t, s in anchors:
        i = int(round(t))
        if 0 <= i < n and abs(positions[i] - s) < 1.0:
            out.append((t, s))
    return out
