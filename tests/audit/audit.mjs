// Runs graphql-http's auditServer against the URL given and prints one JSON line
// per audit: {id, name, status, reason?}. Exit status 0 whatever the results: the
// test that calls it decides what passes.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs http://HOST:PORT/graphql');
  process.exit(2);
}
const results = await auditServer({ url });
for (const r of results) {
  const line = { id: r.id, name: r.name, status: r.status };
  if (r.status !== 'ok') {
    line.reason = r.reason;
    line.httpStatus = r.response.status;
    line.contentType = r.response.headers.get('content-type');
    try {
      line.body = (await r.response.text()).slice(0, 400);
    } catch (e) {
      line.body = String(e);
    }
  }
  console.log(JSON.stringify(line));
}
