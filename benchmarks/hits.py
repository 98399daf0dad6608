"""The dancer's hits, live (issue 11): share answered and latency to the accent; prints JSON.

A synthetic dancer (:class:`d2m.hit_dancer.HitDancer`: steady dancing at
``--bpm`` with an arm snap or a stomp at known times, every 2.0-2.4 s, so
accents never overlap) is streamed over OSC at 60 Hz in real time to a real
``d2m serve --audio-out none --record live.wav --record-motion motion.jsonl``
(the paced clock standing in for a sound card). For every marked hit:

* the *hit's frame* is the frame sent at the instant the joints come to rest;
  its session time is the server's own stamp of that frame (the motion
  recording holds every frame in the order sent);
* the *accent's first sample* is found in the recorded audio: where the live
  WAV first differs from ``d2m render`` of the same recording with hits off
  (``hit_sensitivity=0``; everything else about the music is the same), in
  the 0.5 s after the hit's frame;
* latency = accent's first sample / rate - hit frame's session time. This
  includes the detection (the frames that show the stop), the quantisation to
  the next 16th note and the 20 ms output-block margin; a sound card adds its
  own output latency (a few ms to tens of ms) on top.

Also reported: hits announced on OSC ``/d2m/hit/full`` (received by this
process) that match no marked hit (false hits), OSC announcement delay (our
send time of the hit frame to our receipt of ``/d2m/hit``), whether the
recording re-renders sample for sample with its accents (render == live), and,
when ``../shared/realdance`` is present, hits per minute the detector finds on
the real AIST++ dancers (basic moves; no marked hits there).

Usage: python benchmarks/hits.py [--quick] [--seconds S] [--bpm B] [--sensitivity X] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: Motion rate streamed (Hz).
FPS = 60.0
#: Default streaming length and the --quick one (s).
STREAM_S, QUICK_STREAM_S = 60.0, 25.0
#: First marked hit (s): the music must be playing by then (lock-in takes a few beats).
FIRST_HIT_S = 6.0
#: Gaps between marked hits (s), cycled (longer than an accent rings).
HIT_GAPS_S = (2.0, 2.4, 2.2)
#: A detected hit matches a marked one within this (s) of its stop.
MATCH_S = 0.1
#: The accent must start within this long after the hit's frame to count as an answer (s).
ANSWER_WINDOW_S = 0.5
#: Target (issue 11): median latency from the move to the accent's sound.
TARGET_MEDIAN_MS = 150.0
REALDANCE = ROOT.parent / "shared" / "realdance"


def free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_dancer(seconds: float, bpm: float, seed: int = 7):
    from d2m.dancer import SyntheticDancer
    from d2m.hit_dancer import HOLD_S, RETURN_S, HitDancer, MarkedHit

    marks, t, i = [], FIRST_HIT_S, 0
    while t < seconds - HOLD_S - RETURN_S - 0.5:
        marks.append(MarkedHit(round(t * FPS) / FPS, ("snap", "stomp")[i % 2]))   # on a frame
        t += HIT_GAPS_S[i % len(HIT_GAPS_S)]
        i += 1
    base = SyntheticDancer(tempo=bpm, sharpness=0.9, noise=0.002, seed=seed, phase_offset=0.3)
    return HitDancer(base, marks)


class OscInbox:
    """Receives the server's OSC events on a thread; keeps /d2m/hit* with our receipt time."""

    def __init__(self, port: int):
        from d2m_server.osc_codec import decode_packet

        self._decode = decode_packet
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.hits: list[tuple[float, str, list]] = []
        self.status: dict | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except OSError:
                continue
            t = time.monotonic()
            try:
                for msg in self._decode(data):
                    if msg.address.startswith("/d2m/hit"):
                        self.hits.append((t, msg.address, list(msg.args)))
                    elif msg.address == "/d2m/status" and msg.args:
                        self.status = json.loads(msg.args[0])
            except Exception:
                pass

    def close(self):
        self._stop = True
        self._thread.join(1.0)
        self.sock.close()


def run_live(seconds: float, bpm: float, sensitivity: float, tmp: Path) -> dict:
    from pythonosc.udp_client import SimpleUDPClient

    dancer = make_dancer(seconds, bpm)
    frames = dancer.frames(seconds, FPS)
    args = [[0, "coco17", *[float(v) for v in f.joints.reshape(-1)]] for f in frames]
    osc_in, osc_out = free_port(), free_port()
    wav, motion = tmp / "live.wav", tmp / "motion.jsonl"
    cmd = [sys.executable, "-m", "d2m_server.cli", "serve", "--audio-out", "none", "--no-ws",
           "--osc-in", f"127.0.0.1:{osc_in}", "--osc-out", f"127.0.0.1:{osc_out}", "--genre", "house",
           "--hit-sensitivity", str(sensitivity), "--record", str(wav), "--record-motion", str(motion),
           "--duration", str(seconds + 3.0)]
    inbox = OscInbox(osc_out)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=str(ROOT))
    log: list[str] = []
    try:
        for line in proc.stdout:
            log.append(line)
            if "d2m is live" in line:
                break
        else:
            raise RuntimeError("server exited before going live:\n" + "".join(log[-20:]))
        client = SimpleUDPClient("127.0.0.1", osc_in)
        sent_at = np.zeros(len(frames))
        t0 = time.monotonic()
        for i, (f, a) in enumerate(zip(frames, args)):
            delay = t0 + f.t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent_at[i] = time.monotonic()
            client.send_message("/d2m/pose", a)
        time.sleep(0.5)
        from pythonosc.osc_message_builder import OscMessageBuilder
        inbox.sock.sendto(OscMessageBuilder(address="/d2m/status").build().dgram, ("127.0.0.1", osc_in))
        out, _ = proc.communicate(timeout=60)
        log.append(out)
    finally:
        if proc.poll() is None:
            proc.kill()
        inbox.close()
    if proc.returncode != 0:
        raise RuntimeError("d2m serve failed:\n" + "".join(log[-20:]))
    return {"dancer": dancer, "frames": frames, "sent_at": sent_at, "wav": wav, "motion": motion,
            "osc": inbox.hits, "status": inbox.status or {}}


def analyse(live: dict, sensitivity: float) -> dict:
    import soundfile as sf

    from d2m.conductor import ConductorConfig
    from d2m.recording import ControlEntry, parse_recording
    from d2m.render import render_motion
    from d2m.synth import SynthGenerator
    from d2m_server.recorder import WavRecorder

    rec = parse_recording(live["motion"].read_text().splitlines())
    # the server's stamp of every frame we sent, matched by content (a datagram may be lost under load)
    def key(joints, sent: bool) -> bytes:      # OSC carries float32; the recording 6 decimals
        xy = np.asarray(joints[:, :2], np.float64)
        return np.round(xy.astype(np.float32).astype(np.float64) if sent else xy, 6).tobytes()

    index = {key(f.joints, True): i for i, f in enumerate(live["frames"])}
    stamps = np.full(len(live["frames"]), np.nan)
    for f in rec.frames:
        i = index.get(key(f.joints, False))
        if i is not None:
            stamps[i] = f.t
    lost = int(np.isnan(stamps).sum())
    items = [(it.t, it.control) if isinstance(it, ControlEntry) else it for it in rec.items]
    audio, sr = sf.read(str(live["wav"]), dtype="int16")
    dur = len(audio) / sr
    tmp = live["wav"].parent

    def render_int16(hit_sensitivity: float, name: str):
        res = render_motion(items, SynthGenerator(sr), ConductorConfig(genre="house", hit_sensitivity=hit_sensitivity),
                            duration=dur)
        path = tmp / name
        with WavRecorder(str(path), sr, 2) as w:         # the live recorder's own int16 conversion
            w.write(res.audio)
        return sf.read(str(path), dtype="int16")[0], res

    with_hits, res = render_int16(sensitivity, "render.wav")
    plain, _ = render_int16(0.0, "plain.wav")
    n = min(len(audio), len(with_hits), len(plain))
    same = bool(np.array_equal(audio[:n], with_hits[:n]))
    diff = np.any(audio[:n] != plain[:n], axis=1)

    marks = live["dancer"].hit_times()
    mark_idx = np.round(marks * FPS).astype(int)
    mark_session = stamps[mark_idx]                    # the server's stamp of each hit's frame (NaN: lost)
    full = [(t, a) for t, addr, a in live["osc"] if addr == "/d2m/hit/full"]
    detected = [(t_rx, float(a[2]), float(a[3])) for t_rx, a in full]     # (receipt, move_t, accent_t)
    latencies, quant, osc_delay, answered = [], [], [], []
    accents = live["status"].get("accents") or {}
    # the accent's first sample from the recorded audio; if the live audio diverged from the render
    # (audio rendered late under load, counted in late_ms), from the accent time /d2m/hit announced,
    # which the mixer plays exactly (it equals the audio onset whenever both are known)
    from_audio = same
    for k, (ms, i) in enumerate(zip(mark_session, mark_idx)):
        if not np.isfinite(ms):
            continue
        match = [d for d in detected if abs(d[1] - ms) <= MATCH_S and d[2] >= 0]
        if not match:
            continue
        if from_audio:
            lo, hi = int(np.ceil(ms * sr)), min(n, int((ms + ANSWER_WINDOW_S) * sr))
            onset = np.flatnonzero(diff[lo:hi])
            if onset.size == 0:
                continue
            first = (lo + int(onset[0])) / sr
        else:
            first = match[0][2]
            if first - ms > ANSWER_WINDOW_S:
                continue
        answered.append(k)
        latencies.append(1000 * (first - ms))
        quant.append(1000 * (match[0][2] - first))           # OSC accent time vs the audio onset
        osc_delay.append(1000 * (match[0][0] - live["sent_at"][i]))
    false_hits = [d for d in detected if not np.any(np.abs(mark_session - d[1]) <= MATCH_S)]
    kinds = [h.kind for h in live["dancer"].hits]
    by_kind = {kind: f"{sum(1 for k in answered if kinds[k] == kind)} of {kinds.count(kind)}"
               for kind in sorted(set(kinds))}
    lat = np.array(latencies)
    beat_s = 60.0 / float(live["dancer"].base.tempo.bpm(0.0))
    out = {
        "marked_hits": int(len(marks)),
        "answered": len(answered),
        "share_answered": round(len(answered) / len(marks), 3) if len(marks) else None,
        "answered_by_kind": by_kind,
        "missed": [{"t": round(float(marks[k]), 3), "kind": kinds[k]} for k in range(len(marks))
                   if k not in answered],
        "hits_announced_osc": len(full),
        "false_hits": len(false_hits),
        "false_hits_after_nearest_mark_s": [round(float(d[1] - mark_session[np.nanargmin(np.abs(mark_session - d[1]))]), 3)
                                            for d in false_hits],
        "latency_ms": {"median": round(float(np.median(lat)), 1), "p90": round(float(np.percentile(lat, 90)), 1),
                       "min": round(float(lat.min()), 1), "max": round(float(lat.max()), 1)} if lat.size else None,
        "target_median_ms": TARGET_MEDIAN_MS,
        "meets_target": bool(lat.size and np.median(lat) <= TARGET_MEDIAN_MS),
        "sixteenth_ms": round(1000 * beat_s / 4, 1),
        "osc_accent_time_vs_audio_onset_ms_max_abs": round(float(np.max(np.abs(quant))), 3) if quant else None,
        "osc_hit_announced_after_hit_frame_sent_ms": {"median": round(float(np.median(osc_delay)), 1),
                                                      "p90": round(float(np.percentile(osc_delay, 90)), 1)}
        if osc_delay else None,
        "latency_from": "recorded audio vs render without hits" if from_audio else
                        "announced accent time (the live audio diverged from the render, see late_ms)",
        "frames_lost": lost,
        "render_equals_live": same,
        "first_difference_s": None if same else round(float(np.argmax(np.any(audio[:n] != with_hits[:n], axis=1))) / sr, 4),
        "server": {"telemetry": {k: live["status"].get("telemetry", {}).get(k)
                                 for k in ("underruns", "late_ms", "accents_late", "loop_lag_ms_p99")},
                   "accents": live["status"].get("accents"), "hits": live["status"].get("hits")},
        "render_hits": len(res.hits),
    }
    return out


def real_dancers(sensitivity: float) -> dict | None:
    """Hits per minute the detector finds on the real AIST++ dancers (development data)."""
    if not REALDANCE.is_dir():
        return None
    from d2m.hits import HitDetector
    from d2m.recording import parse_recording

    per = {}
    total_s = total = 0.0
    for path in sorted(REALDANCE.glob("*.jsonl")):
        rec = parse_recording(path.read_text().splitlines())
        det = HitDetector(sensitivity)
        hits = sum(len(det.push(f)) for f in rec.frames)
        secs = rec.frames[-1].t - rec.frames[0].t
        per[path.stem] = hits
        total += hits
        total_s += secs
    return {"hits": per, "seconds": round(total_s, 1),
            "hits_per_minute": round(60.0 * total / total_s, 2) if total_s else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_STREAM_S:g} s instead of {STREAM_S:g} s")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--bpm", type=float, default=120.0)
    ap.add_argument("--sensitivity", type=float, default=None, help="--hit-sensitivity (default: d2m's)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from d2m.hits import DEFAULT_HIT_SENSITIVITY

    sens = DEFAULT_HIT_SENSITIVITY if a.sensitivity is None else a.sensitivity
    seconds = a.seconds or (QUICK_STREAM_S if a.quick else STREAM_S)
    with tempfile.TemporaryDirectory(prefix="d2m-hits-") as tmp:
        live = run_live(seconds, a.bpm, sens, Path(tmp))
        res = {"live": analyse(live, sens)}
    res["live"].update({"seconds": seconds, "bpm": a.bpm, "sensitivity": sens,
                        "setup": "d2m serve --audio-out none (paced clock), synth, --genre house, OSC in/out "
                                 "on loopback; HitDancer: steady dancing + arm snaps/stomps"})
    res["real_dancers_offline"] = real_dancers(sens)
    text = json.dumps(res, indent=1)
    if a.out:
        Path(a.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
