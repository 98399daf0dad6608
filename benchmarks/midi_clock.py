"""MIDI clock timing under the usual live load (issue 13); prints JSON.

The real server runs as in ``live_loop.py`` (``d2m serve --audio-out none``,
the paced clock standing in for a sound card; the held-out dancer
:data:`heldout.LIVE` streamed over OSC at 60 Hz; one WebSocket event client)
with ``--midi-out bench --midi-api jack`` on a private JACK server with the
dummy backend (``jackd -d dummy``, period ``--jack-period`` frames at 48 kHz).
This process is a second JACK client reading the port; each message is
stamped with ``time.monotonic()`` in rtmidi's input callback.

* **Audio's beats**: the music beats the server announces over WebSocket
  (their ``time`` is the planned beat's session time, the moment the audio
  clock plays that sample), put on this process's clock through the best of
  several status round trips (its RTT bounds that mapping's error).
* **Offset**: arrival of pulse 0 of each music beat (pulse ``24 k`` after
  MIDI Start) minus that beat's time. Signed median, and median/p99 of
  ``|offset|`` (ms).
* **Jitter**: every pulse's arrival minus its planned time (the beat's 24
  pulses divide it evenly), less the median offset; median/p99 of ``|.|``.
* **Sender**: the server's own figure (``status.midi.out.timing``): each
  pulse's send time minus its due time, both on the audio clock.

JACK delivers MIDI once per period (``--jack-period`` / 48 kHz: 2.7 ms at
128), which the received figures include; the sender's figure does not.

Usage: python benchmarks/midi_clock.py [--seconds S] [--jack-period N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import heldout  # noqa: E402
import live_loop  # noqa: E402

#: Default streaming window (s) and JACK period (frames at 48 kHz).
STREAM_S = 30.0
JACK_PERIOD = 128
SR = 48000
PPQN = 24


def die_with_parent() -> None:
    """In the child: get SIGTERM when this process dies (even killed), so no jackd is left behind."""
    import ctypes
    import signal
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))   # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_jack(period: int) -> tuple[subprocess.Popen, str]:
    if shutil.which("jackd") is None:
        raise RuntimeError("jackd is not installed (Debian jackd2; ./run setup all installs it)")
    name = f"d2mbench{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", str(SR), "-p", str(period)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"}, preexec_fn=die_with_parent)
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"
    import rtmidi
    deadline = time.monotonic() + 10
    while True:
        try:
            rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name="probe").delete()
            return proc, name
        except rtmidi.RtMidiError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("jackd -d dummy did not start")
            time.sleep(0.2)


class Reader:
    def __init__(self, port_part: str, timeout: float = 20.0):
        import rtmidi
        self.inp = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name="bench-reader")
        self.inp.ignore_types(sysex=True, timing=False, active_sense=True)
        deadline = time.monotonic() + timeout
        while True:
            ports = self.inp.get_ports()
            match = [i for i, p in enumerate(ports) if port_part in p]
            if match:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no MIDI port {port_part!r}: {ports}")
            time.sleep(0.1)
        self.messages: list[tuple[float, tuple]] = []
        self.inp.set_callback(lambda ev, _: self.messages.append((time.monotonic(), tuple(ev[0]))))
        self.inp.open_port(match[0])

    def close(self) -> None:
        self.inp.cancel_callback()          # no callback may run while the client is torn down
        self.inp.close_port()
        self.inp.delete()


def stats_ms(x) -> dict:
    a = np.abs(np.asarray(x, dtype=float)) * 1000
    return {"median": round(float(np.median(a)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "max": round(float(np.max(a)), 3), "n": int(a.size)}


def analyse(messages, beats_mono: np.ndarray) -> dict:
    """Received pulses against the audio's beats (each pulse matched to its nearest planned pulse)."""
    kinds = [m for _, m in messages]
    if (0xFA,) not in kinds:
        return {"error": "no MIDI Start received (the music did not start)"}
    i = kinds.index((0xFA,))
    pulses = []
    for t, m in messages[i + 1:]:
        if m == (0xFC,):            # Stop: the first continuous run of music ends
            break
        if m == (0xF8,):
            pulses.append(t)
    pulses = np.array(pulses)
    beats = np.asarray(beats_mono, dtype=float)
    if len(beats) < 5 or len(pulses) < 4 * PPQN:
        return {"error": f"too little measured ({len(beats)} beats, {len(pulses)} pulses)"}
    planned = np.concatenate([beats[k] + (beats[k + 1] - beats[k]) * np.arange(PPQN) / PPQN
                              for k in range(len(beats) - 1)])
    is_beat = np.zeros(len(planned), bool)
    is_beat[::PPQN] = True
    # only pulses inside the span of announced beats; each to its nearest planned pulse
    keep = (pulses >= planned[0] - 0.5) & (pulses <= planned[-1] + 0.05)
    pulses = pulses[keep]
    idx = np.clip(np.searchsorted(planned, pulses), 1, len(planned) - 1)
    idx = np.where(np.abs(pulses - planned[idx - 1]) < np.abs(pulses - planned[idx]), idx - 1, idx)
    resid = pulses - planned[idx]
    med = float(np.median(resid))
    beat_res = resid[is_beat[idx]]
    return {"beats": int(is_beat[idx].sum()), "pulses": int(len(pulses)),
            "pulses_expected": int(len(planned)),
            "offset_ms_signed_median": round(float(np.median(beat_res)) * 1000, 3),
            "offset_abs_ms": stats_ms(beat_res), "jitter_abs_ms": stats_ms(resid - med)}


def measure(seconds: float, period: int) -> dict:
    jack, name = start_jack(period)
    live_loop.SERVER_ENV.update({"JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1"})
    server = ws = reader = None
    try:
        server = live_loop.LiveServer("--midi-out", "bench", "--midi-api", "jack")
        reader = Reader("bench")
        ws = live_loop.WsListener(server.ws_port)
        offset, rtt = ws.session_offset()
        c1, w1 = server.cpu_seconds(), time.monotonic()
        live_loop.stream_dancer(heldout.LIVE, server.osc_port, seconds)
        c2, w2 = server.cpu_seconds(), time.monotonic()
        time.sleep(0.5)
        offset2, rtt2 = ws.session_offset()
        _, _, status = ws.request({"type": "status"})
    finally:
        if reader is not None:
            reader.close()
        if ws is not None:
            ws.close()
        if server is not None:
            server.stop()
        jack.terminate()
        try:
            jack.wait(5)
        except subprocess.TimeoutExpired:
            jack.kill()
    session_minus_mono = (offset + offset2) / 2
    beat_times = np.array(sorted(m["time"] for _, m in ws.of_type("beat")))
    beats_mono = beat_times - session_minus_mono
    res = analyse(list(reader.messages), beats_mono)
    midi = (status.get("midi") or {}).get("out") or {}
    res.update({
        "sender_on_audio_clock": midi.get("timing"),
        "sender_dropped_late": midi.get("dropped_late"),
        "server_cpu_pct_one_core": round(100 * (c2 - c1) / (w2 - w1), 2),
        "loop_lag_ms_p99": (status.get("telemetry") or {}).get("loop_lag_ms_p99"),
        "clock_sync_rtt_ms": round(1000 * min(rtt, rtt2), 3),
        "clock_drift_ms": round(1000 * (offset2 - offset), 3),
        "jack_period_frames": period, "jack_period_ms": round(1000 * period / SR, 3),
        "stream": {"seconds": seconds, "dancer": heldout.LIVE.name, "fps": live_loop.STREAM_FPS},
        "setup": "d2m serve --audio-out none (paced clock) --midi-out bench --midi-api jack; jackd -d dummy; "
                 "held-out dancer over OSC at 60 Hz; 1 WebSocket event client; reader = 2nd JACK client",
    })
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=STREAM_S)
    ap.add_argument("--jack-period", type=int, default=JACK_PERIOD)
    ap.add_argument("--quick", action="store_true", help="a 15 s window")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    res: dict = {"benchmark": "midi_clock", "version": 1, "cpus": os.cpu_count()}
    try:
        res["clock"] = measure(15.0 if a.quick else a.seconds, a.jack_period)
        rc = 0 if "error" not in res["clock"] else 1
    except Exception as exc:  # noqa: BLE001 - report, as the other benchmarks do
        res["error"] = f"{type(exc).__name__}: {exc}"
        rc = 1
    res["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(res, indent=1)
    if a.out:
        a.out.write_text(text + "\n")
    print(text)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
