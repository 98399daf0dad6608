"""Access control: loopback by default, a token for anything else, origins, OSC allowlist."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from d2m_server import app as app_module
from d2m_server import ws as ws_module
from d2m_server.cli import build_parser
from d2m_server.commands.serve import access_options
from d2m_server.osc_in import OscReceiver, is_loopback_host
from d2m_server.ws import origin_allowed

from .osc_fuzz import message
from .support import live_session, recv_json, recv_reply, ws_client, ws_url

TOKEN = "correct horse battery staple"
VOLUME_HALF = message("/d2m/volume", "f", b"\x3f\x00\x00\x00")     # 0.5


# -- defaults and the serve command -------------------------------------------------


def test_everything_binds_loopback_by_default():
    args = build_parser().parse_args(["serve"])
    assert args.ws[0] == "127.0.0.1" and args.osc_in[0] == "127.0.0.1"
    assert all(is_loopback_host(h) for h, _ in [args.ws, args.osc_in])
    opts = app_module.ServeOptions()
    assert opts.ws[0] == "127.0.0.1" and opts.osc_in[0] == "127.0.0.1"
    assert ws_module.DEFAULT_HOST == "127.0.0.1"


@pytest.mark.parametrize("bind", [["--ws", "0.0.0.0:18765"], ["--osc-in", "192.168.1.20:19000"]])
def test_serve_refuses_a_public_bind_without_a_token(bind):
    env = {k: v for k, v in os.environ.items() if k != "D2M_TOKEN"}
    res = subprocess.run([sys.executable, "-m", "d2m_server.cli", "serve", "--audio-out", "none",
                          "--duration", "1", *bind], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode != 0
    assert "refusing to listen on" in res.stderr and "D2M_TOKEN" in res.stderr, res.stderr
    assert "d2m is live" not in res.stdout + res.stderr


def test_a_token_from_the_environment_or_the_flag_allows_a_public_bind(monkeypatch):
    parse = build_parser().parse_args
    args = parse(["serve", "--ws", "0.0.0.0:18765", "--osc-allow", "10.0.0.0/8",
                  "--allow-origin", "http://studio.local:3000"])
    monkeypatch.setenv("D2M_TOKEN", TOKEN)
    got = access_options(args)
    assert got == {"token": TOKEN, "allow_origins": ["http://studio.local:3000"], "osc_allow": ["10.0.0.0/8"]}
    monkeypatch.delenv("D2M_TOKEN")
    assert access_options(parse(["serve", "--token", TOKEN, "--ws", "0.0.0.0:18765"]))["token"] == TOKEN
    with pytest.raises(SystemExit, match="at least 8 characters"):
        access_options(parse(["serve", "--token", "short", "--ws", "0.0.0.0:18765"]))
    with pytest.raises(SystemExit):      # argparse: a bad network is refused at once
        parse(["serve", "--osc-allow", "not-a-network"])
    assert access_options(parse(["serve"]))["token"] is None      # loopback: no token needed


# -- WebSocket token -----------------------------------------------------------------------


async def closed_with(ws) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return closed.value.rcvd.code if closed.value.rcvd else None


def test_websocket_clients_must_send_the_token_first(run, monkeypatch):
    compared = []
    real = ws_module.hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(ws_module.hmac, "compare_digest", spy)

    async def main():
        async with live_session(token=TOKEN) as session:
            url = ws_url(session)
            out = {}
            async with ws_client(url) as ws:                 # no auth: first message is something else
                hello = await recv_json(ws)
                assert hello["auth_required"] is True
                await ws.send(json.dumps({"type": "status"}))
                out["no_auth_error"] = await recv_reply(ws)
                out["no_auth_code"] = await closed_with(ws)
            async with ws_client(url) as ws:                 # wrong token
                await recv_json(ws)
                await ws.send(json.dumps({"type": "auth", "token": "wrong token!"}))
                out["wrong_error"] = await recv_reply(ws)
                out["wrong_code"] = await closed_with(ws)
            session.ws.auth_timeout = 0.3
            async with ws_client(url) as ws:                 # silent: only hello, then closed
                first = await recv_json(ws)
                out["silent_first"] = first["type"]
                out["silent_code"] = await closed_with(ws)
            async with ws_client(url) as ws:                 # right token
                await recv_json(ws)
                await ws.send(json.dumps({"type": "auth", "token": TOKEN, "id": 1}))
                out["auth_ack"] = await recv_reply(ws)
                await ws.send(json.dumps({"type": "control", "volume": 0.5}))
                out["control_ack"] = await recv_reply(ws)
                out["events"] = (await recv_json(ws))["type"]  # broadcast events now flow
            out["hub"] = session.ws.status()
            return out

    out = run(main())
    assert out["no_auth_error"]["type"] == "error" and "needs a token" in out["no_auth_error"]["message"]
    assert out["no_auth_code"] == 1008
    assert out["wrong_error"]["message"] == "wrong token" and out["wrong_code"] == 1008
    assert out["silent_first"] == "hello" and out["silent_code"] == 1008
    assert out["auth_ack"] == {"type": "ack", "request": "auth", "id": 1}
    assert out["control_ack"]["changes"] == {"volume": 0.5}
    assert out["events"] not in ("error", "hello")
    assert out["hub"]["auth_failures"] == 3 and out["hub"]["auth_required"] is True
    assert (b"wrong token!", TOKEN.encode()) in compared and (TOKEN.encode(), TOKEN.encode()) in compared


# -- Origins -----------------------------------------------------------------------------------


def test_origin_rules():
    assert origin_allowed(None, "127.0.0.1:8765")                          # not a browser
    assert origin_allowed("http://127.0.0.1:8765", "127.0.0.1:8765")        # the page it serves
    assert origin_allowed("http://localhost:3000", "localhost:8765")        # same host, other port
    assert not origin_allowed("https://evil.example", "127.0.0.1:8765")
    assert not origin_allowed("http://localhost:8765", "127.0.0.1:8765")    # another host name
    assert not origin_allowed("null", "127.0.0.1:8765")                     # file:// pages
    assert origin_allowed("null", "127.0.0.1:8765", ["null"])
    assert origin_allowed("https://studio.local:3000", "127.0.0.1:8765", ["https://studio.local:3000/"])
    assert origin_allowed("https://anything.example", "127.0.0.1:8765", ["*"])
    # DNS rebinding: evil.example resolving to 127.0.0.1 is "same host" by name only
    assert not origin_allowed("http://evil.example:8765", "evil.example:8765")
    assert origin_allowed("http://d2m.venue:8765", "d2m.venue:8765", token_required=True)
    assert origin_allowed("http://[::1]:8765", "[::1]:8765")


def test_foreign_origins_are_refused_at_the_handshake(run):
    async def main():
        async with live_session(allow_origins=["https://studio.example"]) as session:
            url, port = ws_url(session), session.ws.port
            with pytest.raises(InvalidStatus) as refused:
                await ws_client(url, origin="https://evil.example")
            async with ws_client(url, origin=f"http://127.0.0.1:{port}") as ws:
                same = (await recv_json(ws))["type"]
            async with ws_client(url, origin="https://studio.example") as ws:
                listed = (await recv_json(ws))["type"]
            return refused.value.response.status_code, same, listed, session.ws.status()

    code, same, listed, hub = run(main())
    assert code == 403 and same == listed == "hello"
    assert hub["origin_refused"] == 1


# -- OSC allowlist -------------------------------------------------------------------------------


def test_osc_from_outside_the_allowlist_is_ignored_and_counted():
    got = []
    rec = OscReceiver(lambda routed, addr: got.append(addr[0]), lambda: 1.0, allow=["10.0.0.0/8", "fd00::/8"])
    for host in ("10.1.2.3", "127.0.0.1", "::1", "::ffff:10.9.9.9", "fd00::5",
                 "192.168.1.7", "8.8.8.8", "fe80::1%eth0", "::ffff:192.168.1.7"):
        rec.handle_datagram(VOLUME_HALF, (host, 9000))
    assert got == ["10.1.2.3", "127.0.0.1", "::1", "::ffff:10.9.9.9", "fd00::5"]
    assert rec.stats.counts["not_allowed"] == 4
    open_rec = OscReceiver(lambda routed, addr: got.append(addr[0]), lambda: 1.0)
    open_rec.handle_datagram(VOLUME_HALF, ("8.8.8.8", 9000))
    assert got[-1] == "8.8.8.8"        # without an allowlist (a loopback bind) nobody is refused


def test_a_public_osc_bind_accepts_only_loopback_unless_allowed(run, monkeypatch):
    # pretend 127.0.0.1 is a public address, so the session applies its public-bind default
    monkeypatch.setattr(app_module, "is_loopback_host", lambda host: False)

    async def main():
        async with live_session() as default, live_session(osc_allow=["192.168.1.0/24"]) as listed:
            out = []
            for session in (default, listed):
                rec = session.osc_in
                for host in ("127.0.0.1", "192.168.1.7"):
                    rec.handle_datagram(VOLUME_HALF, (host, 9000))
                out.append((session.gain.target, rec.stats.counts["not_allowed"],
                            session.status()["telemetry"]["dropped_packets"]))
            return out

    (vol_default, refused_default, dropped_default), (vol_listed, refused_listed, _) = run(main())
    assert refused_default == 1 and dropped_default >= 1
    assert refused_listed == 0
    assert vol_default == vol_listed == 0.5           # loopback control got through in both
