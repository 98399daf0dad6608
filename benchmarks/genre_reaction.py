"""Reaction time to an operator's genre change; prints JSON.

**Offline** (``offline``, deterministic): the held-out dancer
:data:`heldout.GENRE` drives a :class:`~d2m.conductor.Conductor`; once the
music is locked, genre controls (:meth:`Conductor.control`) arrive at
``CONTROL_TIMES_S`` (spread over different positions in the bar), each to a
genre other than the current one. The reaction is the time from the control
to the start of the first segment that plays the new genre, in seconds and in
dance beats (segments are decided ``plan_lead_s`` ahead and a change lands on
the next bar line, so it is at most one bar plus the lead). Measured for the
synth's lead (0.5 s) and MusicGen's (2.5 s, ``d2m serve --backend musicgen``'s
default).

**Live** (``live``, with ``--live``; run_all uses it): the real server
(``d2m serve --audio-out none``) with the same dancer streamed over OSC at
60 Hz; genre changes are sent over OSC (``/d2m/genre``) and over the
WebSocket (``control`` messages). Reported: OSC control -> WebSocket
``control_applied`` event (OSC in + WebSocket out, ms), WebSocket control ->
``ack`` round trip (ms), OSC ``/d2m/status`` round trip (ms), and the reaction
on the session clock (``control_applied.t`` -> start of the first ``segment``
with the new genre).

Usage: python benchmarks/genre_reaction.py [--quick] [--live] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import heldout  # noqa: E402

from d2m.conductor import Conductor, ConductorConfig  # noqa: E402
from d2m.control import Control  # noqa: E402
from d2m.events import SegmentPlanned  # noqa: E402
from d2m.genres import GENRES  # noqa: E402
from d2m.plan import MUSIC  # noqa: E402

#: Session times (s) of the offline genre controls: after lock-in, at varied bar positions.
CONTROL_TIMES_S = (10.0, 12.37, 14.91, 17.23, 19.8, 22.06, 24.55, 27.12, 29.64, 32.3)
QUICK_CONTROL_TIMES_S = CONTROL_TIMES_S[:4]
#: Plan leads measured (s): the synth's default and MusicGen's.
LEADS_S = {"synth_lead_0.5s": 0.5, "musicgen_lead_2.5s": 2.5}
#: Live run: seconds streamed, first control, spacing between controls.
LIVE_S, QUICK_LIVE_S = 26.0, 14.0
LIVE_FIRST_CONTROL_S = 7.0
LIVE_CONTROL_EVERY_S = 2.3
#: OSC /d2m/status round trips measured live (the server rate-limits status replies).
STATUS_TRIPS = 5


def _summary(values) -> dict | None:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return None
    return {"n": int(v.size), "median": round(float(np.median(v)), 3), "min": round(float(v.min()), 3),
            "max": round(float(v.max()), 3)}


def offline(lead_s: float, control_times=CONTROL_TIMES_S) -> dict:
    """Genre-change reactions of the conductor with ``plan_lead_s = lead_s``."""
    case = heldout.GENRE
    frames = case.frames()
    cond = Conductor(ConductorConfig(plan_lead_s=lead_s, seed=case.seed, genre="house"))
    plans = [e.plan for e in cond.advance(0.0) if isinstance(e, SegmentPlanned)]
    pending = list(control_times)
    sent: list[tuple[float, str]] = []
    current = "house"
    for f in frames:
        while pending and pending[0] <= f.t:
            t = pending.pop(0)
            target = GENRES[(GENRES.index(current) + 3) % len(GENRES)]
            plans += [e.plan for e in cond.control(t, Control(genre=target)) if isinstance(e, SegmentPlanned)]
            sent.append((t, target))
            current = target
        plans += [e.plan for e in cond.push_frame(f) if isinstance(e, SegmentPlanned)]
    plans += [e.plan for e in cond.advance(case.duration_s + lead_s + 10.0) if isinstance(e, SegmentPlanned)]
    rows = []
    for t, genre in sent:
        first = next((p for p in plans if p.decided_at >= t and p.genre == genre), None)
        if first is None:
            rows.append({"t": t, "genre": genre, "reaction_s": None})
            continue
        bpm = case.bpm_at(t)
        react = first.start_time - t
        rows.append({"t": t, "genre": genre, "kind": first.kind, "reaction_s": round(react, 3),
                     "reaction_beats": round(react * bpm / 60.0, 2),
                     "decided_after_s": round(first.decided_at - t, 3)})
    music = [p for p in plans if p.kind == MUSIC]
    return {"plan_lead_s": lead_s, "dance_bpm": case.bpm_at(0.0), "controls": rows,
            "reaction_s": _summary(r["reaction_s"] for r in rows),
            "reaction_beats": _summary(r.get("reaction_beats") for r in rows),
            "music_segments": len(music), "all_music_when_changed": all(r.get("kind") == MUSIC for r in rows)}


def live(seconds: float) -> dict:
    """Genre changes over OSC and WebSocket to the real server while the dancer streams."""
    import threading

    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder

    from live_loop import LiveServer, WsListener, stream_dancer

    case = heldout.GENRE
    server = LiveServer()
    ws = None
    try:
        ws = WsListener(server.ws_port)
        osc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        osc.bind(("127.0.0.1", 0))
        osc.settimeout(2.0)

        def send_osc(address: str, *args) -> float:
            b = OscMessageBuilder(address=address)
            for a in args:
                b.add_arg(a)
            t = time.monotonic()
            osc.sendto(b.build().dgram, ("127.0.0.1", server.osc_port))
            return t

        controls: list[dict] = []
        current = ["house"]

        def operator():
            t_first = time.monotonic() + LIVE_FIRST_CONTROL_S
            i = 0
            while True:
                at = t_first + i * LIVE_CONTROL_EVERY_S
                if at > t_start + seconds - 4.0:
                    break
                time.sleep(max(0.0, at - time.monotonic()))
                target = GENRES[(GENRES.index(current[0]) + 3) % len(GENRES)]
                current[0] = target
                if i % 2 == 0:
                    controls.append({"via": "osc", "genre": target, "sent": send_osc("/d2m/genre", target)})
                else:
                    t_send, t_ack, reply = ws.request({"type": "control", "genre": target})
                    controls.append({"via": "ws", "genre": target, "sent": t_send,
                                     "ack_rtt_ms": round(1000 * (t_ack - t_send), 2), "ack": reply.get("type")})
                i += 1

        send_osc("/d2m/genre", "house")
        time.sleep(0.3)
        t_start = time.monotonic()
        op = threading.Thread(target=operator, daemon=True)
        op.start()
        stream_dancer(case, server.osc_port, seconds)
        op.join(10)
        time.sleep(1.0)
        trips = []
        for _ in range(STATUS_TRIPS):
            t0 = send_osc("/d2m/status")
            try:
                data, _ = osc.recvfrom(65536)
                t1 = time.monotonic()
                if OscMessage(data).address == "/d2m/status":
                    trips.append(1000 * (t1 - t0))
            except socket.timeout:
                pass
            time.sleep(0.3)
        osc.close()
    finally:
        if ws is not None:
            ws.close()
        rc = server.stop()
    applied = ws.of_type("control_applied")
    segments = ws.of_type("segment")
    rows = []
    for c in controls:
        ap = next(((t, m) for t, m in applied if t >= c["sent"] and m.get("genre") == c["genre"]), None)
        row = {"via": c["via"], "genre": c["genre"]}
        if "ack_rtt_ms" in c:
            row["ack_rtt_ms"] = c["ack_rtt_ms"]
        if ap is None:
            row["applied"] = False
            rows.append(row)
            continue
        t_recv, m = ap
        row["to_control_applied_ms"] = round(1000 * (t_recv - c["sent"]), 2)
        seg = next((s for _, s in segments if s.get("genre") == c["genre"] and s["start_time"] >= m["t"]), None)
        if seg is not None:
            row["reaction_s"] = round(seg["start_time"] - m["t"], 3)
            row["reaction_beats"] = round(row["reaction_s"] * case.bpm_at(0.0) / 60.0, 2)
        rows.append(row)
    return {
        "controls": rows,
        "osc_to_control_applied_ms": _summary(r.get("to_control_applied_ms") for r in rows if r["via"] == "osc"),
        "ws_control_ack_rtt_ms": _summary(r.get("ack_rtt_ms") for r in rows if r["via"] == "ws"),
        "osc_status_rtt_ms": _summary(trips),
        "reaction_s": _summary(r.get("reaction_s") for r in rows),
        "reaction_beats": _summary(r.get("reaction_beats") for r in rows),
        "server_exit_code": rc,
        "note": "to_control_applied = OSC datagram in -> conductor -> WebSocket event out, on loopback",
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer controls, a shorter live run")
    ap.add_argument("--live", action="store_true", help="also measure on the live server")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    times = QUICK_CONTROL_TIMES_S if a.quick else CONTROL_TIMES_S
    res: dict = {"benchmark": "genre_reaction", "version": 1, "quick": a.quick,
                 "offline": {name: offline(lead, times) for name, lead in LEADS_S.items()}}
    errors = {}
    if a.live:
        try:
            res["live"] = live(QUICK_LIVE_S if a.quick else LIVE_S)
        except Exception as exc:
            errors["live"] = f"{type(exc).__name__}: {exc}"
    res["errors"] = errors
    res["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(res, indent=1)
    if a.out:
        a.out.write_text(text + "\n")
    print(text)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
