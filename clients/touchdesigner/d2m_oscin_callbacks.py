# d2m -> TouchDesigner: callbacks for an OSC In DAT.
#
# Setup (see README.md): OSC In DAT, Network Port 9001 (d2m's --osc-out), Callbacks DAT =
# a Text DAT holding this file. Optional operators next to it, used when they exist:
#   d2m_state  Table DAT  - one row per value: name | value (created/updated here)
#   d2m_hooks  Text DAT   - if it defines on_beat(bar, beat, bpm), it is called on every beat
# Every received value is also stored on this DAT's parent: parent().fetch('d2m_bpm') etc.
#
# This runs in TouchDesigner's Python (op, absTime exist there). It was written against
# TouchDesigner's documented OSC In DAT callback and has not been run inside TouchDesigner
# by the d2m tests (there is no TouchDesigner on CI); the address table it handles is the
# one in docs/protocol.md.

# Addresses d2m sends -> the name they are stored under (one value each).
SINGLE = {
	'/d2m/beat': 'beat',                      # i 1..4 (1 = downbeat)
	'/d2m/bar': 'bar',                        # i, 0-based
	'/d2m/bpm': 'bpm',                        # f, the music's tempo at this beat
	'/d2m/downbeat': 'downbeat',              # i 1 on beat 1, else 0
	'/d2m/tempo': 'tempo',                    # f, committed dance tempo (BPM)
	'/d2m/tempo/confidence': 'tempo_confidence',  # f 0..1
	'/d2m/tempo/locked': 'tempo_locked',      # i 1 once following a dancer
	'/d2m/tempo/mode': 'tempo_mode',          # s following / holding / locked / idle
	'/d2m/genre': 'genre',                    # s genre key
	'/d2m/genre/index': 'genre_index',        # i 0..9 (-1 unknown)
	'/d2m/next/bar': 'next_bar',              # i bar of the planned segment
	'/d2m/next/bpm': 'next_bpm',              # f
	'/d2m/next/genre': 'next_genre',          # s
	'/d2m/next/kind': 'next_kind',            # s music / idle / silence
	'/d2m/next/time': 'next_time',            # f session seconds it starts at
	'/d2m/next/energy': 'next_energy',        # f 0..1
	'/d2m/next/section': 'next_section_name', # s intro / groove / build / peak / breakdown / outro / end
	'/d2m/next/section_bar': 'next_section_bar',  # i bar within the section
	'/d2m/next/bars_to_next_section': 'bars_to_next_section',  # i 1 = the last bar before the next section
	'/d2m/next/next_section': 'next_section',  # s the section after it (final 2 bars ahead)
	'/d2m/hit': 'hit_strength',              # f the dancer's hit: strength >= 1 (see on_hit below)
	'/d2m/energy': 'energy',                  # f 0..1
	'/d2m/sharpness': 'sharpness',            # f 0..1
	'/d2m/status': 'status_json',             # s JSON (reply to a /d2m/status request)
}
TELEMETRY_PREFIX = '/d2m/telemetry/'        # f per metric: underruns, lookahead_s, late_ms, ...


def _store(dat, name, value):
	dat.parent().store('d2m_' + name, value)
	table = dat.parent().op('d2m_state')
	if table is None:
		return
	if table.row(name) is None:
		table.appendRow([name, value])
	else:
		table[name, 1] = value


def _on_beat(dat, bar, beat, bpm):
	# /d2m/beat/full carries bar, beat and bpm together: store them, then call the optional
	# hook d2m_hooks.on_beat(bar, beat, bpm) (a Text DAT named d2m_hooks next to this one).
	for name, value in (('bar', bar), ('beat', beat), ('bpm', bpm), ('downbeat', 1 if beat == 1 else 0)):
		_store(dat, name, value)
	hooks = dat.parent().op('d2m_hooks')
	if hooks is not None and hasattr(hooks.module, 'on_beat'):
		hooks.module.on_beat(bar, beat, bpm)


def _on_section(dat, section, section_bar, bars_to_next, next_section):
	# /d2m/section/full: the song form of the planned bar. Store it, then call the optional hook
	# d2m_hooks.on_section(section, section_bar, bars_to_next, next_section), e.g. to cue a drop
	# when bars_to_next == 1 and next_section == 'peak'.
	for name, value in (('next_section_name', section), ('next_section_bar', section_bar),
	                    ('bars_to_next_section', bars_to_next), ('next_section', next_section)):
		_store(dat, name, value)
	hooks = dat.parent().op('d2m_hooks')
	if hooks is not None and hasattr(hooks.module, 'on_section'):
		hooks.module.on_section(section, section_bar, bars_to_next, next_section)


def _on_hit(dat, index, strength, move_t, accent_time, genre):
	# /d2m/hit/full: the dancer hit a move; its accent sounds at accent_time (session s, -1: none).
	# Store it, then call the optional hook d2m_hooks.on_hit(index, strength, accent_time, genre),
	# e.g. to flash the visuals with the accent.
	for name, value in (('hit_index', index), ('hit_strength', strength), ('hit_move_time', move_t),
	                    ('hit_accent_time', accent_time), ('hit_genre', genre)):
		_store(dat, name, value)
	hooks = dat.parent().op('d2m_hooks')
	if hooks is not None and hasattr(hooks.module, 'on_hit'):
		hooks.module.on_hit(index, strength, accent_time, genre)


def onReceiveOSC(dat, rowIndex, message, byteData, timeStamp, address, args, peer):
	if address == '/d2m/beat/full' and len(args) >= 3:
		bar, beat, bpm = int(args[0]), int(args[1]), float(args[2])
		_on_beat(dat, bar, beat, bpm)
		return
	if address == '/d2m/section/full' and len(args) >= 4:
		_on_section(dat, str(args[0]), int(args[1]), int(args[2]), str(args[3]))
		return
	if address == '/d2m/hit/full' and len(args) >= 5:
		_on_hit(dat, int(args[0]), float(args[1]), float(args[2]), float(args[3]), str(args[4]))
		return
	if address.startswith(TELEMETRY_PREFIX) and args:
		_store(dat, 'telemetry_' + address[len(TELEMETRY_PREFIX):].replace('/', '_'), args[0])
		return
	name = SINGLE.get(address)
	if name is not None and args:
		_store(dat, name, args[0])
	return
