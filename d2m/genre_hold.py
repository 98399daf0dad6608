"""A genre that holds: the motion's genre estimate changes the music rarely and only on phrase lines.

The style tracker's genre probabilities (:mod:`d2m.style`) move with every
window of motion; played as they are, the band would change genre several
times a minute. :class:`GenreHold` stands between the estimate and the music:

* **while no music plays** (waiting for the dancer, stopped) it follows the
  estimate whenever the estimate is sure enough (genre confidence at least
  :data:`GENRE_HOLD_MIN_CONFIDENCE`), so the first bar starts in the best guess;
* **while music plays** a different genre takes over only when it has been
  *persistently* better: the most likely genre, at least
  :data:`GENRE_HOLD_MIN_CONFIDENCE` sure, and at least :data:`GENRE_HOLD_MARGIN`
  more probable than the genre playing (hysteresis), without a break for
  :data:`GENRE_HOLD_PERSIST_S` seconds; and then only when the next bar starts a
  phrase, and no sooner than :data:`GENRE_HOLD_MIN_DWELL_S` after the last
  change (so at most one change a minute). When the estimate is unsure, the
  evidence is dropped and the genre playing stays.

The operator's genre always wins (the conductor uses it instead, at once); the
hold keeps following the motion underneath, so switching back to ``auto``
returns to the held motion genre. Deterministic, no I/O: time comes in.
"""

from __future__ import annotations

import math

import numpy as np

from .genres import GENRES

#: Genre confidence ((p_top - 1/G) / (1 - 1/G)) below which the estimate counts as unsure.
GENRE_HOLD_MIN_CONFIDENCE = 0.2
#: A new genre must be this much more probable than the one playing (hysteresis).
GENRE_HOLD_MARGIN = 0.12
#: ... continuously for this long (s) before it may take over.
GENRE_HOLD_PERSIST_S = 16.0
#: No motion-driven change sooner than this (s) after the previous one.
GENRE_HOLD_MIN_DWELL_S = 60.0


class GenreHold:
    """The motion genre the music plays (see the module doc)."""

    def __init__(self) -> None:
        self.genre: str | None = None      #: the held genre (None before the first estimate)
        self.candidate: str | None = None  #: the genre gathering evidence
        self.candidate_since = 0.0
        self.last_change = -math.inf
        self.changes = 0                   #: changes made while music played

    def update(self, t: float, probs, *, in_music: bool, boundary: bool) -> str | None:
        """Take the estimate at session time ``t``; returns the genre to play from the next segment.

        ``in_music``: the segment just planned is a music bar; ``boundary``: the
        next music bar starts a phrase (a change may land there).
        """
        p = np.asarray(probs, dtype=np.float64)
        if p.shape != (len(GENRES),) or not np.isfinite(p).all() or p.sum() <= 0:
            return self.genre
        p = p / p.sum()
        top = int(np.argmax(p))
        g = len(GENRES)
        confidence = (p[top] - 1.0 / g) / (1.0 - 1.0 / g)
        sure = confidence >= GENRE_HOLD_MIN_CONFIDENCE
        if self.genre is None:
            self.genre = GENRES[top]
            return self.genre
        if not in_music:
            if sure:
                self.genre = GENRES[top]
            self.candidate = None
            return self.genre
        held = p[GENRES.index(self.genre)] if self.genre in GENRES else 0.0
        if GENRES[top] != self.genre and sure and p[top] - held >= GENRE_HOLD_MARGIN:
            if self.candidate != GENRES[top]:
                self.candidate, self.candidate_since = GENRES[top], t
        else:
            self.candidate = None
        if (boundary and self.candidate is not None and t - self.candidate_since >= GENRE_HOLD_PERSIST_S
                and t - self.last_change >= GENRE_HOLD_MIN_DWELL_S):
            self.genre, self.candidate = self.candidate, None
            self.last_change = t
            self.changes += 1
        return self.genre
