"""The ten AIST++ dance genres, in the dataset's canonical order."""

from __future__ import annotations

#: Genre keys used everywhere in d2m (OSC, WebSocket, presets, models).
GENRES: tuple[str, ...] = (
    "break",
    "pop",
    "lock",
    "middle_hiphop",
    "la_hiphop",
    "house",
    "waack",
    "krump",
    "street_jazz",
    "ballet_jazz",
)

#: AIST++ file-name codes for each genre (``gBR_sBM_c01_d04_mBR0_ch01`` ...).
AIST_CODES: dict[str, str] = {
    "gBR": "break",
    "gPO": "pop",
    "gLO": "lock",
    "gMH": "middle_hiphop",
    "gLH": "la_hiphop",
    "gHO": "house",
    "gWA": "waack",
    "gKR": "krump",
    "gJS": "street_jazz",
    "gJB": "ballet_jazz",
}

#: Human-readable names, for prompts and displays.
DISPLAY_NAMES: dict[str, str] = {
    "break": "breakdance",
    "pop": "popping",
    "lock": "locking",
    "middle_hiphop": "middle hip-hop",
    "la_hiphop": "LA-style hip-hop",
    "house": "house",
    "waack": "waacking",
    "krump": "krump",
    "street_jazz": "street jazz",
    "ballet_jazz": "ballet jazz",
}

_ALIASES = {
    "breakdance": "break", "breaking": "break", "popping": "pop", "locking": "lock",
    "hiphop": "middle_hiphop", "hip-hop": "middle_hiphop", "middle hip-hop": "middle_hiphop",
    "la": "la_hiphop", "la hip-hop": "la_hiphop", "la-style hip-hop": "la_hiphop",
    "waacking": "waack", "whacking": "waack", "jazz": "street_jazz",
    "street jazz": "street_jazz", "ballet jazz": "ballet_jazz", "ballet": "ballet_jazz",
}


class UnknownGenre(ValueError):
    """Raised for a genre name that is not one of :data:`GENRES`."""


def parse_genre(name: str) -> str:
    """Return the canonical genre key for ``name`` (key, AIST++ code, index or alias).

    Raises :class:`UnknownGenre` with the list of valid names otherwise.
    """
    text = str(name).strip()
    low = text.lower().replace("-", "_") if text.lower() not in _ALIASES else text.lower()
    if low in GENRES:
        return low
    if text in AIST_CODES:
        return AIST_CODES[text]
    if text.lower() in _ALIASES:
        return _ALIASES[text.lower()]
    if text.isdigit() and int(text) < len(GENRES):
        return GENRES[int(text)]
    raise UnknownGenre(
        f"unknown genre {name!r}; use one of: {', '.join(GENRES)} (or an index 0-9)"
    )


def genre_index(name: str) -> int:
    """Index of a genre in :data:`GENRES` (for one-hot vectors and OSC channels)."""
    return GENRES.index(parse_genre(name))
