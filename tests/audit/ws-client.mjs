// The graphql-ws npm client (the reference graphql-transport-ws client) against a
// live server, one scenario per run; prints one JSON line per thing seen, for
// tests/blackbox/test_graphql_ws_client.py to judge.
//   node ws-client.mjs SCENARIO http://HOST:PORT
// Scenarios: flow, duplicate, restart.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [scenario, base] = process.argv.slice(2);
const wsUrl = base.replace(/^http/, 'ws') + '/graphql/ws';
const say = (what, more = {}) => console.log(JSON.stringify({ what, ...more }));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function post(query, variables) {
  const r = await fetch(base + '/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return r.json();
}

async function addBuildset(tag) {
  const b = await post('mutation { ensureBuilder(name: "wsc") { builderid } }');
  const id = b.data.ensureBuilder.builderid;
  return post(
    'mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }',
    { in: { reason: tag, sourcestamps: [{ stamp: { repository: 'r' } }], builderids: [id] } },
  );
}

/// One operation through the client: resolves with what its sink saw.
function run(client, payload) {
  return new Promise((resolve) => {
    const seen = [];
    client.subscribe(payload, {
      next: (v) => seen.push({ next: v }),
      error: (e) => resolve([...seen, { error: Array.isArray(e) ? e : { code: e.code, reason: e.reason } }]),
      complete: () => resolve([...seen, { complete: true }]),
    });
  });
}

/// Waits for the first event of a `buildsetAdded` subscription, adding buildsets
/// until one arrives (the subscription is live some time after `subscribe`).
async function firstAdded(client, tag, onConnected) {
  let event;
  const dispose = client.subscribe(
    { query: 'subscription { buildsetAdded { reason } }' },
    { next: (v) => { event ??= v; }, error: (e) => say('subscription-error', { e: String(e.code ?? e) }), complete: () => {} },
  );
  for (let i = 0; i < 100 && !event; i++) {
    try { await addBuildset(`${tag}-${i}`); } catch { /* the server is restarting */ }
    await sleep(200);
    onConnected?.();
  }
  dispose();
  return event;
}

if (scenario === 'flow') {
  // One socket for all (a lazy client closes between operations).
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
  say('query', { seen: await run(client, { query: '{ __typename }' }) });
  say('invalid', { seen: await run(client, { query: '{ nope }' }) });
  say('field-error', { seen: await run(client, { query: 'mutation { completeBuildset(bsid: 999, results: 0) { bsid } }' }) });
  say('event', { event: await firstAdded(client, 'flow') });
  await client.dispose();
} else if (scenario === 'duplicate') {
  // One id for every operation: the second `subscribe` reuses a live id, which the
  // protocol answers with 4409, and the client must not retry.
  let connecting = 0;
  const client = createClient({
    url: wsUrl, webSocketImpl: WebSocket, generateID: () => 'same', retryAttempts: 5, retryWait: () => sleep(100),
    on: { connecting: () => { connecting += 1; } },
  });
  const q = { query: 'subscription { buildsetAdded { bsid } }' };
  const first = run(client, q);
  await sleep(300);
  const second = run(client, q);
  const seen = await Promise.race([Promise.all([first, second]), sleep(5000).then(() => 'timeout')]);
  await sleep(1000);
  say('duplicate', { seen, connecting });
  await client.dispose();
} else if (scenario === 'restart') {
  // The server goes away (1001) and comes back: the client reconnects on its own
  // and its subscription gets events again.
  const closes = [];
  let connected = 0;
  const client = createClient({
    url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 50, retryWait: () => sleep(200), lazy: false,
    on: { connected: () => { connected += 1; say('connected', { connected }); }, closed: (e) => closes.push(e.code) },
  });
  say('before', { event: await firstAdded(client, 'before') });
  say('ready-for-restart');
  // The test restarts the server now; wait for the socket to close and reopen.
  for (let i = 0; i < 150 && connected < 2; i++) await sleep(100);
  say('after', { event: await firstAdded(client, 'after'), closes, connected });
  await client.dispose();
} else {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
process.exit(0);
