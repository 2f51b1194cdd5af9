// Starts GraphiQL against this server. Everything it loads comes from this server:
// the page's Content-Security-Policy allows no other host.
(function () {
  var fetcher = GraphiQL.createFetcher({ url: new URL('/graphql', window.location.href).toString() });
  var example = [
    '# Welcome to buildsets-graphql.',
    '#',
    '# Press the run button (or Ctrl-Enter) to run a query; the Docs pane lists',
    '# every type. On a server started with --read-token or --write-token, add',
    '#   {"Authorization": "Bearer <token>"}',
    '# in the Headers pane below.',
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
