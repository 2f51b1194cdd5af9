// PostGraphile 5 (amber preset), read-only, over a database holding Buildbot's tables.
// Usage: node server.mjs PORT DATABASE_URL   (run.sh starts it with the Node 22 binary)
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";

const [port, connectionString] = process.argv.slice(2);
if (!port || !connectionString) {
  console.error("usage: node server.mjs PORT DATABASE_URL");
  process.exit(2);
}
const host = "127.0.0.1";
const poolMax = Number(process.env.PGL_POOL_MAX || 10);
const schemas = (process.env.PGL_SCHEMAS || "public").split(",");

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  // Read-only: no Mutation type at all.
  disablePlugins: [
    "MutationPlugin",
    "PgMutationCreatePlugin",
    "PgMutationUpdateDeletePlugin",
    "PgMutationPayloadEdgePlugin",
    "MutationPayloadQueryPlugin",
  ],
  pgServices: [
    makePgService({
      connectionString,
      schemas,
      pubsub: false,
      poolConfig: { max: poolMax },
    }),
  ],
  grafserv: {
    port: Number(port),
    host,
    graphqlPath: "/graphql",
    graphiql: false,
    graphiqlOnGraphQLGET: false,
    graphqlOverGET: false,
    watch: false,
    websockets: false,
  },
  grafast: {
    explain: false,
  },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.on("error", (e) => {
  console.error(e);
  process.exit(1);
});
await serv.addTo(server);
// Build the schema before accepting traffic, so the first request is not the one paying for it.
await pgl.getSchemaResult();
server.listen(Number(port), host, () => {
  console.log(`postgraphile listening on http://${host}:${port}/graphql (pool max ${poolMax})`);
});

const stop = async () => {
  server.close();
  await pgl.release();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
