"""A synthetic dancer with marked hits: arm snaps and stomps at known times.

:class:`HitDancer` wraps a :class:`~d2m.dancer.SyntheticDancer` (which keeps
dancing on its beat grid) and overlays hits: at each hit time ``h`` one arm
snaps out to full extension (or one leg stomps down) with an accelerating
move over the last :data:`SNAP_S` (:data:`STOMP_S`) before ``h``, then stays
frozen for :data:`HOLD_S` and eases back into the dance over
:data:`RETURN_S`. ``h`` is the instant the joints come to rest, the "hit's
frame" the hit benchmarks and tests measure latency from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .dancer import SyntheticDancer
from .skeleton import Layout, SkeletonFrame

#: Duration of the snap's accelerating move (s).
SNAP_S = 0.12
#: Duration of the stomp's slam down (s), after a lift of LIFT_S.
STOMP_S = 0.05
LIFT_S = 0.25
#: The joints stay frozen this long after the hit (s) ...
HOLD_S = 0.3
#: ... then ease back into the dance over this long (s).
RETURN_S = 0.6
#: Reach of a full-strength snap: wrist displacement in image units (about 0.7 torso).
SNAP_REACH = 0.15
#: Height of a full-strength stomp's lift in image units.
STOMP_LIFT = 0.14

_R_ARM = [6, 8, 10]          # right shoulder (fixed), elbow, wrist
_R_LEG = [14, 16]            # right knee, ankle
KINDS = ("snap", "stomp")


@dataclass(frozen=True)
class MarkedHit:
    t: float                 #: the instant the joints come to rest (s, dancer time)
    kind: str = "snap"       #: "snap" or "stomp"
    strength: float = 1.0    #: scales the displacement (and so the speed of the move)


@dataclass
class HitDancer:
    """A dancer plus marked hits (dancer time; the base dancer's noise/seed apply)."""

    base: SyntheticDancer
    hits: list[MarkedHit] = field(default_factory=list)

    def hit_times(self) -> np.ndarray:
        return np.array([h.t for h in self.hits])

    def pose(self, t: float) -> np.ndarray:
        p = self.base.pose(t)
        for h in self.hits:
            if h.t - LIFT_S - SNAP_S <= t <= h.t + HOLD_S + RETURN_S:
                p = _overlay(self.base, p, t, h)
        return p

    def frame(self, t: float) -> SkeletonFrame:
        b = self.base
        p = self.pose(t) + b._rng.normal(0.0, b.noise, size=(17, 2))
        conf = np.full(17, 0.95)
        joints = np.column_stack([p, np.zeros(17), conf])
        return SkeletonFrame.from_values(t, b.person, Layout.COCO17, joints.reshape(-1), dims=4)

    def frames(self, duration: float, fps: float = 60.0, t0: float = 0.0) -> list[SkeletonFrame]:
        return [self.frame(t0 + i / fps) for i in range(int(round(duration * fps)))]


def _smooth(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3.0 - 2.0 * u)


def _smoother(u: float) -> float:
    """Quintic ease (zero speed and acceleration at both ends): a return, not a stop."""
    u = min(1.0, max(0.0, u))
    return u * u * u * (u * (6.0 * u - 15.0) + 10.0)


def _overlay(base: SyntheticDancer, p: np.ndarray, t: float, h: MarkedHit) -> np.ndarray:
    p = p.copy()
    rest = base.pose(h.t)
    if h.kind == "snap":
        joints = _R_ARM[1:]
        target = rest[joints].copy()
        sh = rest[_R_ARM[0]]
        # extend the arm out to the side and up: elbow and wrist on a line from the shoulder
        reach = SNAP_REACH * h.strength
        direction = np.array([math.cos(-0.5), math.sin(-0.5)])       # right and up (y down)
        target[0] = sh + direction * (0.1 + 0.45 * reach)
        target[1] = sh + direction * (0.1 + reach)
        move_s = SNAP_S
    elif h.kind == "stomp":
        joints = _R_LEG
        target = rest[joints].copy()           # the foot lands where it stands
        move_s = STOMP_S
    else:
        raise ValueError(f"unknown hit kind {h.kind!r}; one of {KINDS}")
    if t <= h.t:
        if h.kind == "snap":
            u = (t - (h.t - move_s)) / move_s
            if u < 0:
                return p
            w = u * u                               # accelerating into the stop
            p[joints] = (1 - w) * p[joints] + w * target
        else:
            lift = np.array([0.0, -STOMP_LIFT * h.strength])
            t_top = h.t - move_s
            if t < t_top:                            # lift the leg smoothly
                w = _smooth((t - (t_top - LIFT_S)) / LIFT_S)
                p[joints] = (1 - w) * p[joints] + w * (base.pose(t_top)[joints] + lift)
            else:                                    # slam down, accelerating
                top = base.pose(t_top)[joints] + lift
                u = (t - t_top) / move_s
                p[joints] = top + (target - top) * (u * u)
        return p
    if t <= h.t + HOLD_S:
        p[joints] = target
        return p
    w = 1.0 - _smoother((t - h.t - HOLD_S) / RETURN_S)
    p[joints] = (1 - w) * p[joints] + w * target
    return p
