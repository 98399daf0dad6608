"""Shared helpers for the hardening tests: a real in-process LiveSession on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import replace

from d2m.conductor import ConductorConfig
from d2m.generator import Generator
from d2m_server.app import LiveSession, ServeOptions

#: Generous time limit for anything awaited in these tests (only reached when broken).
TIMEOUT = 20.0


def options(**overrides) -> ServeOptions:
    """Serve options for a test session: no sound card, OS-chosen ports, no OSC out, no web page."""
    base = ServeOptions(osc_in=("127.0.0.1", 0), osc_out=[], ws=("127.0.0.1", 0), audio_out="none",
                        web_page=False, conductor=ConductorConfig(genre="house"))
    return replace(base, **overrides)


def synth() -> Generator:
    from d2m.synth import SynthGenerator

    return SynthGenerator(sample_rate=48000, seed=0)


_SYNTH = None


def shared_synth() -> Generator:
    """One SynthGenerator for the whole test run (building one takes ~0.5 s); it is stateless."""
    global _SYNTH
    if _SYNTH is None:
        _SYNTH = synth()
    return _SYNTH


_WARM = False


def warm_up() -> None:
    """Compile librosa's tempo code once, as ``d2m serve`` does before going live (~seconds)."""
    global _WARM
    if not _WARM:
        from d2m_server.commands.serve import _warm_up
        _warm_up()
        _WARM = True


@contextlib.asynccontextmanager
async def live_session(generator: Generator | None = None, fallback: Generator | None = None, **overrides):
    """A started LiveSession; closed (and its tasks awaited) on exit."""
    warm_up()
    session = LiveSession(options(**overrides), generator or shared_synth(), fallback)
    await session.start()
    try:
        yield session
    finally:
        await session.close()


def ws_client(url: str, **kwargs):
    """A websockets client that keeps reading whatever the test does not consume, so closing it
    never waits out a close timeout behind its own full receive queue."""
    from websockets.asyncio.client import connect

    kwargs.setdefault("max_queue", None)
    kwargs.setdefault("close_timeout", 2)
    return connect(url, **kwargs)


def ws_url(session: LiveSession) -> str:
    return f"ws://127.0.0.1:{session.ws.port}"


async def recv_json(ws, timeout: float = TIMEOUT) -> dict:
    """Next JSON (text) message, skipping binary audio frames."""
    while True:
        msg = await asyncio.wait_for(ws.recv(), timeout)
        if isinstance(msg, str):
            return json.loads(msg)


async def recv_reply(ws, timeout: float = TIMEOUT, kinds=("ack", "error", "status")) -> dict:
    """Next reply (ack/error/status), skipping broadcast events and audio."""
    while True:
        msg = await recv_json(ws, timeout)
        if msg.get("type") in kinds:
            return msg


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))

