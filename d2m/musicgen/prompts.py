"""Prompt templates with the pseudo-words ``*`` (rhythm) and ``@`` (genre). No torch.

* An empty operator prompt gives :data:`DEFAULT_TEMPLATE`,
  ``a @ music with * as the rhythm`` (the training prompt).
* Operator text may place the pseudo-words itself:
  ``laid-back @ music with saxophone, with * as the rhythm``.
* Operator text without them gets them appended: a missing ``@`` appends
  :data:`GENRE_SUFFIX` (``, in the style of @ music``), then a missing ``*``
  appends :data:`RHYTHM_SUFFIX` (``, with * as the rhythm``), so the dance
  always steers the music. Pass ``append_missing=()`` to keep free text as is.
* Pseudo-words are padded with spaces so each is a token of its own.

Without trained encoders, :func:`text_fallback` replaces the pseudo-words by
plain words (the genre's name, the tempo) so MusicGen still gets a sensible
prompt.
"""

from __future__ import annotations

import re

#: Pseudo-word injected with the rhythm encoder's output.
RHYTHM_WORD = "*"
#: Pseudo-word injected with the genre encoder's output.
GENRE_WORD = "@"
#: Prompt of training and of inference when the operator gave no text.
DEFAULT_TEMPLATE = "a @ music with * as the rhythm"
#: Appended to operator text that lacks ``*``.
RHYTHM_SUFFIX = ", with * as the rhythm"
#: Appended to operator text that lacks ``@``.
GENRE_SUFFIX = ", in the style of @ music"

_PSEUDO = re.compile(r"\s*([*@])\s*")


def compose_prompt(operator_text: str = "", *, template: str = DEFAULT_TEMPLATE,
                   append_missing: tuple[str, ...] = (GENRE_WORD, RHYTHM_WORD)) -> str:
    """The prompt MusicGen reads for ``operator_text`` (see the module doc)."""
    text = " ".join(str(operator_text or "").split())
    if not text:
        text = template
    else:
        if GENRE_WORD in append_missing and GENRE_WORD not in text:
            text += GENRE_SUFFIX
        if RHYTHM_WORD in append_missing and RHYTHM_WORD not in text:
            text += RHYTHM_SUFFIX
    text = _PSEUDO.sub(r" \1 ", text)
    return " ".join(text.split())


def text_fallback(prompt: str, *, genre_name: str, bpm: float | None) -> str:
    """Replace the pseudo-words by words: ``@`` -> genre name, ``*`` -> ``a N bpm beat``."""
    rhythm = f"a {bpm:.0f} bpm beat" if bpm and bpm > 0 else "a steady beat"
    return prompt.replace(GENRE_WORD, genre_name).replace(RHYTHM_WORD, rhythm)
