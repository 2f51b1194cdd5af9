// The buildsets board: recent buildsets, live, on nothing but the public GraphQL
// API. Its operations are the page's `operations` block (the server's
// src/http/board/operations/*.graphql); it sends their exact text, which a server
// running only trusted documents trusts. No library: the DOM is built with
// textContent, so nothing a scheduler wrote can become markup.
'use strict';

(() => {
  const OPS = JSON.parse(document.getElementById('operations').textContent);
  const PAGE = 50;
  const TOKEN_KEY = 'buildsets-graphql.board.token';

  // Buildbot's result codes, each with a symbol and a word beside its colour.
  const RESULTS = [
    { key: 'success', sym: '✓' },
    { key: 'warnings', sym: '!' },
    { key: 'failure', sym: '✗' },
    { key: 'skipped', sym: '»' },
    { key: 'exception', sym: '‼' },
    { key: 'retry', sym: '↻' },
    { key: 'cancelled', sym: '⊘' },
  ];
  const PENDING = { key: 'pending', sym: '◌' };
  const RUNNING = { key: 'running', sym: '▶' };
  const UNKNOWN = { key: 'unknown', sym: '?' };

  const $ = (id) => document.getElementById(id);

  /** An element: h('div', {class: 'x', onclick: f}, child, 'text', [more]). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else el.append(c instanceof Node ? c : String(c));
    }
  }

  // ---- what the board shows -------------------------------------------------

  const state = {
    filters: { branch: '', repository: '', builder: '', complete: '', result: '' },
    view: 'list',
    detail: null, // bsid shown in the panel
    builders: new Map(), // builderid -> name
    rows: new Map(), // bsid -> buildset
    endCursor: null,
    hasNextPage: false,
    generation: 0, // bumped by every new view: older answers are dropped
    loaded: false,
    fresh: new Set(),
  };

  function statusOf(bs) {
    if (bs.complete) return RESULTS[bs.results] || UNKNOWN;
    return (bs.buildrequests || []).some((r) => requestStatus(r) === RUNNING) ? RUNNING : PENDING;
  }
  function requestStatus(r) {
    if (r.complete) return RESULTS[r.results] || UNKNOWN;
    const builds = r.builds || [];
    const last = builds[builds.length - 1];
    return last && !last.completeAt ? RUNNING : PENDING;
  }
  function badge(st, extra) {
    return h('span', { class: `badge s-${st.key}${extra ? ' ' + extra : ''}` },
      h('span', { class: 'sym', 'aria-hidden': 'true' }, st.sym), ' ', st.key);
  }

  // ---- the address: filters, view and panel, so that a view can be shared ----

  function readAddress() {
    const q = new URLSearchParams(location.search);
    for (const k of Object.keys(state.filters)) state.filters[k] = q.get(k) || '';
    if (state.filters.result && !RESULTS.some((r) => r.key === state.filters.result)) state.filters.result = '';
    if (!['', 'true', 'false'].includes(state.filters.complete)) state.filters.complete = '';
    if (!/^[1-9]\d{0,8}$/.test(state.filters.builder)) state.filters.builder = '';
    state.view = q.get('view') === 'grid' ? 'grid' : 'list';
    const bs = q.get('bs') || '';
    state.detail = /^[1-9]\d{0,8}$/.test(bs) ? Number(bs) : null;
  }
  function writeAddress(push) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(state.filters)) if (v) q.set(k, v);
    if (state.view === 'grid') q.set('view', 'grid');
    if (state.detail) q.set('bs', String(state.detail));
    const url = location.pathname + (q.toString() ? '?' + q : '');
    if (url !== location.pathname + location.search) history[push ? 'pushState' : 'replaceState'](null, '', url);
  }

  /** The filters as the operations' `where` and `complete`. */
  function variables() {
    const f = state.filters;
    const where = {};
    if (f.branch) where.branch = { eq: f.branch };
    if (f.repository) where.repository = { contains: f.repository };
    if (f.builder) where.builderid = { eq: Number(f.builder) };
    const code = RESULTS.findIndex((r) => r.key === f.result);
    if (code >= 0) where.results = { eq: code };
    const complete = f.complete === '' ? null : f.complete === 'true';
    return { where, complete };
  }
  /** Whether an event's buildset belongs to the view (the socket's `where` already
   * holds, but `complete` is the view's alone). */
  function belongs(bs) {
    const { complete } = variables();
    return complete === null || bs.complete === complete;
  }

  // ---- talking to the server ------------------------------------------------

  class ApiError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  let token = '';
  try {
    token = sessionStorage.getItem(TOKEN_KEY) || '';
  } catch (e) {
    // Storage refused (a sandboxed frame): the token lasts as long as the page.
  }
  function setToken(t) {
    token = t;
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      // as above
    }
    $('token-button').textContent = t ? 'Token (set)' : 'Token';
  }

  /** Runs one of the board's operations; its `data`, or an ApiError. Numbers in
   * JSON property values keep their text (`raw`), so the panel shows them exactly. */
  async function gql(name, vars, exact) {
    const headers = { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch('/graphql', {
        method: 'POST',
        headers,
        body: JSON.stringify({ query: OPS[name], operationName: name, variables: vars }),
      });
    } catch (e) {
      throw new ApiError('UNREACHABLE', 'The server cannot be reached.');
    }
    const text = await response.text();
    let body;
    try {
      body = exact ? JSON.parse(text, keepNumbers) : JSON.parse(text);
    } catch (e) {
      throw new ApiError('BAD_RESPONSE', `The server answered ${response.status} without GraphQL.`);
    }
    if (body.errors && body.errors.length) {
      const e = body.errors[0];
      throw new ApiError((e.extensions && e.extensions.code) || 'ERROR', e.message);
    }
    return body.data;
  }

  class Raw {
    constructor(text) {
      this.text = text;
    }
  }
  function keepNumbers(key, value, context) {
    if (typeof value === 'number' && context && typeof context.source === 'string' && context.source !== String(value)) {
      return new Raw(context.source);
    }
    return value;
  }
  /** JSON text of a value as the server sent it (two-space indents). */
  function exactJson(value, indent = '') {
    if (value instanceof Raw) return value.text;
    if (Array.isArray(value)) {
      if (!value.length) return '[]';
      const inner = indent + '  ';
      return '[\n' + value.map((v) => inner + exactJson(v, inner)).join(',\n') + '\n' + indent + ']';
    }
    if (value && typeof value === 'object') {
      const keys = Object.keys(value);
      if (!keys.length) return '{}';
      const inner = indent + '  ';
      return '{\n' + keys.map((k) => inner + JSON.stringify(k) + ': ' + exactJson(value[k], inner)).join(',\n') + '\n' + indent + '}';
    }
    return JSON.stringify(value);
  }
  const NEEDS_TOKEN = ['UNAUTHENTICATED', 'FORBIDDEN'];

  /** Runs an operation; when the server wants a token, asks for one and tries again. */
  async function withToken(name, vars, why, exact) {
    for (;;) {
      try {
        return await gql(name, vars, exact);
      } catch (e) {
        if (!NEEDS_TOKEN.includes(e.code)) throw e;
        const given = await askToken(`${why} The server says: ${e.message}`);
        if (!given) throw e;
      }
    }
  }

  // ---- the token dialog -------------------------------------------------------

  let tokenWaiters = [];
  let tokenFromButton = false;
  function askToken(why) {
    const dialog = $('token-dialog');
    if (!dialog.open) {
      // A second asker (the socket, after the query) keeps the first one's reason.
      $('token-why').textContent = why || 'A bearer token for this server: a read token to look, a write token to cancel.';
      $('token-input').value = token;
      dialog.returnValue = ''; // Esc leaves the last one in place
      dialog.showModal();
    }
    $('token-input').focus();
    return new Promise((resolve) => tokenWaiters.push(resolve));
  }
  function tokenButton() {
    tokenFromButton = true;
    askToken();
  }
  function tokenClosed() {
    const how = $('token-dialog').returnValue;
    let given = false;
    if (how === 'use' && $('token-input').value.trim()) {
      setToken($('token-input').value.trim());
      given = true;
    } else if (how === 'forget') {
      setToken('');
    }
    const waiters = tokenWaiters;
    tokenWaiters = [];
    const fromButton = tokenFromButton;
    tokenFromButton = false;
    if (fromButton && (how === 'use' || how === 'forget')) {
      // Changed or forgotten from the Token button: look again with what is held now.
      waiters.forEach((w) => w(false));
      reload();
      live.restart();
      return;
    }
    waiters.forEach((w) => w(given));
    if (given && !live.subscribed) live.restart();
  }

  // ---- confirmation -----------------------------------------------------------

  function confirmAction(text) {
    const dialog = $('confirm-dialog');
    $('confirm-text').textContent = text;
    dialog.returnValue = '';
    dialog.showModal();
    $('confirm-no').focus();
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
    });
  }

  // ---- loading ----------------------------------------------------------------

  /** The message above the rows; `kind` 'error', 'empty' (cleared once rows come)
   * or none. */
  function say(text, kind, action) {
    const m = $('message');
    m.textContent = text || '';
    m.className = 'message' + (kind ? ' ' + kind : '');
    if (action) {
      m.append(' ', h('button', { type: 'button', class: 'again', onclick: action.run }, action.label));
    }
  }
  /** What an action says: in the panel when it is open (it covers the page), and
   * above the rows. */
  function tell(text, kind) {
    say(text, kind);
    const panel = $('detail');
    if (!panel.open) return;
    let line = panel.querySelector('.panel-message');
    if (!line) {
      line = h('p', { class: 'panel-message', role: 'status' });
      $('detail-body').prepend(line);
    }
    line.textContent = text;
    line.className = `panel-message${kind ? ' ' + kind : ''}`;
  }
  function sayIfEmpty() {
    const m = $('message');
    if (state.rows.size) {
      if (m.classList.contains('empty')) say('');
      return;
    }
    const filtered = Object.values(state.filters).some(Boolean);
    say(filtered ? 'No buildset matches these filters.' : 'No buildsets yet: they show here as schedulers submit them.', 'empty');
  }
  function errorText(e) {
    return `${e.message}${e.code && !['UNREACHABLE', 'BAD_RESPONSE'].includes(e.code) ? ` (${e.code})` : ''}`;
  }

  function setBuilders(list) {
    state.builders = new Map(list.map((b) => [b.builderid, b.name]));
    const select = $('f-builder');
    const chosen = state.filters.builder;
    select.replaceChildren(h('option', { value: '' }, 'any'),
      ...[...list].sort((a, b) => a.name.localeCompare(b.name))
        .map((b) => h('option', { value: String(b.builderid) }, b.name)));
    if (chosen && !state.builders.has(Number(chosen))) {
      select.append(h('option', { value: chosen }, `builder ${chosen}`));
    }
    select.value = chosen;
  }

  /** Keeps the later of two states of a buildset: a completion never goes back. */
  function upsert(bs) {
    const had = state.rows.get(bs.bsid);
    if (had && had.complete && !bs.complete) return;
    state.rows.set(bs.bsid, bs);
  }
  // Events that come while a view loads: its answer may predate them.
  let heldEvents = [];
  function ordered() {
    return [...state.rows.values()].sort((a, b) => b.bsid - a.bsid);
  }

  let loadedBeforeSubscribed = false;

  /** The first screen of a view: one query. */
  let loading = false;
  async function reload() {
    const generation = ++state.generation;
    state.loaded = false;
    loading = true;
    heldEvents = [];
    say('Loading…');
    try {
      const { where, complete } = variables();
      const data = await withToken('Board', { where, complete, first: PAGE }, 'This server needs a token to show its buildsets.');
      if (generation !== state.generation) return;
      setBuilders(data.builders);
      state.rows.clear();
      data.buildsets.nodes.forEach(upsert);
      state.hasNextPage = data.buildsets.pageInfo.hasNextPage;
      state.endCursor = data.buildsets.pageInfo.endCursor;
      state.loaded = true;
      const held = heldEvents;
      heldEvents = [];
      held.forEach((bs) => live.apply(bs, false));
      say('');
      sayIfEmpty();
      loadedBeforeSubscribed = !live.subscribed;
      render();
      if (state.detail) openDetail(state.detail, false);
    } catch (e) {
      if (generation !== state.generation) return;
      say(`Cannot load the buildsets: ${errorText(e)}.`, 'error', { label: 'Try again', run: reload });
    } finally {
      if (generation === state.generation) loading = false;
    }
  }

  async function older() {
    if (!state.endCursor) return;
    const generation = state.generation;
    const button = $('older');
    button.disabled = true;
    try {
      const { where, complete } = variables();
      const data = await withToken('Older', { where, complete, first: PAGE, after: state.endCursor }, 'This server needs a token.');
      if (generation !== state.generation) return;
      const first = data.buildsets.nodes[0];
      data.buildsets.nodes.forEach(upsert);
      state.hasNextPage = data.buildsets.pageInfo.hasNextPage;
      state.endCursor = data.buildsets.pageInfo.endCursor || state.endCursor;
      render();
      if (first) focusRow(first.bsid);
    } catch (e) {
      say(`Cannot load older buildsets: ${e.message}`, 'error');
    } finally {
      button.disabled = false;
    }
  }

  /** After the socket was down: what was added meanwhile, and the rows shown
   * incomplete (they may have completed). */
  async function catchUp() {
    if (!state.loaded) return reload();
    const generation = state.generation;
    const { where, complete } = variables();
    // The newest 500 shown incomplete (within any --max-page-size of 500 or more).
    const open = ordered().filter((bs) => !bs.complete).map((bs) => bs.bsid).slice(0, 500);
    const since = state.rows.size ? Math.max(...state.rows.keys()) : 0;
    try {
      const data = await gql('CatchUp', {
        where, complete, since, open, openCount: Math.max(open.length, 1), first: PAGE,
      });
      if (generation !== state.generation) return;
      if (data.fresh.pageInfo.hasNextPage) return reload(); // more than a page missed
      setBuilders(data.builders);
      for (const bs of data.fresh.nodes) {
        upsert(bs);
        markFresh(bs.bsid);
      }
      for (const bs of data.open.nodes) {
        if (belongs(bs)) upsert(bs);
        else state.rows.delete(bs.bsid);
      }
      sayIfEmpty();
      render();
      if (state.detail) openDetail(state.detail, false);
    } catch (e) {
      say(`Cannot catch up: ${errorText(e)}`, 'error');
    }
  }

  function markFresh(bsid) {
    state.fresh.add(bsid);
    setTimeout(() => {
      state.fresh.delete(bsid);
      const row = document.querySelector(`[data-bsid="${bsid}"]`);
      if (row) row.classList.remove('fresh');
    }, 4000);
  }

  // ---- live: graphql-transport-ws over /graphql/ws ------------------------------

  const live = {
    ws: null,
    attempt: 0,
    timer: null,
    countdown: null,
    subscribed: false,
    everUp: false,
    ids: [],
    onReady: null,

    /** The first acknowledgement (or the first failure) lets the first screen load. */
    ready() {
      const f = this.onReady;
      this.onReady = null;
      if (f) f();
    },

    start() {
      // A restart (a new token) during the back-off ends its countdown too.
      clearTimeout(this.timer);
      clearInterval(this.countdown);
      const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql/ws`;
      let ws;
      try {
        ws = new WebSocket(url, 'graphql-transport-ws');
      } catch (e) {
        return this.retry();
      }
      this.ws = ws;
      this.subscribed = false;
      this.show('connecting', 'connecting…');
      ws.onopen = () => {
        ws.send(JSON.stringify({ type: 'connection_init', payload: token ? { Authorization: `Bearer ${token}` } : {} }));
      };
      ws.onmessage = (m) => {
        if (ws !== this.ws) return;
        let msg;
        try {
          msg = JSON.parse(m.data);
        } catch (e) {
          return;
        }
        this.receive(msg);
      };
      ws.onclose = (ev) => {
        if (ws !== this.ws) return;
        this.ws = null;
        this.subscribed = false;
        this.ready();
        if (ev.code === 4401 || ev.code === 4403) {
          this.show('down', 'not live: a token is needed');
          // tokenClosed starts the socket again once a token is given.
          askToken(ev.code === 4403 ? 'The live feed refused this token.' : 'The live feed needs a token.');
          return;
        }
        this.retry();
      };
    },

    restart() {
      const ws = this.ws;
      this.ws = null;
      if (ws) ws.close(1000);
      this.attempt = 0;
      this.start();
    },

    retry() {
      // Back-off: 0.5 s, 1 s, 2 s … at most 15 s, with jitter so that many boards
      // do not come back at the same instant after a restart.
      const delay = Math.min(15000, 500 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
      this.attempt += 1;
      const until = Date.now() + delay;
      const tick = () => {
        const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
        this.show('down', `reconnecting in ${left} s…`);
      };
      tick();
      this.countdown = setInterval(tick, 1000);
      this.timer = setTimeout(() => this.start(), delay);
    },

    receive(msg) {
      switch (msg.type) {
        case 'connection_ack': {
          const again = this.everUp;
          this.attempt = 0;
          this.everUp = true;
          this.show('up', 'live');
          this.subscribe();
          this.ready();
          if (!state.loaded && !loading) {
            // The last load failed (the server was away): load the view now.
            reload();
          } else if (again || loadedBeforeSubscribed) {
            loadedBeforeSubscribed = false;
            catchUp();
          }
          break;
        }
        case 'ping':
          this.send({ type: 'pong' });
          break;
        case 'next':
          this.event(msg.id, msg.payload);
          break;
        case 'error':
          // Shown beside the live state: the message area keeps what the load said.
          if (this.ids.includes(msg.id)) {
            this.show('down', `not live: ${(msg.payload && msg.payload[0] && msg.payload[0].message) || 'refused'}`);
          }
          break;
        default:
          break;
      }
    },

    send(msg) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
    },

    /** (Re)subscribes with the view's filters; the previous view's end. */
    subscribe() {
      for (const id of this.ids) this.send({ id, type: 'complete' });
      const { where } = variables();
      const g = state.generation;
      this.ids = [`added-${g}`, `completed-${g}`];
      this.send({ id: this.ids[0], type: 'subscribe', payload: { query: OPS.Added, operationName: 'Added', variables: { where } } });
      this.send({ id: this.ids[1], type: 'subscribe', payload: { query: OPS.Completed, operationName: 'Completed', variables: { where } } });
      this.subscribed = true;
    },

    event(id, payload) {
      if (!this.ids.includes(id) || !payload) return;
      if (payload.errors && payload.errors.length) {
        this.show('down', `live update failed: ${payload.errors[0].message}`);
        return;
      }
      const data = payload.data || {};
      const bs = data.buildsetAdded || data.buildsetCompleted;
      if (!bs) return;
      if (!state.loaded) {
        heldEvents.push(bs);
        return;
      }
      this.apply(bs, Boolean(data.buildsetAdded));
    },

    /** One buildset from the feed, into the view if it belongs there. */
    apply(bs, added) {
      const oldest = state.rows.size ? Math.min(...state.rows.keys()) : 0;
      if (!belongs(bs)) {
        if (state.rows.delete(bs.bsid)) {
          sayIfEmpty();
          render();
        }
        if (state.detail === bs.bsid) openDetail(bs.bsid, false);
        return;
      }
      // A buildset older than the last page loaded would land out of order.
      if (state.rows.has(bs.bsid) || bs.bsid > oldest || !state.hasNextPage) {
        const isNew = !state.rows.has(bs.bsid);
        upsert(bs);
        if (isNew && added) markFresh(bs.bsid);
        sayIfEmpty();
        render();
        if (state.detail === bs.bsid) openDetail(bs.bsid, false);
      }
    },

    shown: '',
    show(kind, text) {
      const el = $('live');
      el.className = `live ${kind}`;
      const sym = { up: '●', connecting: '◌', down: '○' }[kind] || '';
      el.textContent = `${sym} ${text}`;
      el.title = text;
      // Screen readers hear the state when it changes, not every second of a countdown.
      if (kind !== this.shown) {
        this.shown = kind;
        $('live-said').textContent = { up: 'Live', connecting: 'Connecting', down: 'Not live' }[kind] || text;
      }
    },
  };

  // ---- rendering ----------------------------------------------------------------

  const fmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  function ago(iso) {
    const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (!Number.isFinite(s)) return iso;
    if (s < 5) return 'just now';
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }
  function when(iso) {
    if (!iso) return null;
    return h('time', { datetime: iso, title: `${fmt.format(new Date(iso))} (${iso})` }, ago(iso));
  }
  function refreshTimes() {
    for (const t of document.querySelectorAll('time[datetime]')) t.textContent = ago(t.getAttribute('datetime'));
  }

  function shortRepo(repo) {
    if (!repo) return '';
    const parts = repo.replace(/\.git$/, '').split(/[/:]/).filter(Boolean);
    return parts.slice(-2).join('/');
  }
  function stamp(ss) {
    return h('span', { class: 'stamp', title: `${ss.repository || '(no repository)'} ${ss.branch || '(default branch)'} ${ss.revision || '(latest)'}` },
      ss.repository ? h('span', { class: 'repo' }, shortRepo(ss.repository)) : null,
      h('span', { class: 'branch' }, ss.branch || 'default'),
      ss.revision ? h('code', { class: 'rev' }, ss.revision.slice(0, 8)) : null,
      ss.patch ? h('span', { class: 'patch', title: 'with a patch' }, '+patch') : null);
  }
  function propText(p, most = 2) {
    if (!p) return '';
    const v = p.value;
    if (Array.isArray(v)) {
      const all = v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
      return all.slice(0, most).join(', ') + (all.length > most ? ` +${all.length - most}` : '');
    }
    return typeof v === 'string' ? v : JSON.stringify(v);
  }
  function builderName(id, r) {
    return (r && r.builder && r.builder.name) || state.builders.get(id) || `builder ${id}`;
  }
  function chip(r) {
    const st = requestStatus(r);
    const builds = r.builds || [];
    const last = builds[builds.length - 1];
    return h('span', { class: `chip s-${st.key}`, title: `${builderName(r.builderid, r)}: ${st.key}${last ? `, build #${last.number}` : ''} (request ${r.buildrequestid})` },
      h('span', { class: 'sym', 'aria-hidden': 'true' }, st.sym), ' ',
      builderName(r.builderid, r),
      last ? h('span', { class: 'num' }, ` #${last.number}`) : null,
      h('span', { class: 'sr' }, `: ${st.key}`));
  }

  function cancelButton(bs) {
    if (bs.complete) return null;
    return h('button', {
      type: 'button', class: 'cancel', 'aria-label': `Cancel buildset ${bs.bsid}`,
      onclick: (ev) => { ev.stopPropagation(); cancelBuildset(bs); },
    }, 'Cancel');
  }

  function row(bs) {
    const st = statusOf(bs);
    const owner = propText(bs.owner) || propText(bs.owners);
    const owners = propText(bs.owner, Infinity) || propText(bs.owners, Infinity);
    const scheduler = propText(bs.scheduler);
    return h('article', {
      class: `row item st-${st.key}${state.fresh.has(bs.bsid) ? ' fresh' : ''}`,
      tabindex: 0, 'data-bsid': bs.bsid, 'data-status': st.key,
      'aria-label': `Buildset ${bs.bsid}, ${st.key}: ${bs.reason || ''}`,
      onclick: () => openDetail(bs.bsid, true),
    },
    badge(st),
    h('div', { class: 'body' },
      h('div', { class: 'title' }, h('span', { class: 'bsid' }, `#${bs.bsid}`), ' ', h('span', { class: 'reason' }, bs.reason || '(no reason)')),
      h('div', { class: 'stamps' }, bs.sourcestamps.map(stamp)),
      h('div', { class: 'chips' }, bs.buildrequests.length ? bs.buildrequests.map(chip) : h('span', { class: 'muted' }, 'no builders'))),
    h('div', { class: 'meta' },
      owner ? h('span', { class: 'owner', title: `owner: ${owners}` }, owner) : null,
      scheduler ? h('span', { class: 'scheduler', title: `scheduler: ${scheduler}` }, scheduler) : null,
      h('span', {}, 'submitted ', when(bs.submittedAt)),
      bs.completeAt ? h('span', {}, 'completed ', when(bs.completeAt)) : null,
      cancelButton(bs)));
  }

  function grid(list) {
    const used = new Set();
    list.forEach((bs) => bs.buildrequests.forEach((r) => {
      used.add(r.builderid);
      if (r.builder && !state.builders.has(r.builderid)) state.builders.set(r.builderid, r.builder.name);
    }));
    const columns = [...used].sort((a, b) => builderName(a).localeCompare(builderName(b)));
    return h('div', { class: 'grid-wrap' }, h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Buildset'),
        columns.map((id) => h('th', { scope: 'col', title: builderName(id) }, h('span', {}, builderName(id)))))),
      h('tbody', {}, list.map((bs) => {
        const st = statusOf(bs);
        const byBuilder = new Map(bs.buildrequests.map((r) => [r.builderid, r]));
        return h('tr', {
          class: `item st-${st.key}${state.fresh.has(bs.bsid) ? ' fresh' : ''}`, tabindex: 0, 'data-bsid': bs.bsid, 'data-status': st.key,
          'aria-label': `Buildset ${bs.bsid}, ${st.key}`, onclick: () => openDetail(bs.bsid, true),
        },
        h('th', { scope: 'row' }, badge(st, 'small'), ' ', h('span', { class: 'bsid' }, `#${bs.bsid}`), ' ',
          h('span', { class: 'reason', title: bs.reason || '' }, bs.reason || '')),
        columns.map((id) => {
          const r = byBuilder.get(id);
          if (!r) return h('td', { class: 'empty' }, '');
          const rs = requestStatus(r);
          const builds = r.builds || [];
          const last = builds[builds.length - 1];
          return h('td', { class: `cell s-${rs.key}`, title: `${builderName(id)}: ${rs.key}` },
            h('span', { class: 'sym', 'aria-hidden': 'true' }, rs.sym),
            last ? ` #${last.number}` : '', h('span', { class: 'sr' }, ` ${rs.key}`));
        }));
      }))));
  }

  function render() {
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('[data-bsid]');
    const focusBsid = focused && $('rows').contains(focused) ? Number(focused.dataset.bsid) : null;
    const list = ordered();
    const rows = $('rows');
    if (state.view === 'grid') rows.replaceChildren(list.length ? grid(list) : '');
    else rows.replaceChildren(...list.map(row));
    rows.className = state.view;
    $('older').hidden = !state.hasNextPage;
    $('count').textContent = list.length ? `${list.length} shown${state.hasNextPage ? ', more older' : ''}` : '';
    $('view-list').setAttribute('aria-pressed', String(state.view === 'list'));
    $('view-grid').setAttribute('aria-pressed', String(state.view === 'grid'));
    if (focusBsid) focusRow(focusBsid);
  }

  function focusRow(bsid) {
    const el = $('rows').querySelector(`[data-bsid="${bsid}"]`);
    if (el) el.focus();
    return Boolean(el);
  }

  // ---- the detail panel ---------------------------------------------------------

  let detailToken = 0;
  let returnFocus = null;

  /** The panel is a modal dialog: the page under it is inert (Tab and `/` stay in
   * it), Esc or a click beside it closes it, and focus goes back to the row. */
  async function openDetail(bsid, fromUser) {
    const panel = $('detail');
    if (fromUser) {
      returnFocus = bsid;
      state.detail = bsid;
      writeAddress(true);
      openedForward = true;
    }
    const mine = ++detailToken;
    const body = $('detail-body');
    if (!panel.open || fromUser) {
      body.replaceChildren(closeButton(), h('p', {}, `Loading buildset #${bsid}…`));
      if (!panel.open) panel.showModal();
    }
    try {
      const data = await withToken('Detail', { bsid }, 'This server needs a token.', true);
      if (mine !== detailToken || state.detail !== bsid) return;
      const bs = data.buildset;
      const hadFocus = panel.contains(document.activeElement);
      body.replaceChildren();
      append(body, bs ? detailOf(bs) : [closeButton(), h('h2', { id: 'detail-title' }, `Buildset #${bsid}`), h('p', {}, 'No such buildset.')]);
      if (hadFocus && !panel.contains(document.activeElement)) body.querySelector('.close').focus();
    } catch (e) {
      if (mine !== detailToken) return;
      body.replaceChildren(closeButton(), h('h2', { id: 'detail-title' }, `Buildset #${bsid}`), h('p', { class: 'error' }, `Cannot load it: ${errorText(e)}`));
    }
  }
  function closeDetail() {
    const panel = $('detail');
    if (panel.open) panel.close();
  }
  let closingFromAddress = false;
  let openedForward = false;
  function detailClosed() {
    state.detail = null;
    detailToken++;
    if (!closingFromAddress) {
      // Opening it added an entry to the history: closing takes it back, so that
      // Back after Esc does not open it again.
      if (openedForward) history.back();
      else writeAddress(false);
    }
    closingFromAddress = false;
    openedForward = false;
    if (!returnFocus || !focusRow(returnFocus)) $('rows').focus();
  }
  function closeButton() {
    return h('button', { type: 'button', class: 'close', 'aria-label': 'Close the details', onclick: closeDetail }, '×');
  }
  function field(name, value) {
    return value === null || value === undefined || value === '' ? null : [h('dt', {}, name), h('dd', {}, value)];
  }

  function detailOf(bs) {
    const st = statusOf(bs);
    return [
      closeButton(),
      h('h2', { id: 'detail-title' }, `Buildset #${bs.bsid} `, badge(st)),
      h('p', { class: 'reason' }, bs.reason || '(no reason)'),
      h('dl', { class: 'facts' },
        field('Submitted', when(bs.submittedAt)),
        field('Completed', when(bs.completeAt)),
        field('External id', bs.externalIdstring),
        field('Parent build', bs.parentBuildid !== null ? `${bs.parentBuildid}${bs.parentRelationship ? ` (${bs.parentRelationship})` : ''}` : null),
        field('Rebuilds build', bs.rebuiltBuildid),
      ),
      bs.complete ? null : h('p', {}, cancelButton(bs)),
      h('h3', {}, 'Sourcestamps'),
      h('ol', { class: 'stamps-detail' }, bs.sourcestamps.map((ss) => h('li', {},
        h('dl', { class: 'facts' },
          field('Repository', ss.repository || '(none)'),
          field('Branch', ss.branch === null ? '(default)' : ss.branch),
          field('Revision', ss.revision === null ? '(latest)' : h('code', {}, ss.revision)),
          field('Project', ss.project),
          field('Codebase', ss.codebase),
          field('Sourcestamp', String(ss.ssid))),
        ss.patch ? h('details', { class: 'patch-body' },
          h('summary', {}, `Patch #${ss.patch.patchid}, level ${ss.patch.level}${ss.patch.subdir ? ` in ${ss.patch.subdir}` : ''}${ss.patch.author ? ` by ${ss.patch.author}` : ''}${ss.patch.comment ? `: ${ss.patch.comment}` : ''}`),
          h('pre', {}, ss.patch.body)) : null))),
      h('h3', {}, `Build requests (${bs.buildrequests.length})`),
      bs.buildrequests.length ? h('table', { class: 'requests' },
        h('thead', {}, h('tr', {}, ['Builder', 'State', 'Builds'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, bs.buildrequests.map((r) => {
          const rs = requestStatus(r);
          return h('tr', { 'data-buildrequestid': r.buildrequestid },
            h('td', {}, builderName(r.builderid, r), h('span', { class: 'muted' }, ` request ${r.buildrequestid}`)),
            h('td', {}, badge(rs, 'small'), r.completeAt ? h('div', { class: 'muted' }, when(r.completeAt)) : null,
              r.complete ? null : h('div', {}, h('button', {
                type: 'button', class: 'cancel', 'aria-label': `Cancel build request ${r.buildrequestid}`,
                onclick: () => cancelRequest(bs, r),
              }, 'Cancel'))),
            h('td', {}, (r.builds || []).length
              ? h('ul', { class: 'builds' }, r.builds.map((b) => h('li', {}, `#${b.number} `, h('span', { class: 'muted' }, b.stateString))))
              : h('span', { class: 'muted', title: r.builds === null ? 'a standalone database has no builds' : '' }, r.builds === null ? '—' : 'none yet')),
);
        }))) : h('p', { class: 'muted' }, 'None: it completed when it was submitted.'),
      h('h3', {}, `Properties (${bs.properties.length})`),
      bs.properties.length ? h('table', { class: 'props' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Value (JSON)'), h('th', { scope: 'col' }, 'Source'))),
        h('tbody', {}, bs.properties.map((p) => h('tr', {},
          h('th', { scope: 'row' }, p.name),
          h('td', {}, h('pre', { class: 'json' }, exactJson(p.value))),
          h('td', {}, p.source))))) : h('p', { class: 'muted' }, 'None.'),
    ];
  }

  // ---- cancelling -----------------------------------------------------------------

  async function cancelBuildset(bs) {
    if (!(await confirmAction(`Cancel buildset #${bs.bsid}, “${(bs.reason || 'no reason').slice(0, 200)}”? Every unfinished build request of it is cancelled.`))) return;
    try {
      const data = await withToken('CancelBuildset', { bsid: bs.bsid }, 'Cancelling needs the write token.');
      upsert(data.cancelBuildset);
      render();
      tell(`Buildset #${bs.bsid} cancelled.`, 'done');
      if (state.detail === bs.bsid) openDetail(bs.bsid, false);
    } catch (e) {
      tell(`Cannot cancel buildset #${bs.bsid}: ${errorText(e)}`, 'error');
    }
  }
  async function cancelRequest(bs, r) {
    if (!(await confirmAction(`Cancel build request ${r.buildrequestid} of buildset #${bs.bsid} on ${builderName(r.builderid, r)}?`))) return;
    try {
      const data = await withToken('CancelBuildRequest', { buildrequestid: r.buildrequestid }, 'Cancelling needs the write token.');
      upsert(data.cancelBuildRequest.buildset);
      render();
      tell(`Build request ${r.buildrequestid} cancelled.`, 'done');
      openDetail(bs.bsid, false);
    } catch (e) {
      tell(`Cannot cancel build request ${r.buildrequestid}: ${errorText(e)}`, 'error');
    }
  }

  // ---- wiring ---------------------------------------------------------------------

  function showFilters() {
    $('f-branch').value = state.filters.branch;
    $('f-repository').value = state.filters.repository;
    $('f-builder').value = state.filters.builder;
    $('f-complete').value = state.filters.complete;
    $('f-result').value = state.filters.result;
  }
  function applyFilters(changed) {
    const f = {
      branch: $('f-branch').value.trim(),
      repository: $('f-repository').value.trim(),
      builder: $('f-builder').value,
      complete: $('f-complete').value,
      result: $('f-result').value,
    };
    // A result is only a complete buildset's: choosing one makes the state
    // "complete", and choosing another state drops the result.
    if (changed === 'f-complete' && f.complete !== 'true') f.result = '';
    else if (f.result) f.complete = 'true';
    if (JSON.stringify(f) === JSON.stringify(state.filters)) {
      showFilters();
      return;
    }
    state.filters = f;
    showFilters();
    writeAddress(true);
    newView();
  }
  function newView() {
    reload();
    if (live.ws && live.ws.readyState === WebSocket.OPEN && live.subscribed) live.subscribe();
  }
  function setView(view) {
    if (state.view === view) return;
    state.view = view;
    writeAddress(true);
    render();
  }

  function moveFocus(step) {
    const items = [...$('rows').querySelectorAll('.item')];
    if (!items.length) return;
    const at = items.indexOf(document.activeElement);
    const next = at < 0 ? (step > 0 ? 0 : items.length - 1) : Math.min(items.length - 1, Math.max(0, at + step));
    items[next].focus();
    items[next].scrollIntoView({ block: 'nearest' });
  }

  function keys(ev) {
    if (ev.defaultPrevented || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (document.querySelector('dialog[open]')) return; // the dialog's own keys
    const typing = ev.target.closest && ev.target.closest('input, select, textarea');
    if (ev.key === 'Escape') {
      if (typing) ev.target.blur();
      return;
    }
    if (typing) return;
    const item = ev.target.closest && ev.target.closest('.item');
    if (ev.key === 'j' || ev.key === 'ArrowDown') {
      ev.preventDefault();
      moveFocus(1);
    } else if (ev.key === 'k' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      moveFocus(-1);
    } else if ((ev.key === 'Enter' || ev.key === ' ') && item && ev.target === item) {
      ev.preventDefault();
      openDetail(Number(item.dataset.bsid), true);
    } else if (ev.key === '/') {
      ev.preventDefault();
      $('f-branch').focus();
    } else if (ev.key === 'g') {
      setView(state.view === 'grid' ? 'list' : 'grid');
    }
  }

  function init() {
    readAddress();
    writeAddress(false); // what it could not read goes out of the address
    showFilters();
    setToken(token);
    $('filters').addEventListener('submit', (ev) => {
      ev.preventDefault();
      applyFilters('submit');
    });
    for (const id of ['f-builder', 'f-complete', 'f-result', 'f-branch', 'f-repository']) {
      $(id).addEventListener('change', () => applyFilters(id));
    }
    $('f-clear').addEventListener('click', () => {
      for (const k of Object.keys(state.filters)) state.filters[k] = '';
      showFilters();
      writeAddress(true);
      newView();
    });
    $('view-list').addEventListener('click', () => setView('list'));
    $('view-grid').addEventListener('click', () => setView('grid'));
    $('older').addEventListener('click', older);
    $('token-button').addEventListener('click', tokenButton);
    $('token-dialog').addEventListener('close', tokenClosed);
    document.addEventListener('keydown', keys);
    window.addEventListener('popstate', () => {
      const before = JSON.stringify(state.filters);
      readAddress();
      showFilters();
      if (JSON.stringify(state.filters) !== before) newView();
      else render();
      if (state.detail) openDetail(state.detail, false);
      else if ($('detail').open) {
        closingFromAddress = true;
        $('detail').close();
      }
    });
    $('detail').addEventListener('close', detailClosed);
    // A click on the backdrop lands on the dialog itself; one on its content does not.
    $('detail').addEventListener('click', (ev) => {
      if (ev.target === $('detail')) closeDetail();
    });
    setInterval(refreshTimes, 15000);
    // One socket and one query for the first screen. The query waits for the socket's
    // acknowledgement (about 50 ms in Chromium; at most 400 ms, for a proxy that holds
    // WebSockets), so that the subscriptions are on before the page is read and
    // nothing falls between the two; past the bound, a catch-up closes the gap.
    let started = false;
    const first = () => {
      if (!started) {
        started = true;
        reload();
      }
    };
    live.onReady = first;
    setTimeout(first, 400);
    live.start();
  }

  init();
})();
