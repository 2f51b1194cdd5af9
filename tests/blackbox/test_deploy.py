"""Deploying it, as operators do (deploy/): Debian's nginx running deploy/nginx.conf
in front of the server, over TLS with a throwaway certificate (only the addresses
and the certificate's paths are rewritten, so the shipped file is what runs), with
httpx, websockets and raw sockets as clients; the settings of the systemd unit and
of the container image given to the binary; the unit through systemd-analyze;
Caddy with deploy/Caddyfile. `.ci/run` installs nginx and Caddy when missing. deploy/Containerfile is not built here (no container
engine): it is only reviewed."""

import asyncio
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from conftest import BIN, ROOT, free_port, terminate

DEPLOY = ROOT / "deploy"
HOST = "api.example.org"
TOKEN = "deploy-test-token"
PROTOCOL = "graphql-transport-ws"


def tool(name, hint):
    """The path of a program the tests need (nginx is in /usr/sbin, which a
    non-root PATH may lack): missing, it fails the test under CI and skips it
    elsewhere."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    if not path:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing ({hint})")
        pytest.skip(f"{name} is missing ({hint})")
    return path


def replace(text, old, new, count=1):
    """`text` with `old` replaced, which must occur `count` times: the test breaks
    when the shipped file changes shape rather than testing something else."""
    assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times in the shipped file"
    return text.replace(old, new)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for api.example.org and 127.0.0.1, and its key."""
    openssl = tool("openssl", "apt-get install openssl")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "2", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST},IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


class Nginx:
    """Debian's nginx running deploy/nginx.conf from a temporary prefix, in front
    of the server at `upstream`, on two free ports (the HTTP redirect and TLS)."""

    def __init__(self, upstream, certificate, edit=lambda text: text):
        self.bin = tool("nginx", ".ci/run installs Debian's nginx; by hand: apt-get install nginx")
        self.dir = Path(tempfile.mkdtemp(prefix="bsgql-nginx-"))
        # Run as root, nginx's workers are `nobody`: they must reach the temp paths.
        self.dir.chmod(0o755)
        self.http_port, self.port = free_port(), free_port()
        cert, key = certificate
        text = (DEPLOY / "nginx.conf").read_text()
        text = replace(text, "server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream};")
        text = replace(text, "listen 80;", f"listen 127.0.0.1:{self.http_port};")
        text = replace(text, "listen 443 ssl http2;", f"listen 127.0.0.1:{self.port} ssl http2;")
        text = replace(text, "    listen [::]:80;\n", "")
        text = replace(text, "    listen [::]:443 ssl http2;\n", "")
        text = replace(text, "/etc/ssl/certs/api.example.org.pem", str(cert))
        text = replace(text, "/etc/ssl/private/api.example.org.key", str(key))
        (self.dir / "buildsets-graphql.conf").write_text(edit(text))
        d = self.dir
        (d / "nginx.conf").write_text(f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/buildsets-graphql.conf;
}}
""")
        self.args = [self.bin, "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log"),
                     "-g", "daemon off;"]
        self.proc = None

    def check(self):
        """`nginx -t`: its exit status and what it printed."""
        r = subprocess.run([*self.args, "-t"], capture_output=True, text=True)
        return r.returncode, r.stderr

    def start(self):
        code, out = self.check()
        assert code == 0, out
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert self.proc.poll() is None, self.error_log()
                assert time.time() < deadline, self.error_log()
                time.sleep(0.05)

    def error_log(self):
        p = self.dir / "error.log"
        return p.read_text() if p.exists() else ""

    def stop(self):
        if self.proc:
            terminate(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Proxied:
    """The server and a proxy in front of it, with clients that talk TLS to the proxy."""

    def __init__(self, srv, nginx, certificate):
        self.srv, self.nginx = srv, nginx
        self.tls = ssl.create_default_context(cafile=str(certificate[0]))
        self.base = f"https://127.0.0.1:{nginx.port}"
        self.http = httpx.Client(base_url=self.base, verify=self.tls, timeout=30, headers={"host": HOST})

    def post(self, query, variables=None, token=None, host=HOST):
        headers = {"content-type": "application/json", "host": host}
        if token:
            headers["authorization"] = f"Bearer {token}"
        body = {"query": query, **({"variables": variables} if variables is not None else {})}
        return self.http.post("/graphql", content=json.dumps(body), headers=headers)

    def ok(self, query, variables=None, token=TOKEN):
        r = self.post(query, variables, token)
        assert r.status_code == 200, r.text
        body = json.loads(r.text)
        assert "errors" not in body, body
        return body["data"]

    def tls_socket(self):
        raw = socket.create_connection(("127.0.0.1", self.nginx.port), timeout=10)
        return self.tls.wrap_socket(raw, server_hostname=HOST)

    async def ws(self, **kw):
        return await websockets.connect(
            f"wss://127.0.0.1:{self.nginx.port}/graphql/ws", ssl=self.tls,
            subprotocols=[PROTOCOL], open_timeout=10, **kw)

    def websockets_open(self):
        """The server's own count of open WebSockets, read on its loopback port."""
        text = httpx.get(self.srv.base + "/metrics", timeout=10).text
        m = re.search(r"^bsgql_websocket_connections (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0


@pytest.fixture
def proxied(start, certificate):
    """proxied(*server_flags, edit=...) -> Proxied; all stopped afterwards."""
    made = []

    def make(*flags, edit=lambda text: text):
        srv = start("sqlite", "--write-token", TOKEN, "--allowed-host", HOST, *flags)
        nginx = Nginx(srv.port, certificate, edit)
        made.append(nginx)
        nginx.start()
        p = Proxied(srv, nginx, certificate)
        made.append(p.http)
        return p

    yield make
    for thing in reversed(made):
        thing.close() if isinstance(thing, httpx.Client) else thing.stop()


async def init(ws):
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert msg["type"] == "connection_ack", msg


async def subscribe(ws, op_id="added"):
    await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": {
        "query": "subscription { buildsetAdded { bsid reason } }"}}))


async def next_event(ws, op_id="added", timeout=10):
    msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert msg["type"] == "next" and msg["id"] == op_id, msg
    return msg["payload"]["data"]["buildsetAdded"]


def add(p, reason="deployed"):
    """A buildset added through the proxy (with the write token); its bsid."""
    return add_with(p, [], reason)


def add_with(p, properties, reason="deployed"):
    b = p.ok('mutation { ensureBuilder(name: "deploy") { builderid } }')["ensureBuilder"]["builderid"]
    inp = {"reason": reason, "sourcestamps": [{"stamp": {"repository": "r", "branch": "main"}}],
           "builderids": [b], "properties": properties}
    return p.ok("mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }",
                {"in": inp})["addBuildset"]["bsid"]


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def upgrade(p, host, origin=None):
    """The status line of a raw WebSocket upgrade through the proxy naming `host`."""
    with p.tls_socket() as s:
        s.sendall((f"GET /graphql/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {PROTOCOL}\r\n"
                   + (f"Origin: {origin}\r\n" if origin else "") + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n")[0].decode()


def test_nginx_accepts_the_shipped_file(certificate):
    nginx = Nginx(free_port(), certificate)
    try:
        code, out = nginx.check()
        assert code == 0 and "test is successful" in out, out
        assert "[warn]" not in out and "[emerg]" not in out, out
    finally:
        nginx.stop()


def test_post_get_and_the_playground_through_nginx(proxied):
    p = proxied()
    r = p.post("{ __typename }")
    assert r.status_code == 200 and json.loads(r.text) == {"data": {"__typename": "Query"}}, r.text
    assert r.headers["x-request-id"]
    assert r.headers["strict-transport-security"] == "max-age=63072000"
    # The token passes through: without it a mutation is 401, with it it runs.
    r = p.post('mutation { ensureBuilder(name: "deploy") { name } }')
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), r.text
    assert p.ok('mutation { ensureBuilder(name: "deploy") { name } }') == {"ensureBuilder": {"name": "deploy"}}
    r = p.http.get("/graphql", params={"query": "{ builders { name } }"})
    assert r.status_code == 200 and json.loads(r.text) == {"data": {"builders": [{"name": "deploy"}]}}, r.text
    r = p.http.get("/graphql", headers={"accept": "text/html"})
    assert r.status_code == 200 and "<html" in r.text.lower()
    assert p.http.get("/readyz").status_code == 200
    # /metrics stays on the server's loopback port.
    assert p.http.get("/metrics").status_code == 404
    assert httpx.get(p.srv.base + "/metrics").status_code == 200
    # Plain HTTP is sent to HTTPS.
    r = httpx.get(f"http://127.0.0.1:{p.nginx.http_port}/graphql?query=x", headers={"host": HOST})
    assert r.status_code == 301 and r.headers["location"] == f"https://{HOST}/graphql?query=x"
    # A body above --max-body-bytes is refused by nginx, in the server's words.
    r = p.post("{ __typename }" + " " * (1 << 20))
    assert r.status_code == 413 and r.headers["content-type"] == "application/json", r.text
    assert json.loads(r.text)["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    # One just below it is the server's to run.
    r = p.post("{ __typename }" + " " * ((1 << 20) - 100))
    assert r.status_code == 200 and json.loads(r.text) == {"data": {"__typename": "Query"}}, r.text


def test_the_host_check_sees_the_clients_host(proxied):
    p = proxied()
    r = p.post('mutation { ensureBuilder(name: "rebound") { name } }', token=TOKEN, host="evil.example")
    assert r.status_code == 403, r.text
    err = json.loads(r.text)["errors"][0]
    assert err["extensions"]["code"] == "FORBIDDEN" and "--allowed-host evil.example" in err["message"]
    assert p.http.get("/graphql", params={"query": "{ __typename }"},
                      headers={"host": "evil.example"}).status_code == 403
    assert "refused a request for a host" in p.srv.output()
    assert p.ok("{ builders { name } }") == {"builders": []}, "the refused mutation ran"
    # The WebSocket upgrade: the name allowed, from its own origin, is let in.
    assert " 101 " in upgrade(p, HOST, f"https://{HOST}")
    assert " 403 " in upgrade(p, "evil.example", "https://evil.example")
    assert " 403 " in upgrade(p, HOST, "https://evil.example")


async def one_event(p, connecting):
    """Subscribes through the proxy on the socket `connecting` opens, adds a
    buildset and checks that its event arrives."""
    ws = await connecting
    await init(ws)
    await subscribe(ws)
    await asyncio.sleep(0.3)
    bsid = await in_thread(add, p)
    assert await next_event(ws) == {"bsid": bsid, "reason": "deployed"}
    await ws.close()


def test_a_subscription_through_nginx_gets_its_event(proxied):
    p = proxied()

    asyncio.run(one_event(p, p.ws()))


def test_clients_that_go_away_leave_the_server_serving(proxied):
    p = proxied()
    # Gone in the middle of a body, and right after a whole request.
    with p.tls_socket() as s:
        s.sendall((f"POST /graphql HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                   "Content-Length: 1000\r\n\r\n{\"query\":").encode())
    body = json.dumps({"query": "{ builders { name } }"})
    with p.tls_socket() as s:
        s.sendall((f"POST /graphql HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n{body}").encode())

    async def go():
        # Gone from a subscription without a close frame: nginx closes its upstream
        # connection and the server frees the socket.
        gone = await p.ws(ping_interval=None)
        await init(gone)
        await subscribe(gone)
        await asyncio.sleep(0.3)
        assert await in_thread(p.websockets_open) == 1
        gone.transport.abort()
        deadline = time.monotonic() + 10
        while await in_thread(p.websockets_open) != 0:
            assert time.monotonic() < deadline, "the server still holds the socket of a client gone"
            await asyncio.sleep(0.1)
        await one_event(p, p.ws())

    asyncio.run(go())
    assert p.ok("{ __typename }") == {"__typename": "Query"}
    assert p.srv.proc.poll() is None
    assert "panicked" not in p.srv.output()


def masked(payload, opcode=0x1):
    """A client's WebSocket frame."""
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_a_subscriber_that_stops_reading_is_cut_off_and_its_slot_freed(proxied):
    """A client that reads nothing of its events (a small receive buffer, 3 MB an
    event) is cut off after --client-timeout, by nginx's send_timeout or by the
    server seeing nginx stop reading, and the server's socket is freed."""
    p = proxied()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", p.nginx.port))
    s = p.tls.wrap_socket(s, server_hostname=HOST)
    s.sendall((f"GET /graphql/ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {PROTOCOL}\r\n\r\n").encode())
    s.sendall(masked(json.dumps({"type": "connection_init", "payload": {}}).encode()))
    data = b""
    while b"connection_ack" not in data:
        data += s.recv(4096)
    assert b" 101 " in data.split(b"\r\n")[0]
    aliases = " ".join(f"p{i}: properties {{ value }}" for i in range(50))
    s.sendall(masked(json.dumps({"id": "big", "type": "subscribe",
                                 "payload": {"query": f"subscription {{ buildsetAdded {{ {aliases} }} }}"}}).encode()))
    time.sleep(0.3)
    started = time.monotonic()
    for i in range(10):
        add_with(p, [{"name": "big", "value": "x" * 60000, "source": "test"}])
    deadline = started + 40
    while p.websockets_open() != 0:
        assert time.monotonic() < deadline, "the server still holds the socket of a client that reads nothing"
        time.sleep(0.2)
    assert time.monotonic() - started > 5, "cut off before --client-timeout"
    s.close()
    assert p.ok("{ __typename }") == {"__typename": "Query"}


@pytest.mark.parametrize("keepalive", [1, 0])
def test_an_idle_subscription_outlives_proxy_read_timeout_by_the_pings(proxied, keepalive):
    """proxy_read_timeout is set above --ws-keepalive: the server's pings are what
    keeps an idle WebSocket open through nginx. Here both are scaled down (2 s and
    1 s); without pings nginx cuts the socket."""
    p = proxied("--ws-keepalive", str(keepalive),
                edit=lambda text: replace(text, "proxy_read_timeout 60s;", "proxy_read_timeout 2s;"))

    async def go():
        ws = await p.ws(ping_interval=None)
        await init(ws)
        await subscribe(ws)
        if keepalive:
            await asyncio.sleep(4)
            bsid = await in_thread(add, p)
            assert (await next_event(ws))["bsid"] == bsid
            await ws.close()
        else:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)

    asyncio.run(go())


def caddy_binary():
    path = shutil.which("caddy")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("caddy is missing: .ci/run installs Debian's caddy")
        pytest.skip("caddy is not installed (Debian: apt-get install caddy; .ci/run installs it)")
    return path


class Caddy:
    """Caddy running deploy/Caddyfile on a free port in front of the server, with
    the throwaway certificate instead of ACME, no admin endpoint and no HTTP
    redirect listener (which wants port 80)."""

    def __init__(self, upstream, certificate):
        self.bin = caddy_binary()
        self.dir = Path(tempfile.mkdtemp(prefix="bsgql-caddy-"))
        self.port = free_port()
        cert, key = certificate
        text = (DEPLOY / "Caddyfile").read_text()
        text = replace(text, "{\n\tservers {", "{\n\tadmin off\n\tauto_https disable_redirects\n"
                       f"\tdefault_sni {HOST}\n\tservers {{")
        text = replace(text, f"\n{HOST} {{\n", f"\n{HOST}:{self.port} {{\n\ttls {cert} {key}\n")
        text = replace(text, "reverse_proxy 127.0.0.1:8080 {", f"reverse_proxy 127.0.0.1:{upstream} {{")
        (self.dir / "Caddyfile").write_text(text)
        self.env = {**os.environ, "HOME": str(self.dir), "XDG_DATA_HOME": str(self.dir / "data"),
                    "XDG_CONFIG_HOME": str(self.dir / "config")}
        self.proc = None

    def adapt(self, path):
        """`caddy adapt` of the Caddyfile at `path`: its exit status and its log."""
        r = subprocess.run([self.bin, "adapt", "--config", str(path), "--adapter", "caddyfile"],
                           capture_output=True, text=True, env=self.env)
        return r.returncode, r.stderr

    def start(self):
        self.log = open(self.dir / "caddy.log", "w")
        self.proc = subprocess.Popen([self.bin, "run", "--config", str(self.dir / "Caddyfile"),
                                      "--adapter", "caddyfile"], stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env)
        deadline = time.time() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert self.proc.poll() is None, (self.dir / "caddy.log").read_text()
                assert time.time() < deadline, (self.dir / "caddy.log").read_text()
                time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            terminate(self.proc)
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_caddy_in_front(start, certificate):
    """deploy/Caddyfile adapts without
    a warning (an unformatted file is one), and in front of the server it serves
    POST, GET and a subscription's event, keeping the client's Host (the
    WebSocket's Origin is same-origin for the server only with it) and keeping
    /metrics to the loopback port."""
    srv = start("sqlite", "--write-token", TOKEN, "--allowed-host", HOST)
    caddy = Caddy(srv.port, certificate)
    p = None
    try:
        code, log = caddy.adapt(DEPLOY / "Caddyfile")
        assert code == 0 and '"level":"warn"' not in log.replace(" ", "").lower(), log
        caddy.start()
        p = Proxied(srv, caddy, certificate)
        r = p.post("{ __typename }")
        assert r.status_code == 200 and json.loads(r.text) == {"data": {"__typename": "Query"}}, r.text
        assert p.http.get("/graphql", params={"query": "{ builders { name } }"}).status_code == 200
        assert p.http.get("/readyz").status_code == 200
        assert p.http.get("/metrics").status_code == 404

        origin = f"https://{HOST}:{caddy.port}"
        connecting = websockets.connect(f"wss://{HOST}:{caddy.port}/graphql/ws", host="127.0.0.1",
                                        port=caddy.port, ssl=p.tls, origin=origin,
                                        subprotocols=[PROTOCOL], open_timeout=10)
        asyncio.run(one_event(p, connecting))
    finally:
        if p:
            p.http.close()
        caddy.stop()


def server_defaults():
    """The server's default for each flag that has a number, from its --help."""
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=True).stdout
    return {flag: int(value) for flag, value in
            re.findall(r"(--[a-z-]+) <[A-Z_]+>\n\s+.*?\[default: (\d+)\]", out)}


def seconds(text, directive):
    """The seconds of the one `directive N[s|m]` in `text`."""
    [(n, unit)] = re.findall(rf"^\s*{re.escape(directive)}\s*(\d+)(s|m);?$", text, re.M)
    return int(n) * (60 if unit == "m" else 1)


def test_the_proxies_timeouts_agree_with_the_servers_defaults():
    """What README "Deploy" explains, checked against the flags' defaults, so that a
    changed default shows here: idle upstream connections are dropped before the
    server drops them; the proxy waits for an answer and between WebSocket pings
    longer than the server takes; clients get --client-timeout; the body bound is
    --max-body-bytes."""
    d = server_defaults()
    client, ping, request = d["--client-timeout"], d["--ws-keepalive"], d["--request-timeout"]
    nginx = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"^upstream buildsets_graphql \{\n(.*?)^\}", nginx, re.M | re.S).group(1)
    tls = nginx[nginx.index("listen 443 ssl"):]
    assert seconds(upstream, "keepalive_timeout") < client
    assert seconds(tls, "proxy_read_timeout") > max(ping, request)
    for directive in ("client_header_timeout", "client_body_timeout", "send_timeout", "keepalive_timeout"):
        assert seconds(tls, directive) == client, directive
    assert re.search(r"client_max_body_size +(\d+)m;", tls).group(1) == str(d["--max-body-bytes"] >> 20)
    assert f"limit of {d['--max-body-bytes']} bytes" in tls
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert seconds(caddy, "keepalive") < client
    assert seconds(caddy, "response_header_timeout") > request
    assert seconds(caddy, "read_header") == client
    unit = (DEPLOY / "buildsets-graphql.service").read_text()
    assert seconds(unit, "TimeoutStopSec=") > d["--shutdown-timeout"]


def unit_settings():
    """The unit's Environment= pairs and LoadCredential= names."""
    env, creds = {}, []
    for line in (DEPLOY / "buildsets-graphql.service").read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line[len("Environment="):].strip('"').partition("=")
            env[key] = value
        elif line.startswith("LoadCredential="):
            creds.append(line[len("LoadCredential="):].split(":", 1)[0])
    return env, creds


def env_vars():
    """The environment variables the binary reads, from its --help."""
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"\[env: ([A-Z_]+)=", out))


def serve_with_env(env, port, logs):
    """`buildsets-graphql serve` (as the unit's ExecStart= and the image's
    ENTRYPOINT and CMD run it) with only `env` as configuration, its stdout and
    stderr to files in `logs`; its process, once it answers."""
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        proc = subprocess.Popen([BIN, "serve"], env={"PATH": os.environ.get("PATH", ""), **env},
                                stdout=out, stderr=err)
    deadline = time.time() + 30
    while True:
        assert proc.poll() is None, (logs / "stderr").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert time.time() < deadline, "did not start"
        time.sleep(0.05)


def test_the_units_settings_are_what_the_server_reads(tmp_path):
    """The unit's environment, with %S and %d as systemd fills them in (the state
    and credentials directories), configures the binary: a server on loopback that
    allows the public name and takes the write token from the credential."""
    env, creds = unit_settings()
    assert set(env) <= env_vars(), set(env) - env_vars()
    assert creds == ["write-token"]
    state, credentials = tmp_path / "state", tmp_path / "credentials"
    (state / "buildsets-graphql").mkdir(parents=True)
    credentials.mkdir()
    (credentials / "write-token").write_text(TOKEN + "\n")
    port = free_port()
    assert env["LISTEN"] == "127.0.0.1:8080"
    env = {k: v.replace("%S", str(state)).replace("%d", str(credentials)) for k, v in env.items()}
    env["LISTEN"] = f"127.0.0.1:{port}"
    proc = serve_with_env(env, port, tmp_path)
    try:
        def post(host, token=None):
            headers = {"host": host, "content-type": "application/json"}
            if token:
                headers["authorization"] = f"Bearer {token}"
            return httpx.post(f"http://127.0.0.1:{port}/graphql", headers=headers,
                              content=json.dumps({"query": 'mutation { ensureBuilder(name: "u") { name } }'}))
        assert post(HOST).status_code == 401
        assert post(HOST, TOKEN).status_code == 200
        assert post("evil.example", TOKEN).status_code == 403
        assert (state / "buildsets-graphql" / "buildsets.db").exists()
    finally:
        proc.terminate()
        proc.wait(15)
    log = (tmp_path / "stderr").read_text()
    assert proc.returncode == 0, log
    # LOG_FORMAT=json: the log (stderr) is one JSON object a line.
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines), log
    assert TOKEN not in log + (tmp_path / "stdout").read_text()


def test_the_images_settings_are_what_the_server_reads(tmp_path):
    """The Containerfile's ENV (its state path moved to a temporary one): the
    server listens on every address, so it refuses to start without a write token,
    and starts with one."""
    text = (DEPLOY / "Containerfile").read_text()
    env = dict(re.findall(r"(?:ENV|\\)\s+([A-Z_]+)=(\S+)", text))
    assert set(env) <= env_vars(), set(env) - env_vars()
    assert env["LISTEN"] == "0.0.0.0:8080"
    assert re.search(r"^USER 65532:65532$", text, re.M) and 'VOLUME ["/var/lib/buildsets-graphql"]' in text
    assert 'ENTRYPOINT ["/usr/local/bin/buildsets-graphql"]\nCMD ["serve"]' in text
    assert env["DATABASE_URL"].startswith("sqlite:///var/lib/buildsets-graphql/")
    port = free_port()
    env["LISTEN"] = f"0.0.0.0:{port}"
    env["DATABASE_URL"] = env["DATABASE_URL"].replace("/var/lib/buildsets-graphql", str(tmp_path))
    refused = subprocess.run([BIN, "serve"], env=env, capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "--allow-anonymous-writes" in refused.stdout + refused.stderr
    (tmp_path / "write-token").write_text(TOKEN)
    proc = serve_with_env({**env, "WRITE_TOKEN_FILE": str(tmp_path / "write-token")}, port, tmp_path)
    proc.terminate()
    assert proc.wait(15) == 0


def systemd_analyze():
    path = shutil.which("systemd-analyze")
    if not path:
        pytest.skip("systemd-analyze is not installed here (Debian: apt-get install systemd)")
    return path


def unit_copy(tmp_path):
    """The unit with ExecStart= naming the binary under test (verify needs it to exist)."""
    text = replace((DEPLOY / "buildsets-graphql.service").read_text(),
                   "ExecStart=/usr/local/bin/buildsets-graphql ", f"ExecStart={Path(BIN).resolve()} ")
    unit = tmp_path / "buildsets-graphql.service"
    unit.write_text(text)
    return unit


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    tool_path = systemd_analyze()
    # Whether verify runs at all here: a minimal unit must pass.
    probe = tmp_path / "probe.service"
    probe.write_text(f"[Service]\nExecStart={Path(BIN).resolve()} --help\n")
    r = subprocess.run([tool_path, "verify", str(probe)], capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        pytest.skip(f"systemd-analyze verify cannot run here (a minimal unit fails: {r.stderr.strip()})")
    r = subprocess.run([tool_path, "verify", str(unit_copy(tmp_path))], capture_output=True, text=True)
    # verify exits 0 on an unknown or misspelt setting, and says so on stderr.
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path):
    tool_path = systemd_analyze()
    unit = unit_copy(tmp_path)
    r = subprocess.run([tool_path, "security", "--offline=true", str(unit)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"systemd-analyze security --offline cannot run here (systemd < 250?): {r.stderr.strip()}")
    # The exposure level, 0.0 (locked down) to 10.0; below 2 is rated "OK".
    level = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout).group(1))
    assert level < 2.0, r.stdout
