"""d2m core: dance motion in, beat-locked music out.

The core does no I/O: no sockets, threads or clock reads. Every object takes
timestamps (seconds on the session timeline) and state in, and gives events,
audio and state out, so the same objects run live (``d2m_server``), offline
(``d2m render``) and in tests.
"""

__version__ = "0.1.0"
