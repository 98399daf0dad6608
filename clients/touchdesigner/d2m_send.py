# TouchDesigner -> d2m: send a skeleton (/d2m/pose) and operator controls over OSC.
#
# Setup (see README.md): an OSC Out DAT named d2m_out (Network Address = the d2m machine,
# Network Port = 9000, d2m's --osc-in) and a Text DAT named d2m_send holding this file.
# Call it from anywhere, e.g. an Execute DAT's onFrameStart for the pose:
#
#   op('d2m_send').module.send_pose_chop(op('landmarks'), layout='mediapipe33')
#
# and from buttons for controls:
#
#   op('d2m_send').module.set_genre('house')
#   op('d2m_send').module.lock_tempo(124)
#
# Coordinates are image-normalised 0..1 with y DOWN (flip_y=True converts TouchDesigner's
# y-up 0..1). Send one message per frame per person: d2m needs the whole skeleton at once.
# Runs in TouchDesigner's Python; not run inside TouchDesigner by d2m's tests.

OUT = 'd2m_out'
#: Joints per layout.
JOINTS = {'coco17': 17, 'mediapipe33': 33}


def _send(address, args):
	op(OUT).sendOSC(address, list(args))


def send_pose(values, layout='coco17', person=0):
	"""Send one skeleton: ``values`` flat, J x 2 (x, y), J x 3 (x, y, conf) or J x 4 (x, y, z, conf).

	Missing joints: NaN coordinates, or confidence 0.
	"""
	n = JOINTS[layout]
	if len(values) not in (2 * n, 3 * n, 4 * n):
		raise ValueError('%s needs %d, %d or %d values, got %d' % (layout, 2 * n, 3 * n, 4 * n, len(values)))
	_send('/d2m/pose', [int(person), layout] + [float(v) for v in values])


def send_pose_chop(chop, layout='mediapipe33', person=0, flip_y=False):
	"""Send the skeleton in ``chop``: one sample per joint, channels x, y and optionally z and
	visibility (or confidence). Use a Shuffle CHOP if your pose tool gives one channel per joint."""
	n = JOINTS[layout]
	if chop.numSamples != n:
		raise ValueError('%s has %d samples; %s needs %d (one per joint)' % (chop.path, chop.numSamples, layout, n))
	xs, ys = chop['x'], chop['y']
	zs = chop['z']
	cs = chop['visibility'] if chop['visibility'] is not None else chop['confidence']
	values = []
	for i in range(n):
		y = ys[i]
		values += [xs[i], 1.0 - y if flip_y else y, zs[i] if zs is not None else 0.0,
				   cs[i] if cs is not None else 1.0]
	send_pose(values, layout, person)


def set_genre(name):
	"""A genre key (house, break, ...), an alias, or 'auto' to follow the dancer again."""
	_send('/d2m/genre', [str(name)])


def set_prompt(text=''):
	"""MusicGen text prompt; '' clears it."""
	_send('/d2m/prompt', [str(text)] if text else [])


def lock_tempo(bpm=None):
	"""Hold the tempo: at ``bpm`` (60..200) or, without it, at the current tempo."""
	_send('/d2m/tempo/lock', [float(bpm)] if bpm is not None else [])


def unlock_tempo():
	_send('/d2m/tempo/unlock', [])


def set_volume(volume):
	"""Master volume 0..1."""
	_send('/d2m/volume', [float(volume)])


def start_music():
	_send('/d2m/start', [])


def stop_music():
	_send('/d2m/stop', [])


def request_status():
	"""d2m answers /d2m/status (JSON string) to the sender's address and port: read it with an
	OSC In DAT on the port the OSC Out DAT sends from (see README.md)."""
	_send('/d2m/status', [])
