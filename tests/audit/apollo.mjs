// @apollo/client 4 with its PersistedQueryLink against a live server, one scenario
// per run; prints one JSON line per thing seen, for
// tests/blackbox/test_persisted.py to judge. Every HTTP request the client makes
// is recorded (method, whether it carried the query text, status, codes).
//   node apollo.mjs SCENARIO http://HOST:PORT [MANIFEST]
// Scenarios:
//   apq      automatic persisted queries: POST, then GET for hashed queries
//   trusted  a server with --trusted-documents MANIFEST: listed operations run by
//            hash alone, an unlisted one is refused
//   manifest writes MANIFEST (Apollo's persisted query manifest, ids as Apollo's
//            generator makes them: the SHA-256 of the document the client sends)
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { print } from 'graphql';

const [scenario, base, manifestPath] = process.argv.slice(2);
const say = (what, more = {}) => console.log(JSON.stringify({ what, ...more }));
const sha256 = (text) => createHash('sha256').update(text).digest('hex');

const BUILDERS = gql`
  query Builders {
    builders {
      builderid
      name
    }
  }
`;
const PAGE = gql`
  query Page($first: Int) {
    buildsets(first: $first) {
      totalCount
    }
  }
`;
const UNLISTED = gql`
  query Unlisted {
    buildsets(first: 1) {
      nodes {
        bsid
      }
    }
  }
`;

function client(options = {}) {
  const requests = [];
  const recordingFetch = async (url, init) => {
    const response = await fetch(url, init);
    const text = await response.clone().text();
    let codes = [];
    try {
      codes = (JSON.parse(text).errors || []).map((e) => e.extensions && e.extensions.code);
    } catch {}
    const sentQuery =
      init.method === 'GET'
        ? new URL(url).searchParams.has('query')
        : JSON.parse(init.body).query !== undefined;
    requests.push({ method: init.method, sentQuery, status: response.status, codes });
    return response;
  };
  const link = new PersistedQueryLink({ sha256, ...options }).concat(
    new HttpLink({ uri: base + '/graphql', fetch: recordingFetch }),
  );
  return { apollo: new ApolloClient({ link, cache: new InMemoryCache() }), requests };
}

async function outcome(c, query, variables) {
  try {
    const r = await c.apollo.query({ query, variables, fetchPolicy: 'network-only' });
    return { data: r.data, error: r.error ? String(r.error) : null };
  } catch (e) {
    return { thrown: String(e), codes: (e.errors || []).map((x) => x.extensions && x.extensions.code) };
  }
}

if (scenario === 'manifest') {
  // The documents as the client sends them: its cache adds `__typename` first, as
  // Apollo's manifest generator does.
  const cache = new InMemoryCache();
  const operations = [BUILDERS, PAGE].map((doc) => {
    const body = print(cache.transformDocument(doc));
    const def = doc.definitions[0];
    return { id: sha256(body), name: def.name.value, type: def.operation, body };
  });
  writeFileSync(
    manifestPath,
    JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 1, operations }),
  );
  say('manifest', { ids: operations.map((o) => o.id) });
} else if (scenario === 'apq') {
  // First time: the hash alone, PERSISTED_QUERY_NOT_FOUND, then the text with it.
  const first = client();
  say('first', { result: await outcome(first, BUILDERS), requests: first.requests });
  // A new client (a new page load): the server knows the hash, one request.
  const again = client();
  say('again', { result: await outcome(again, BUILDERS), requests: again.requests });
  // GET for hashed queries (what a CDN can cache): unknown, registered by POST,
  // then served by GET alone.
  const get1 = client({ useGETForHashedQueries: true });
  say('get-first', { result: await outcome(get1, PAGE, { first: 3 }), requests: get1.requests });
  const get2 = client({ useGETForHashedQueries: true });
  say('get-again', { result: await outcome(get2, PAGE, { first: 3 }), requests: get2.requests });
} else if (scenario === 'trusted') {
  const listed = client();
  say('listed', { result: await outcome(listed, BUILDERS), requests: listed.requests });
  const unlisted = client();
  say('unlisted', { result: await outcome(unlisted, UNLISTED), requests: unlisted.requests });
} else {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
