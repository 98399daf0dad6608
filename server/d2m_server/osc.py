"""OSC in and out for d2m: one import for the pieces in the osc_* modules.

* :mod:`d2m_server.osc_codec` -- bounded OSC 1.0 decoder for network input.
* :mod:`d2m_server.osc_route` -- messages to skeleton frames, controls, status requests.
* :mod:`d2m_server.osc_in` -- :class:`OscReceiver`, the asyncio UDP listener.
* :mod:`d2m_server.osc_out` -- event encoders and :class:`OscSender`.

The address table and limits are documented in docs/protocol.md (OSC section).
"""

from .osc_codec import (BUNDLE_TAG, DECODE_REASONS, IMPULSE, MAX_ARRAY_DEPTH, MAX_BUNDLE_DEPTH,
                        MAX_OSC_ARGS, MAX_OSC_MESSAGES, MAX_OSC_PACKET, OscDecodeError, OscMessage,
                        Timetag, decode_packet)
from .osc_in import DEFAULT_OSC_IN_HOST, DEFAULT_OSC_IN_PORT, OscReceiver
from .osc_out import (DEFAULT_OSC_OUT_HOST, DEFAULT_OSC_OUT_PORT, MAX_STATUS_BYTES, OscSender,
                      encode_event, encode_status, encode_style, encode_telemetry,
                      parse_hostport, telemetry_address)
from .osc_route import INPUT_ADDRESSES, ROUTE_ERRORS, Routed, route

__all__ = [
    "BUNDLE_TAG", "DECODE_REASONS", "IMPULSE", "MAX_ARRAY_DEPTH", "MAX_BUNDLE_DEPTH",
    "MAX_OSC_ARGS", "MAX_OSC_MESSAGES", "MAX_OSC_PACKET", "OscDecodeError", "OscMessage",
    "Timetag", "decode_packet",
    "DEFAULT_OSC_IN_HOST", "DEFAULT_OSC_IN_PORT", "OscReceiver",
    "DEFAULT_OSC_OUT_HOST", "DEFAULT_OSC_OUT_PORT", "MAX_STATUS_BYTES", "OscSender",
    "encode_event", "encode_status", "encode_style", "encode_telemetry", "parse_hostport",
    "telemetry_address",
    "INPUT_ADDRESSES", "ROUTE_ERRORS", "Routed", "route",
]
