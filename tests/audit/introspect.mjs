// graphql-js reads the server's introspection as every GraphQL tool does
// (buildClientSchema, then printSchema) and prints what tools would see, for
// tests/blackbox/test_introspection.py.
//   node introspect.mjs http://HOST:PORT
import { buildClientSchema, getIntrospectionQuery, printSchema } from 'graphql';

const [base] = process.argv.slice(2);
const response = await fetch(base + '/graphql', {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ query: getIntrospectionQuery({ schemaDescription: true }) }),
});
const result = await response.json();
if (result.errors) {
  console.log(JSON.stringify({ errors: result.errors }));
  process.exit(1);
}
const schema = buildClientSchema(result.data);
const implementsNode = Object.values(schema.getTypeMap())
  .filter((t) => typeof t.getInterfaces === 'function')
  .filter((t) => t.getInterfaces().some((i) => i.name === 'Node'))
  .map((t) => t.name)
  .sort();
console.log(
  JSON.stringify({
    description: schema.description,
    types: Object.keys(schema.getTypeMap()).sort(),
    implementsNode,
    printed: printSchema(schema),
  }),
);
