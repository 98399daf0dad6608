"""OSC output checked by an independent implementation: liblo's ``oscdump``.

A live ``d2m demo`` (its built-in synthetic dancer drives the loop) sends its events to
oscdump's port; every address the protocol documents must arrive, decoded by liblo with
the documented type tags and sensible values. Skips only when oscdump is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from d2m.genres import GENRES
from tests.ports import free_tcp_port, free_udp_port

REPO = Path(__file__).resolve().parents[2]
OSCDUMP = shutil.which("oscdump")
#: Seconds of live demo: enough for the tracker to lock and several bars to play.
DEMO_S = 11.0
#: Telemetry names the protocol documents (the live loop may send more, all floats).
TELEMETRY = ("underruns", "loop_lag_ms_p99", "dropped_packets", "lookahead_s", "fallback", "late_ms")
#: oscdump line: "<timetag> <address> <typetags> <args...>" (typetags empty for no arguments).
LINE = re.compile(r"^(?P<tt>\S+) (?P<address>/\S*) ?(?P<types>[a-zA-Z]*) ?(?P<args>.*)$")


def documented_output_addresses() -> dict[str, str]:
    """``{address: type tags}`` from the protocol doc's OSC "Output: events" table."""
    doc = REPO / "docs" / "protocol.md"
    if not doc.exists():
        doc = REPO / "docs" / "_osc.md"
    text = doc.read_text()
    section = text.split("### Output: events", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `(/d2m/[^`]+)` \| ([a-z ]+) \|", section, flags=re.M)
    return {address: types.replace(" ", "") for address, types in rows}


def parse_args(types: str, text: str) -> list:
    """oscdump's argument text -> Python values (i: int, f: float, s: str)."""
    out, pos = [], 0
    for tag in types:
        text = text[pos:].lstrip()
        pos = 0
        if tag == "s":
            m = re.match(r'"((?:[^"\\]|\\.)*)"', text)
            assert m, f"bad string argument in {text!r}"
            out.append(m.group(1))
            pos = m.end()
        else:
            token = text.split(" ", 1)[0]
            out.append(int(token) if tag in "ih" else float(token))
            pos = len(token)
    return out




def test_protocol_doc_lists_the_output_addresses():
    docs = documented_output_addresses()
    assert "/d2m/beat/full" in docs and docs["/d2m/beat/full"] == "iif"
    assert len(docs) >= 20


@pytest.mark.e2e
@pytest.mark.slow
def test_oscdump_receives_and_decodes_every_event(tmp_path):
    if OSCDUMP is None:
        pytest.skip("liblo's oscdump is not installed (Debian: apt-get install liblo-tools)")
    port = free_udp_port()
    dump = subprocess.Popen([OSCDUMP, "-L", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: [lines.append(x.rstrip("\n")) for x in dump.stdout],
                              daemon=True)
    reader.start()
    demo = None
    try:
        # wait until oscdump listens: probe with a message of our own
        probe = b"/probe\x00\x00,\x00\x00\x00"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            deadline = time.monotonic() + 10
            while not any("/probe" in x for x in lines):
                assert time.monotonic() < deadline, f"oscdump did not start: {lines}"
                s.sendto(probe, ("127.0.0.1", port))
                time.sleep(0.1)
        start = len(lines)
        demo = subprocess.run(
            [sys.executable, "-m", "d2m_server.cli", "demo", "--audio-out", "none",
             "--duration", str(DEMO_S), "--osc-out", f"127.0.0.1:{port}",
             "--osc-in", f"127.0.0.1:{free_udp_port()}", "--ws", f"127.0.0.1:{free_tcp_port()}"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        time.sleep(0.3)                       # the last datagrams reach oscdump
    finally:
        dump.kill()
        dump.wait(timeout=10)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    received = lines[start:]

    messages = []
    for line in received:
        m = LINE.match(line)
        assert m, f"oscdump printed a line that is not a decoded message: {line!r}"
        messages.append((m["address"], m["types"], parse_args(m["types"], m["args"])))
    by_address: dict[str, list] = {}
    for address, types, args in messages:
        by_address.setdefault(address, []).append((types, args))

    # every documented event address arrived, with the documented type tags
    docs = documented_output_addresses()
    for address, types in docs.items():
        if address == "/d2m/status":          # a reply to a request, not an event
            continue
        if address.startswith("/d2m/hit"):    # the demo dancer makes no sharp hits: tests/server/test_hits_live.py
            continue
        if address == "/d2m/telemetry/<name>":
            for name in TELEMETRY:
                got = by_address.get(f"/d2m/telemetry/{name}")
                assert got, f"/d2m/telemetry/{name} never arrived"
                assert {t for t, _ in got} == {types}
            continue
        got = by_address.get(address)
        assert got, f"{address} never arrived; received: {sorted(by_address)}"
        assert {t for t, _ in got} == {types}, f"{address}: type tags {set(t for t, _ in got)}"
    telemetry = {a for a in by_address if a.startswith("/d2m/telemetry/")}
    assert all({t for t, _ in by_address[a]} == {"f"} for a in telemetry)
    unknown = set(by_address) - set(docs) - telemetry
    assert not unknown, f"undocumented addresses sent: {unknown}"

    # values: beats come as groups of five messages, consistent with each other
    beats = [i for i, (a, _, _) in enumerate(messages) if a == "/d2m/beat"]
    assert len(beats) >= 8, f"only {len(beats)} beats in {DEMO_S} s"
    previous = None
    for i in beats:
        group = messages[i:i + 5]
        assert [a for a, _, _ in group] == ["/d2m/beat", "/d2m/bar", "/d2m/bpm", "/d2m/downbeat",
                                            "/d2m/beat/full"]
        beat, bar, bpm, down = group[0][2][0], group[1][2][0], group[2][2][0], group[3][2][0]
        assert 1 <= beat <= 4 and bar >= 0 and 60 <= bpm <= 200
        assert down == (1 if beat == 1 else 0)
        full = group[4][2]
        assert full[0] == bar and full[1] == beat and full[2] == pytest.approx(bpm, abs=1e-3)
        if previous is not None:        # beats advance one at a time through the bars
            assert (bar, beat) == ((previous[0], previous[1] + 1) if previous[1] < 4
                                   else (previous[0] + 1, 1))
        previous = (bar, beat)
    # the demo dancer dances at 118 BPM: the tracker locks and the music follows
    assert any(args == [1] for _, args in by_address["/d2m/tempo/locked"])
    assert by_address["/d2m/bpm"][-1][1][0] == pytest.approx(118.0, rel=0.03)
    for (_, (genre,)), (_, (index,)) in zip(by_address["/d2m/genre"], by_address["/d2m/genre/index"]):
        assert genre in GENRES and index == GENRES.index(genre)
    assert all(g in GENRES for _, (g,) in by_address["/d2m/next/genre"])
    assert all(k in ("music", "idle", "silence") for _, (k,) in by_address["/d2m/next/kind"])
    for address in ("/d2m/energy", "/d2m/sharpness", "/d2m/tempo/confidence", "/d2m/next/energy"):
        assert all(0.0 <= v <= 1.0 for _, (v,) in by_address[address]), address
    times = [v for _, (v,) in by_address["/d2m/next/time"]]
    assert times == sorted(times) and times[-1] > 0
    # style updates every 0.1 s, telemetry every second
    assert len(by_address["/d2m/energy"]) >= 5 * DEMO_S
    assert len(by_address["/d2m/telemetry/underruns"]) >= DEMO_S / 2


# ---------------------------------------------------------------------------
# The client guides name every address, and the TouchDesigner callbacks handle them

GUIDES = [REPO / "clients" / "touchdesigner" / "README.md", REPO / "clients" / "unity" / "README.md"]


def documented_input_addresses() -> set[str]:
    doc = REPO / "docs" / "protocol.md"
    if not doc.exists():
        doc = REPO / "docs" / "_osc.md"
    text = doc.read_text().split("## OSC", 1)[1].split("\n## ", 1)[0]
    found = set()
    for title in ("### Input: motion", "### Input: operator controls"):
        section = text.split(title, 1)[1].split("\n### ", 1)[0]
        found |= set(re.findall(r"^\| `(/[^`]+)` \|", section, flags=re.M))
    return found


def test_guides_name_every_osc_address():
    inputs = documented_input_addresses()
    assert {"/d2m/pose", "/mediapipe/pose", "/poses/arr", "/d2m/genre", "/d2m/status"} <= inputs
    for guide in GUIDES:
        text = guide.read_text()
        for address in set(documented_output_addresses()) | inputs:
            assert f"`{address}`" in text, f"{guide.relative_to(REPO)} does not name {address}"


class _Table:
    def __init__(self):
        self.rows = {}

    def row(self, name):
        return [name, self.rows[name]] if name in self.rows else None

    def appendRow(self, cells):
        self.rows[cells[0]] = cells[1]

    def __setitem__(self, key, value):
        self.rows[key[0]] = value


class _Hooks:
    def __init__(self):
        self.beats = []
        self.module = self
        self.on_beat = lambda bar, beat, bpm: self.beats.append((bar, beat, bpm))


class _Comp:
    """The few TouchDesigner calls the callbacks use: parent().store/op."""

    def __init__(self):
        self.stored = {}
        self.ops = {"d2m_state": _Table(), "d2m_hooks": _Hooks()}

    def store(self, key, value):
        self.stored[key] = value

    def op(self, name):
        return self.ops.get(name)


class _Dat:
    def __init__(self, comp):
        self._comp = comp

    def parent(self):
        return self._comp


def test_touchdesigner_callbacks_handle_every_event():
    from d2m.events import Beat, GenreChanged, SegmentPlanned, TempoChanged
    from d2m.hits import Hit, HitDetected
    from d2m.plan import SegmentPlan
    from d2m_server.osc import decode_packet, encode_event, encode_style, encode_telemetry

    code = (REPO / "clients" / "touchdesigner" / "d2m_oscin_callbacks.py").read_text()
    module: dict = {}
    exec(compile(code, "d2m_oscin_callbacks.py", "exec"), module)
    comp = _Comp()
    dat = _Dat(comp)
    plan = SegmentPlan(index=3, kind="music", start_sample=96000, n_samples=96000, sample_rate=48000,
                       bar=2, beat_offsets=(0, 24000, 48000, 72000), bpm=120.0, genre="house", energy=0.4)
    packets = (encode_event(Beat(sample=96000, time=2.0, bar=2, beat=1, bpm=120.0)) + encode_event(TempoChanged(
        t=1.0, bpm=121.5, confidence=0.8, locked=True)) + encode_event(GenreChanged(t=1.0, genre="krump",
        source="motion")) + encode_event(SegmentPlanned(plan=plan)) + encode_style(0.3, 0.7)
        + encode_telemetry({"underruns": 2.0, "lookahead_s": 1.25})
        + encode_event(HitDetected(Hit(t=2.05, move_t=2.0, strength=1.5, accent_sample=100000, genre="house"))))
    addresses = set()
    for packet in packets:
        (m,) = decode_packet(packet)
        addresses.add(m.address)
        module["onReceiveOSC"](dat, 0, None, packet, 0.0, m.address, list(m.args), None)
    assert set(documented_output_addresses()) - {"/d2m/status", "/d2m/telemetry/<name>"} <= addresses
    s = comp.stored
    assert (s["d2m_bar"], s["d2m_beat"], s["d2m_bpm"], s["d2m_downbeat"]) == (2, 1, 120.0, 1)
    assert s["d2m_tempo"] == pytest.approx(121.5) and s["d2m_tempo_locked"] == 1
    assert (s["d2m_genre"], s["d2m_genre_index"]) == ("krump", GENRES.index("krump"))
    assert (s["d2m_next_bar"], s["d2m_next_kind"], s["d2m_next_genre"]) == (2, "music", "house")
    assert s["d2m_energy"] == pytest.approx(0.3) and s["d2m_sharpness"] == pytest.approx(0.7)
    assert s["d2m_telemetry_underruns"] == 2.0 and s["d2m_telemetry_lookahead_s"] == 1.25
    assert comp.ops["d2m_hooks"].beats == [(2, 1, pytest.approx(120.0))]
    assert (s["d2m_hit_index"], s["d2m_hit_genre"]) == (0, "house")
    assert s["d2m_hit_strength"] == pytest.approx(1.5) and s["d2m_hit_accent_time"] == pytest.approx(100000 / 48000)
    assert comp.ops["d2m_state"].rows["genre"] == "krump"
    compile((REPO / "clients" / "touchdesigner" / "d2m_send.py").read_text(), "d2m_send.py", "exec")
