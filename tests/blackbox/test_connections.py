"""Slow and idle clients cannot hold the server: header and body deadlines, a cap
on connections, and a shutdown that ends even when a client stalls."""

import signal
import socket
import time


def connect(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.settimeout(10)
    return s


def closed_within(sock, seconds):
    """Whether the server closes `sock` within `seconds` (reads until EOF)."""
    began = time.monotonic()
    sock.settimeout(seconds + 2)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, socket.timeout):
        return isinstance(sock, socket.socket) and time.monotonic() - began <= seconds + 1
    return time.monotonic() - began <= seconds + 1


def test_slow_headers_are_cut_off(start):
    srv = start("sqlite", "--client-timeout", "2")
    s = connect(srv)
    s.sendall(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and then nothing more
    assert closed_within(s, 3), "a client that never finishes its headers is closed"
    assert srv.ok("{ __typename }") == {"__typename": "Query"}


def test_slow_bodies_are_cut_off(start):
    srv = start("sqlite", "--client-timeout", "2")
    s = connect(srv)
    s.sendall(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{\"query\"")
    began = time.monotonic()
    reply = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
            if b"\r\n\r\n" in reply and b"}" in reply:
                break
    except socket.timeout:
        pass
    assert time.monotonic() - began < 5, "a body that never arrives is not waited for"
    assert reply.startswith(b"HTTP/1.1 4"), reply[:200]


def test_idle_keep_alive_connections_are_closed(start):
    """A kept-alive connection that sends no next request holds no slot for long:
    the header deadline runs from the end of the previous response."""
    srv = start("sqlite", "--client-timeout", "2")
    s = connect(srv)
    body = b'{"query": "{ __typename }"}'
    request = (b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    for _ in range(2):  # the connection is kept alive between requests
        s.sendall(request)
        reply = b""
        while b'"Query"}}' not in reply:
            chunk = s.recv(4096)
            assert chunk, reply
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert b"connection: close" not in reply.lower()
    assert closed_within(s, 3), "an idle kept-alive connection is closed after --client-timeout"


def test_connections_are_capped(start):
    srv = start("sqlite", "--max-connections", "2")
    held = [connect(srv), connect(srv)]
    time.sleep(0.3)
    extra = connect(srv)
    assert closed_within(extra, 2), "a connection beyond the cap is closed"
    for s in held:
        s.close()
    time.sleep(0.3)
    assert srv.ok("{ __typename }") == {"__typename": "Query"}


def test_sigterm_ends_even_with_a_stalled_client(start):
    srv = start("sqlite", "--shutdown-timeout", "2", "--client-timeout", "30")
    s = connect(srv)
    s.sendall(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n{\"query\": ")  # a request half sent
    time.sleep(0.3)
    began = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    srv.proc.wait(15)
    assert time.monotonic() - began < 6, "the drain is bounded by --shutdown-timeout"
    assert srv.proc.returncode == 0, srv.output()


def test_a_connection_that_never_sends_is_closed(start):
    """hyper's header deadline starts with the first byte; a connection that sends
    none must not hold one of --max-connections for ever."""
    srv = start("sqlite", "--client-timeout", "2")
    s = connect(srv)
    assert closed_within(s, 3), "a silent connection is closed after --client-timeout"


def test_a_trickled_body_is_cut_off(start):
    """A body sent a byte at a time (each chunk within the per-chunk deadline) still
    has --client-timeout in all."""
    srv = start("sqlite", "--client-timeout", "2")
    s = connect(srv)
    s.sendall(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n")
    began = time.monotonic()
    reply = b""
    s.settimeout(1)
    while time.monotonic() - began < 8 and not reply:
        try:
            s.sendall(b" ")
        except OSError:
            break
        try:
            reply = s.recv(4096)
        except socket.timeout:
            pass
    assert time.monotonic() - began < 5, "a trickled body is not waited for"
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"--client-timeout" in reply
