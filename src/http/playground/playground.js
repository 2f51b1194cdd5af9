// Starts GraphiQL against this server. Everything it loads comes from this server:
// the page's Content-Security-Policy allows no other host.
(function () {
  var here = window.location.href;
  var socket = new URL('/graphql/ws', here);
  socket.protocol = socket.protocol === 'https:' ? 'wss:' : 'ws:';
  // Subscriptions go over the WebSocket (graphql-transport-ws); the Headers pane's
  // entries travel in its connection_init payload, so a bearer token works there too.
  var fetcher = GraphiQL.createFetcher({
    url: new URL('/graphql', here).toString(),
    subscriptionUrl: socket.toString()
  });
  var example = [
    '# Welcome to buildsets-graphql.',
    '#',
    '# Press the run button (or Ctrl-Enter) to run a query; the Docs pane lists',
    '# every type. On a server started with --read-token or --write-token, add',
    '#   {"Authorization": "Bearer <token>"}',
    '# in the Headers pane below.',
    '#',
    '# Live updates: run `subscription { buildsetAdded { bsid reason } }` and',
    '# submit a buildset; each one appears here as it is committed.',
    '',
    'query RecentBuildsets {',
    '  buildsets(first: 10, orderBy: [{field: SUBMITTED_AT, direction: DESC}]) {',
    '    totalCount',
    '    nodes {',
    '      bsid reason submittedAt complete results',
    '      sourcestamps { repository branch revision }',
    '      buildrequests { builder { name } complete results }',
    '    }',
    '  }',
    '}',
    ''
  ].join('\n');
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: example,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true
    })
  );
})();
