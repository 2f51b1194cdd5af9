// Starts GraphiQL against this server, with:
// - one token for every tab: the Token bar above GraphiQL, kept in this browser's
//   localStorage; every request (queries, the schema's introspection, and the
//   subscriptions' connection_init) carries it as `Authorization: Bearer <token>`,
//   unless a tab's own Headers pane sets Authorization;
// - a message instead of "Error fetching schema" when the server wants a token;
// - subscriptions shown as a list of events, each with the time it arrived;
// - the explorer plugin, and example operations in the first tabs.
// Everything it loads comes from this server: the page's Content-Security-Policy
// allows no other host.
(function () {
  'use strict';
  var h = React.createElement;
  var here = window.location.href;
  var socket = new URL('/graphql/ws', here);
  socket.protocol = socket.protocol === 'https:' ? 'wss:' : 'ws:';
  // Subscriptions go over the WebSocket (graphql-transport-ws); the headers travel
  // in its connection_init payload, so a bearer token works there too.
  var base = GraphiQL.createFetcher({
    url: new URL('/graphql', here).toString(),
    subscriptionUrl: socket.toString()
  });

  // The shared token, read by the fetcher at each request (never a stale copy).
  var TOKEN_KEY = 'buildsets-graphql:token';
  var shared = { token: load() };

  function load() {
    try {
      return window.localStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
      return '';
    }
  }

  function save(token) {
    try {
      if (token) {
        window.localStorage.setItem(TOKEN_KEY, token);
      } else {
        window.localStorage.removeItem(TOKEN_KEY);
      }
    } catch (e) {
      // Storage refused (private mode): the token lasts as long as the page.
    }
  }

  // A pasted "Bearer abc" is taken as "abc".
  function bare(token) {
    return token.trim().replace(/^bearer\s+/i, '');
  }

  function hasAuthorization(headers) {
    return Object.keys(headers).some(function (k) {
      return k.toLowerCase() === 'authorization';
    });
  }

  // The tab's own headers, over the shared Authorization.
  function withToken(headers) {
    var own = headers || {};
    var out = {};
    var token = bare(shared.token);
    if (token && !hasAuthorization(own)) {
      out.Authorization = 'Bearer ' + token;
    }
    return Object.assign(out, own);
  }

  function isSubscription(params, opts) {
    var doc = opts && opts.documentAST;
    var name = params.operationName || undefined;
    return Boolean(doc) && doc.definitions.some(function (d) {
      return d.kind === 'OperationDefinition' && d.operation === 'subscription' &&
        (d.name ? d.name.value : undefined) === name;
    });
  }

  function hasCode(result, code) {
    return Boolean(result) && Array.isArray(result.errors) && result.errors.some(function (e) {
      return e && e.extensions && e.extensions.code === code;
    });
  }

  // What the schema's introspection says about the token: null when it worked.
  function schemaProblem(result) {
    if (result && result.data && result.data.__schema) {
      return null;
    }
    if (hasCode(result, 'UNAUTHENTICATED')) {
      return 'needed';
    }
    if (hasCode(result, 'FORBIDDEN')) {
      return 'refused';
    }
    var first = result && Array.isArray(result.errors) && result.errors[0];
    return 'failed: ' + ((first && first.message) || JSON.stringify(result));
  }

  // A subscription's results, as a growing list of events with arrival times, and
  // how it ended (an error, or the server completing it). The last MAX_EVENTS are
  // kept; `received` counts every result the server sent.
  var MAX_EVENTS = 500;

  // GraphiQL's WebSocket fetcher rejects a second promise, which nothing awaits, with
  // the error a closed socket ends a subscription with; that error is shown in the
  // event list, so it is not reported again as an uncaught one.
  var CLOSED = /^Socket closed with event (\d+)\s*(.*)$/;
  window.addEventListener('unhandledrejection', function (event) {
    if (event.reason instanceof Error && CLOSED.test(event.reason.message)) {
      event.preventDefault();
    }
  });

  var HINTS = {
    4401: ' Put the token in the Token field above.',
    4403: ' Check the token in the Token field above.'
  };

  function describe(error) {
    if (Array.isArray(error)) {
      return { errors: error };
    }
    var message = (error && error.message) || String(error);
    var closed = CLOSED.exec(message);
    if (closed) {
      message = 'The server closed the socket: ' + closed[1] +
        (closed[2] ? ', ' + closed[2] : '') + '.' + (HINTS[closed[1]] || '');
    }
    return { error: message };
  }

  function eventList(source) {
    var it = source[Symbol.asyncIterator]();
    var events = [];
    var received = 0;
    var stopped = false;
    var over = false;

    function add(entry, counted) {
      if (counted) {
        received += 1;
      }
      events.push(entry);
      if (events.length > MAX_EVENTS) {
        events.shift();
      }
      return { done: false, value: { received: received, events: events.slice() } };
    }

    function end(entry) {
      over = true;
      if (stopped) {
        return { done: true, value: undefined };
      }
      return add(Object.assign({ at: new Date().toISOString() }, entry), false);
    }

    var list = {
      next: function () {
        if (over) {
          return Promise.resolve({ done: true, value: undefined });
        }
        return it.next().then(function (step) {
          if (step.done) {
            return end({ completed: 'the server ended the subscription' });
          }
          return add(Object.assign({ at: new Date().toISOString() }, step.value), true);
        }, function (error) {
          return end(describe(error));
        });
      },
      return: function () {
        stopped = true;
        over = true;
        return it.return ? it.return() : Promise.resolve({ done: true, value: undefined });
      }
    };
    list[Symbol.asyncIterator] = function () {
      return list;
    };
    return list;
  }

  // The fetcher GraphiQL is given; `report` hears what introspection said.
  function makeFetcher(report) {
    return function (params, opts) {
      var headers = withToken(opts && opts.headers);
      var options = Object.assign({}, opts, { headers: headers });
      if (params.operationName === 'IntrospectionQuery') {
        return Promise.resolve(base(params, options)).then(function (result) {
          report(schemaProblem(result));
          return result;
        }, function (error) {
          report('failed: ' + ((error && error.message) || String(error)));
          throw error;
        });
      }
      var subscription = isSubscription(params, options);
      return Promise.resolve(base(params, options)).then(function (value) {
        return subscription && value && value[Symbol.asyncIterator] ? eventList(value) : value;
      });
    };
  }

  var MESSAGES = {
    needed: 'This server needs a token to read. Put it in the Token field above: ' +
      'every tab, the Docs and the Explorer then use it.',
    refused: 'The server does not take this token (403 FORBIDDEN): check the Token field above.'
  };

  function message(problem) {
    return MESSAGES[problem] || 'Could not fetch the schema: ' + problem.replace(/^failed: /, '');
  }

  // Each line at most 48 characters: nothing is cut in the editor from 1280 px wide.
  var EXAMPLES = [
    {
      query: [
        "# buildsets-graphql: Buildbot's buildsets.",
        '#',
        '# The Token field at the top is sent by every',
        '# tab, the Docs and the Explorer; it is stored',
        '# in this browser until you press Forget. Reads',
        '# need it when the server has --read-token; Add',
        '# and Complete need the --write-token one.',
        '#',
        '# Run with the play button or Ctrl-Enter. The',
        '# tabs are examples: Page (this one), Buildset,',
        '# Add, Complete, and Live, a subscription whose',
        '# events are listed with the time each arrived.',
        '# Docs and Explorer are on the left.',
        '#',
        '# Next page: set "after" in Variables to the',
        "# answer's pageInfo.endCursor.",
        '',
        'query Page($after: String) {',
        '  buildsets(first: 10, after: $after,',
        '    orderBy: [{field: BSID, direction: DESC}]) {',
        '    totalCount',
        '    pageInfo { hasNextPage endCursor }',
        '    nodes {',
        '      bsid reason submittedAt complete results',
        '      sourcestamps {',
        '        repository branch revision',
        '      }',
        '      buildrequests {',
        '        builder { name } complete results',
        '      }',
        '    }',
        '  }',
        '}',
        ''
      ].join('\n'),
      variables: '{"after": null}'
    },
    {
      query: [
        '# One buildset with every field: set its bsid',
        '# in Variables (null: no such buildset).',
        '',
        'query Buildset($bsid: Int!) {',
        '  buildset(bsid: $bsid) {',
        '    id bsid reason externalIdstring',
        '    submittedAt complete completeAt results',
        '    parentBuildid parentRelationship',
        '    rebuiltBuildid sourcestampIds',
        '    sourcestamps {',
        '      id ssid repository branch revision',
        '      codebase project createdAt',
        '      patch {',
        '        patchid level subdir',
        '        author comment body',
        '      }',
        '    }',
        '    properties { name value source }',
        '    buildrequests {',
        '      id buildrequestid builderid',
        '      priority waitedFor submittedAt',
        '      complete completeAt results',
        '      builder { builderid name description }',
        '      builds {',
        '        buildid number builderid',
        '        buildrequestid stateString',
        '        results startedAt completeAt',
        '      }',
        '    }',
        '  }',
        '}',
        ''
      ].join('\n'),
      variables: '{"bsid": 1}'
    },
    {
      query: [
        '# Adds a buildset: one sourcestamp (found, or',
        '# created the first time) and one build request',
        '# on builder "playground". ensureBuilder runs',
        '# first and answers its builderid: 1 on a fresh',
        '# database; elsewhere put the one it answers in',
        '# Variables and run again. Needs the write',
        '# token. Complete takes the bsid it answers.',
        '',
        'mutation Add($builderid: Int!) {',
        '  ensureBuilder(name: "playground") {',
        '    builderid name',
        '  }',
        '  addBuildset(input: {',
        '    reason: "tried in the playground"',
        '    sourcestamps: [{stamp: {',
        '      repository: "https://example.org/x.git"',
        '      branch: "main"',
        '      revision: "1f2e3d4c"',
        '    }}]',
        '    builderids: [$builderid]',
        '    properties: [{name: "from",',
        '      value: "playground", source: "Playground"}]',
        '  }) {',
        '    bsid created',
        '    brids { builderid buildrequestid }',
        '    buildset { submittedAt sourcestampIds }',
        '  }',
        '}',
        ''
      ].join('\n'),
      variables: '{"builderid": 1}'
    },
    {
      query: [
        '# Completes a buildset: put the bsid that Add',
        "# answered in Variables. results is Buildbot's",
        '# code: 0 SUCCESS, 1 WARNINGS, 2 FAILURE,',
        '# 3 SKIPPED, 4 EXCEPTION, 5 RETRY, 6 CANCELLED.',
        '# Needs the write token.',
        '',
        'mutation Complete($bsid: Int!) {',
        '  completeBuildset(bsid: $bsid, results: 0) {',
        '    bsid complete completeAt results',
        '  }',
        '}',
        ''
      ].join('\n'),
      variables: '{"bsid": 1}'
    },
    {
      query: [
        '# Each buildset as it is added, listed with the',
        '# time it arrived: run Add in another tab. The',
        '# same button stops it. buildsetCompleted(bsid:)',
        '# works alike.',
        '',
        'subscription Live {',
        '  buildsetAdded {',
        '    bsid reason submittedAt',
        '    sourcestamps { repository branch revision }',
        '    buildrequests { builder { name } }',
        '  }',
        '}',
        ''
      ].join('\n')
    }
  ];

  var explorer = GraphiQLPluginExplorer.explorerPlugin({ showAttribution: false });
  var plugins = [explorer];

  function TokenBar(props) {
    return h('form', {
      className: 'bsgql-bar',
      onSubmit: function (e) {
        e.preventDefault();
        props.apply();
      }
    },
    h('label', { htmlFor: 'bsgql-token' }, 'Token'),
    h('input', {
      id: 'bsgql-token',
      type: 'password',
      value: props.token,
      placeholder: 'read or write token',
      autoComplete: 'off',
      spellCheck: false,
      onChange: function (e) {
        props.setToken(e.target.value);
      }
    }),
    h('button', { type: 'button', onClick: props.forget, disabled: !props.token }, 'Forget'),
    h('span', { className: 'bsgql-note' },
      'Sent by every tab as Authorization: Bearer. Stored in this browser ' +
      '(localStorage) until you press Forget.'));
  }

  function App() {
    var token = React.useState(shared.token);
    var version = React.useState(0);
    var problem = React.useState(null);
    var applied = React.useRef(shared.token);
    var generation = React.useRef(0);

    function setToken(value) {
      shared.token = value;
      save(value);
      token[1](value);
    }

    // A new fetcher makes GraphiQL fetch the schema again.
    function refetch() {
      applied.current = shared.token;
      version[1](function (v) {
        return v + 1;
      });
    }

    // Once typing pauses (or at once on Enter). Requests in between already carry
    // the new token: the fetcher reads it at each request.
    React.useEffect(function () {
      if (token[0] === applied.current) {
        return undefined;
      }
      var timer = window.setTimeout(refetch, 400);
      return function () {
        window.clearTimeout(timer);
      };
    }, [token[0]]);

    var fetcher = React.useMemo(function () {
      generation.current += 1;
      var mine = generation.current;
      return makeFetcher(function (p) {
        if (mine === generation.current) {
          problem[1](p);
        }
      });
    }, [version[0]]);

    return h('div', { className: 'bsgql-app' },
      h(TokenBar, {
        token: token[0],
        setToken: setToken,
        apply: refetch,
        forget: function () {
          setToken('');
          refetch();
        }
      }),
      problem[0] ? h('div', { className: 'bsgql-banner', role: 'alert' }, message(problem[0])) : null,
      h('div', { className: 'bsgql-graphiql' },
        h(GraphiQL, {
          fetcher: fetcher,
          defaultTabs: EXAMPLES,
          plugins: plugins,
          isHeadersEditorEnabled: true,
          shouldPersistHeaders: true
        }, h(GraphiQL.Logo, null, 'buildsets-graphql'))));
  }

  ReactDOM.createRoot(document.getElementById('graphiql')).render(h(App));
})();
