"""Operator controls: what a technical director can change during a show.

A :class:`Control` carries only the fields being changed (``None`` = leave as
is). Controls reach the conductor from OSC, WebSocket, MQTT or a motion
recording, always with the session time at which they arrived, and take
effect on the next bar (volume: on the next audio block).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .genres import parse_genre

#: Tempo range the tracker and the music accept, in BPM.
MIN_BPM = 60.0
MAX_BPM = 200.0
#: Longest operator prompt accepted, in characters.
MAX_PROMPT_CHARS = 500

#: Sentinel genre value that hands genre back to the motion estimate.
AUTO = "auto"


class InvalidControl(ValueError):
    """A control value out of range or of the wrong type; the message says what is allowed."""


@dataclass(frozen=True)
class Control:
    genre: str | None = None         #: genre key, or "auto" to follow the dancer again
    prompt: str | None = None        #: operator text prompt; "" clears it
    tempo_lock: bool | None = None   #: True: hold the tempo; False: follow the dancer
    bpm: float | None = None         #: with tempo_lock=True, the tempo to hold (else the current one)
    volume: float | None = None      #: master volume 0..1
    playing: bool | None = None      #: False: stop the music (fade out); True: start again

    def __post_init__(self) -> None:
        if self.genre is not None and self.genre != AUTO:
            object.__setattr__(self, "genre", _genre(self.genre))
        if self.prompt is not None:
            if not isinstance(self.prompt, str):
                raise InvalidControl("prompt must be a string")
            if len(self.prompt) > MAX_PROMPT_CHARS:
                raise InvalidControl(f"prompt is longer than {MAX_PROMPT_CHARS} characters")
        if self.bpm is not None:
            bpm = _number(self.bpm, "bpm")
            if not MIN_BPM <= bpm <= MAX_BPM:
                raise InvalidControl(f"bpm must be between {MIN_BPM:g} and {MAX_BPM:g}, got {bpm:g}")
            object.__setattr__(self, "bpm", bpm)
        if self.volume is not None:
            vol = _number(self.volume, "volume")
            if not 0.0 <= vol <= 1.0:
                raise InvalidControl(f"volume must be between 0 and 1, got {vol:g}")
            object.__setattr__(self, "volume", vol)
        for name in ("tempo_lock", "playing"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise InvalidControl(f"{name} must be true or false")

    def changes(self) -> dict:
        """Only the fields that are set, as a JSON-friendly dict."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict) -> "Control":
        """Build from a JSON object; unknown fields are rejected with a clear error."""
        if not isinstance(data, dict):
            raise InvalidControl("control must be a JSON object")
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise InvalidControl(
                f"unknown control field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
            )
        return cls(**data)


def _genre(value) -> str:
    try:
        return parse_genre(value)
    except ValueError as exc:
        raise InvalidControl(str(exc)) from None


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidControl(f"{name} must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidControl(f"{name} must be finite")
    return value
