"""Peers that hold what they are given: a client that asks for a large answer and
never reads it, an HTTP/2 connection that stays idle answering pings, one that opens
many streams whose bodies never end, and a WebSocket flooding pings while reading
nothing. Each is bounded: cut off after --client-timeout without progress, closed
when idle, or held to a fixed amount of memory. Clients: raw sockets and the `h2`
protocol library, sharing no code with the server."""

import base64
import json
import os
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

from conftest import add_buildset
from test_memory import rss_mib


def big_answer_query(srv, aliases=5):
    """A query whose answer is several MB: 20 buildsets x 4 properties x 60 kB."""
    big = "v" * 60_000
    for _ in range(20):
        add_buildset(srv, [{"name": f"p{i}", "value": big, "source": "s"} for i in range(4)])
    one = "buildsets(first: 20) { nodes { properties { value } } }"
    return "{ %s }" % " ".join(f"a{i}: {one}" for i in range(aliases))


def raw_post(srv, query):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    # A small receive buffer, so that the unread answer stays on the server's side.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = json.dumps({"query": query}).encode()
    s.sendall(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return s


def stuck_round(srv, query, n=6):
    """`n` clients ask for the answer and read nothing; returns once a new client is
    served (the slots are free again), with the stuck sockets."""
    stuck = [raw_post(srv, query) for _ in range(n)]
    time.sleep(1)
    began = time.monotonic()
    while True:
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=3) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return stuck
        except OSError:
            pass
        assert time.monotonic() - began < 12, "the unread answers still hold every slot"
        time.sleep(0.2)


def test_readers_that_never_read_are_cut_off_and_their_slots_freed(start):
    """6 clients asking for a 27 MB answer and reading nothing held every slot of
    --max-connections 6 (and 182 MB) for as long as they liked. (The answers are
    still built, each within --max-response-bytes; what changes is that they are
    dropped once the peer has read nothing for --client-timeout.)"""
    srv = start("sqlite", "--max-connections", "6", "--client-timeout", "2")
    query = big_answer_query(srv)
    srv.http.close()  # its kept-alive connection would hold a slot
    stuck = stuck_round(srv, query)
    began = time.monotonic()
    while srv.output().count("has not read for --client-timeout") < 6:
        assert time.monotonic() - began < 15, "not every unread answer was cut off"
        time.sleep(0.2)
    for s in stuck:
        s.close()
    # The slots are free for good: a second round is cut off the same way.
    for s in stuck_round(srv, query):
        s.close()


def h2_connect(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    return s, conn


def h2_headers(srv, length=None):
    h = [(":method", "POST"), (":scheme", "http"), (":authority", f"127.0.0.1:{srv.port}"),
         (":path", "/graphql"), ("content-type", "application/json")]
    if length is not None:
        h.append(("content-length", str(length)))
    return h


def h2_pump(s, conn, seconds):
    """Reads for `seconds`, answering what the protocol asks (pings, settings); returns
    (events, closed)."""
    events, deadline = [], time.monotonic() + seconds
    s.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return events, True
        if not data:
            return events, True
        try:
            events += conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            # Frames after the server's GOAWAY: the connection is over.
            return events, True
        out = conn.data_to_send()
        if out:
            try:
                s.sendall(out)
            except OSError:
                return events, True
    return events, False


def test_an_idle_http2_connection_is_closed(start):
    """Idle h2c connections that answer pings were never closed: with
    --client-timeout 2 they were still open after 9 s, and held their slots."""
    srv = start("sqlite", "--client-timeout", "2")
    s, conn = h2_connect(srv)
    body = json.dumps({"query": "{ __typename }"}).encode()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, h2_headers(srv, len(body)))
    conn.send_data(sid, body, end_stream=True)
    s.sendall(conn.data_to_send())
    events, closed = h2_pump(s, conn, 1.5)
    answer = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert json.loads(answer) == {"data": {"__typename": "Query"}}
    began = time.monotonic()
    events, closed = h2_pump(s, conn, 9)
    goaway = any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
    assert closed or goaway, "an idle HTTP/2 connection answering pings stayed open for 9 s"
    assert time.monotonic() - began < 8
    s.close()


def unfinished_bodies(srv, streams=190, seconds=5):
    """One h2c connection opening `streams` streams of 1 MB bodies that never end,
    sending what flow control allows for `seconds`; returns (streams opened, streams
    the client's view of the server's SETTINGS refused, bytes sent)."""
    s, conn = h2_connect(srv)
    h2_pump(s, conn, 0.3)
    chunk = b" " * 16384
    opened, refused, sent = [], 0, {}
    for _ in range(streams):
        sid = conn.get_next_available_stream_id()
        try:
            conn.send_headers(sid, h2_headers(srv, 1_000_000))
        except h2.exceptions.TooManyStreamsError:
            refused += 1
            continue
        opened.append(sid)
        sent[sid] = 0
    s.sendall(conn.data_to_send())
    live = list(opened)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for sid in list(live):
            try:
                room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            except (h2.exceptions.StreamClosedError, KeyError):
                live.remove(sid)
                continue
            while room >= len(chunk) and sent[sid] + len(chunk) < 1_000_000:
                conn.send_data(sid, chunk)
                sent[sid] += len(chunk)
                room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
        out = conn.data_to_send()
        if out:
            s.sendall(out)
        _, closed = h2_pump(s, conn, 0.1)
        if closed:
            break
    s.close()
    return opened, refused, sum(sent.values())


def test_unfinished_http2_bodies_are_bounded_per_connection(start):
    """190 streams each sending 1 MB of body without finishing added 214 MB."""
    srv = start("sqlite", "--client-timeout", "8")
    before = rss_mib(srv.proc.pid)
    opened, refused, _ = unfinished_bodies(srv)
    held = rss_mib(srv.proc.pid) - before
    assert refused > 0 or len(opened) <= 32, "the server let one connection open 190 streams at once"
    assert held < 48, f"{held:.0f} MiB held for unfinished bodies on one connection"


def ws_frame(opcode, payload):
    """A masked client frame."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def ping_flood(srv, limit=120_000_000, seconds=20):
    """Upgrades to a WebSocket, then sends up to `limit` bytes of pings (before any
    connection_init) for at most `seconds`, reading nothing; returns the socket and
    the bytes sent."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /graphql/ws HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n").encode())
    assert b" 101 " in s.recv(4096)
    burst = ws_frame(0x9, b"p" * 125) * 8000  # ~1 MB of pings
    sent, began = 0, time.monotonic()
    s.settimeout(5)
    try:
        while sent < limit and time.monotonic() - began < seconds:
            s.sendall(burst)
            sent += len(burst)
    except OSError:
        pass  # cut off: what the server does to a peer that reads nothing
    return s, sent


def test_a_ping_flood_that_reads_nothing_is_bounded(start):
    """124 MB of pings before connection_init, reading nothing, added 246 MB in 1.2 s:
    every pong was queued."""
    srv = start("sqlite", "--client-timeout", "4")
    before = rss_mib(srv.proc.pid)
    s, sent = ping_flood(srv)
    held = rss_mib(srv.proc.pid) - before
    assert held < 16, f"{held:.0f} MiB held after {sent / 1e6:.0f} MB of unread pings"
    s.close()
    assert srv.ok("{ __typename }") == {"__typename": "Query"}
