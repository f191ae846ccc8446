// dtx dashboard: list, detail and needs-attention views over the
// coordinator's HTTP API, kept live by GET /v1/events (Server-Sent Events).
// Routes live in the URL fragment: #/?status=&pattern=&range=&q=, #/tx/<gid>,
// #/attention, #/flows, #/flow/<correlation id>. Flows (choreographed
// transactions, GET /v1/flows) are polled: they are not on the event stream.
'use strict';

(function () {
  const D = window.dtxDiagram;
  const API = '../v1'; // relative: the dashboard is served at <prefix>/ui/
  const TOKEN_KEY = 'dtx.token';
  const ATTN_KEY = 'dtx.attention';
  const NOT_FOUND_TYPE = 'urn:dtx:problem:transaction-not-found';
  const STATUSES = ['running', 'compensating', 'succeeded', 'failed'];
  const RANGES = { '': 'any time', '5m': 'last 5 minutes', '1h': 'last hour', '24h': 'last 24 hours', '7d': 'last 7 days' };
  const RANGE_MS = { '5m': 300e3, '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };
  const PAGE = 100;

  const viewEl = document.getElementById('view');

  // ---- small DOM helpers (textContent only: API data is never parsed as HTML)

  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (v === true) e.setAttribute(k, '');
      else e.setAttribute(k, String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      e.appendChild(typeof kid === 'string' || typeof kid === 'number' ? document.createTextNode(String(kid)) : kid);
    }
    return e;
  }

  function statusBadge(s) {
    return h('span', { class: 'status ' + s, text: s });
  }

  function patternBadge(p) {
    return h('span', { class: 'pattern', text: p });
  }

  /**
   * reconcile makes parent's children the nodes for items, in order, keeping
   * the node of an item whose key and signature are unchanged (so a live
   * refresh does not replace what the user is pointing at or clicking) and
   * making the others with make. update, if given, refreshes the volatile
   * parts of every node. It returns the keys whose nodes were made anew.
   */
  function reconcile(parent, items, keyOf, sigOf, make, update) {
    const old = parent.keyed || new Map();
    const next = new Map();
    const made = [];
    const nodes = items.map((it) => {
      const k = keyOf(it);
      const sig = sigOf(it);
      const e = old.get(k);
      let node;
      if (e && e.sig === sig) {
        node = e.node;
      } else {
        node = make(it);
        made.push(k);
      }
      if (update) update(node, it);
      next.set(k, { sig, node });
      return node;
    });
    parent.keyed = next;
    const kids = parent.children;
    if (nodes.length !== kids.length || nodes.some((n, i) => kids[i] !== n)) parent.replaceChildren(...nodes);
    return made;
  }

  function txLink(gid) {
    return h('a', { href: '#/tx/' + encodeURIComponent(gid), class: 'mono gid', text: gid });
  }

  function flowLink(id) {
    return h('a', { href: '#/flow/' + encodeURIComponent(id), class: 'mono flow-id', text: id });
  }

  function kindBadge(type) {
    return h('span', { class: 'ev ' + D.eventKind(type), text: type });
  }

  function ago(t) {
    const s = (Date.now() - Date.parse(t)) / 1000;
    if (s < 60) return Math.max(0, Math.round(s)) + 's ago';
    if (s < 3600) return Math.floor(s / 60) + 'm ago';
    if (s < 86400) return Math.floor(s / 3600) + 'h ago';
    return new Date(t).toLocaleDateString();
  }

  function terminal(s) {
    return s === 'succeeded' || s === 'failed';
  }

  /** How long a transaction took, or has been in flight so far. */
  function ageMs(tx) {
    const end = terminal(tx.status) ? Date.parse(tx.updated_at) : Date.now();
    return Math.max(0, end - Date.parse(tx.created_at));
  }

  // ---- API

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && problem.detail) || ('HTTP ' + status));
      this.status = status;
      this.problem = problem || {};
    }
  }

  // With an admin token set, the coordinator shows participants' error
  // details only to requests carrying it ("hidden: admin token required"
  // otherwise): reads send the token entered in an action dialog, if any.
  async function getJSON(path) {
    const headers = { Accept: 'application/json' };
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const r = await fetch(API + path, { headers });
    const body = await r.json().catch(() => null);
    if (!r.ok) throw new ApiError(r.status, body);
    return body;
  }

  function listQuery(f) {
    const q = new URLSearchParams();
    q.set('limit', String(f.limit || PAGE));
    if (f.status) q.set('status', f.status);
    if (f.pattern) q.set('pattern', f.pattern);
    if (f.q) q.set('q', f.q);
    if (f.range && RANGE_MS[f.range]) q.set('since', new Date(Date.now() - RANGE_MS[f.range]).toISOString());
    if (f.before) q.set('before', f.before);
    return '/transactions?' + q.toString();
  }

  /**
   * postAction asks the coordinator to retry or abort gid and returns
   * {ok, message}; it never throws.
   */
  async function postAction(kind, gid, token, reason) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    let body;
    if (kind === 'abort' && reason) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify({ reason });
    }
    let r;
    try {
      r = await fetch(API + '/transactions/' + encodeURIComponent(gid) + '/' + kind, { method: 'POST', headers, body });
    } catch (e) {
      return { ok: false, message: 'The coordinator could not be reached: ' + e.message };
    }
    const p = (await r.json().catch(() => null)) || {};
    const detail = p.detail ? ' (' + p.detail + ')' : '';
    if (r.ok) {
      return { ok: true, message: kind === 'abort' ? 'Abort accepted: the transaction is being compensated.' : 'Retry accepted: the pending calls are being made again now.' };
    }
    switch (r.status) {
      case 401:
        return { ok: false, message: 'Not authorised (401): this coordinator wants an admin token. Paste it in the dialog and try again.' + detail };
      case 403:
        if (p.type === 'urn:dtx:problem:cross-site') {
          return { ok: false, message: 'Forbidden (403): the coordinator refused a request from another site.' + detail };
        }
        return { ok: false, message: 'Forbidden (403): the token was refused for this action.' + detail };
      case 404:
        if (p.type === NOT_FOUND_TYPE) return { ok: false, message: 'Not found (404): the coordinator does not know this transaction.' };
        return { ok: false, message: 'Not available (404): this coordinator does not offer "' + kind + '"; it may be an older version.' + detail };
      case 409:
        return { ok: false, message: 'Refused (409)' + (p.detail ? ': ' + p.detail : '') };
      default:
        return { ok: false, message: 'Failed (' + r.status + ')' + detail };
    }
  }

  // ---- live updates

  let current = null; // the view on screen: {onHello, onTx, onCounts, dispose}
  const liveEl = document.getElementById('live');

  function setLive(on, text) {
    liveEl.classList.toggle('on', on);
    liveEl.classList.toggle('off', !on);
    liveEl.textContent = text;
  }

  function connectLive() {
    const es = new EventSource(API + '/events');
    es.addEventListener('hello', (e) => {
      setLive(true, 'live');
      refreshBadge();
      const d = JSON.parse(e.data);
      if (current && current.onHello) current.onHello(d.counts || {});
    });
    es.addEventListener('tx', (e) => {
      const c = JSON.parse(e.data);
      if (current && current.onTx) current.onTx(c);
      refreshBadge();
    });
    es.addEventListener('counts', (e) => {
      const d = JSON.parse(e.data);
      if (current && current.onCounts) current.onCounts(d.counts || {});
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        // Refused (e.g. 503 while shutting down): the browser gives up, we do not.
        setLive(false, 'offline — retrying');
        setTimeout(connectLive, 5000);
      } else {
        setLive(false, 'reconnecting…');
      }
    };
  }

  /**
   * throttle runs fn at most once per gap ms, trailing, and never while its
   * previous run (a promise) is still pending: a slow coordinator must not
   * pile up requests, which would also starve the browser's few
   * connections per host and hold up an operator's action.
   */
  function throttle(fn, gap) {
    let timer = null;
    let last = 0;
    let running = false;
    let again = false;
    const t = () => {
      if (running) { again = true; return; }
      if (timer) return;
      timer = setTimeout(async () => {
        timer = null;
        last = Date.now();
        running = true;
        try { await fn(); } catch (e) { /* reported by fn */ }
        running = false;
        if (again) { again = false; t(); }
      }, Math.max(150, gap - (Date.now() - last)));
    };
    t.cancel = () => { clearTimeout(timer); timer = null; again = false; };
    return t;
  }

  // ---- the confirmation dialog

  const dlg = document.getElementById('confirm');

  /**
   * confirmAction shows the dialog for kind ('retry' or 'abort') and
   * resolves to {token, reason} or null when cancelled.
   */
  function confirmAction(kind, gid) {
    const abort = kind === 'abort';
    document.getElementById('confirm-title').textContent = abort ? 'Abort (compensate)?' : 'Retry now?';
    document.getElementById('confirm-text').textContent = abort
      ? 'The forward phase stops and every step that ran or may have run is compensated. This cannot be undone. A finished transaction, or a saga past its pivot, cannot be aborted.'
      : 'The pending calls of this transaction are made again at once instead of after their backoff. Participants must be idempotent (the dtx barrier makes them so).';
    document.getElementById('confirm-gid').textContent = gid;
    document.getElementById('confirm-reason-row').classList.toggle('hidden', !abort);
    document.getElementById('confirm-reason').value = '';
    document.getElementById('confirm-token').value = localStorage.getItem(TOKEN_KEY) || '';
    const ok = document.getElementById('confirm-ok');
    ok.textContent = abort ? 'Abort transaction' : 'Retry now';
    ok.className = abort ? 'danger' : 'primary';
    dlg.returnValue = '';
    if (answer) answer(null); // a dialog still waiting is cancelled
    return new Promise((resolve) => {
      answer = resolve;
      dlg.showModal();
    });
  }

  // answer resolves the open dialog's promise. The close event is fired
  // in a later task: when the dialog was opened again before it ran (a
  // cancel, then a click on an action at once), it belongs to the closed
  // dialog, and the open one keeps waiting for its own.
  let answer = null;
  dlg.addEventListener('close', () => {
    if (dlg.open || !answer) return;
    const resolve = answer;
    answer = null;
    if (dlg.returnValue !== 'ok') return resolve(null);
    const token = document.getElementById('confirm-token').value.trim();
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
    resolve({ token, reason: document.getElementById('confirm-reason').value.trim() });
  });

  // ---- list view

  function listView(self, params) {
    const f = {
      status: params.get('status') || '', pattern: params.get('pattern') || '',
      range: params.get('range') || '', q: params.get('q') || '',
    };
    let before = params.get('before') || '';
    const newer = []; // cursors of the pages before this one
    let counts = {};

    const countsEl = h('div', { class: 'counts', id: 'counts' });
    const errEl = h('div', { class: 'error-box hidden', id: 'list-error' });
    const flowHint = h('div', { class: 'flow-hint hidden', id: 'flow-hint' });
    const tbody = h('tbody', { id: 'tx-rows' });
    const info = h('span', { class: 'muted', id: 'list-info' });
    const btnNewer = h('button', { id: 'newer', onclick: () => { before = newer.pop() || ''; load(); } }, '← Newer');
    const btnOlder = h('button', { id: 'older' }, 'Older →');

    const sel = (id, value, options, label) => h('label', {}, label,
      h('select', { id, onchange: (e) => { f[id.replace('f-', '')] = e.target.value; filtersChanged(); } },
        Object.entries(options).map(([v, t]) => h('option', { value: v, selected: v === value }, t))));
    const search = h('input', { type: 'search', id: 'f-q', value: f.q, placeholder: 'gid or order id, e.g. order-42', autocomplete: 'off' });
    let searchTimer = null;
    search.addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => { f.q = search.value.trim(); filtersChanged(); }, 300);
    });

    viewEl.replaceChildren(
      h('h1', {}, 'Transactions'),
      countsEl,
      h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); f.q = search.value.trim(); filtersChanged(); } },
        sel('f-pattern', f.pattern, { '': 'all patterns', saga: 'saga', tcc: 'TCC', xa: 'XA' }, 'Pattern'),
        sel('f-status', f.status, Object.assign({ '': 'any status' }, Object.fromEntries(STATUSES.map((s) => [s, s]))), 'Status'),
        sel('f-range', f.range, RANGES, 'Created'),
        h('label', {}, 'Search', search),
        h('button', { type: 'button', id: 'f-clear', onclick: () => { location.hash = '#/'; } }, 'Clear')),
      errEl,
      flowHint,
      h('table', { class: 'tx', id: 'tx-table' },
        h('thead', {}, h('tr', {}, ['Transaction', 'Pattern', 'Status', 'Created', 'Duration', 'Reason'].map((t) => h('th', { text: t })))),
        tbody),
      h('div', { class: 'pager' }, btnNewer, btnOlder, info));

    function filtersChanged() {
      before = '';
      newer.length = 0;
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
      const hash = '#/' + (q.toString() ? '?' + q.toString() : '');
      history.replaceState(null, '', hash);
      load();
    }

    // One chip per status (and all), made once and updated in place.
    const chips = new Map(['', ...STATUSES].map((s) => [s, h('button', {
      type: 'button', class: 'count ' + (s || 'all'), 'data-status': s || 'all',
      onclick: () => { f.status = f.status === s ? '' : s; document.getElementById('f-status').value = f.status; filtersChanged(); },
    }, h('b', { text: '0' }), h('span', { text: s || 'all' }))]));
    countsEl.replaceChildren(...chips.values());

    function renderCounts() {
      const total = STATUSES.reduce((n, s) => n + (counts[s] || 0), 0);
      for (const [s, chip] of chips) {
        chip.firstChild.textContent = String(s ? counts[s] || 0 : total);
        chip.classList.toggle('sel', f.status === s);
      }
    }

    async function load(live) {
      if (!live) hintFlow();
      let res;
      try {
        res = await getJSON(listQuery(Object.assign({ before }, f)));
      } catch (e) {
        errEl.textContent = 'Could not load transactions: ' + e.message;
        errEl.classList.remove('hidden');
        return;
      }
      if (current !== self) return; // navigated away meanwhile
      errEl.classList.add('hidden');
      counts = res.counts || {};
      renderCounts();
      const txs = res.transactions || [];
      if (txs.length === 0) {
        tbody.keyed = null;
        tbody.replaceChildren(h('tr', {}, h('td', { colspan: 6, class: 'muted', text: 'No transaction matches.' })));
      } else {
        // A row is remade only when its transaction changed; ages tick in place.
        reconcile(tbody, txs, (tx) => tx.gid, (tx) => tx.status + '|' + (tx.reason || ''), (tx) => h('tr', { class: live ? 'flash' : null, 'data-gid': tx.gid, 'data-status': tx.status },
          h('td', {}, txLink(tx.gid)),
          h('td', {}, patternBadge(tx.pattern)),
          h('td', {}, statusBadge(tx.status)),
          h('td', { class: 'num age', title: new Date(tx.created_at).toLocaleString() }),
          h('td', { class: 'num took' }),
          h('td', { class: 'reason', title: tx.reason || '' }, tx.reason || '')), (tr, tx) => {
          tr.cells[3].textContent = ago(tx.created_at);
          tr.cells[4].textContent = D.fmtMs(ageMs(tx)) + (terminal(tx.status) ? '' : ' …');
        });
      }
      info.textContent = txs.length + ' shown' + (before ? ' (older page)' : ', newest first') + '.';
      btnNewer.disabled = !before;
      btnOlder.disabled = txs.length < PAGE;
      btnOlder.onclick = () => {
        newer.push(before);
        before = txs[txs.length - 1].created_at;
        load();
      };
    }

    // A search for an order (gid or id) that was choreographed has no
    // transaction but may have a recorded flow: offer it.
    let hinted = '';
    async function hintFlow() {
      const q = f.q;
      if (q === hinted) return;
      hinted = q;
      flowHint.classList.add('hidden');
      if (!q) return;
      for (const id of /^\d+$/.test(q) ? ['order-' + q, q] : [q]) {
        let fl;
        try {
          fl = await getJSON('/flows/' + encodeURIComponent(id));
        } catch (e) {
          continue; // no such flow, or no flows recorded here
        }
        if (current !== self || f.q !== q) return;
        const evs = fl.events || [];
        const lastType = evs.length ? evs[evs.length - 1].type : '';
        flowHint.replaceChildren('Choreographed flow ', flowLink(id), ' — ' + evs.length + ' event(s)' + (lastType ? ', last ' + lastType : '') + '; choreography has no coordinator record.');
        flowHint.classList.remove('hidden');
        return;
      }
    }

    const reload = throttle(() => load(true), 1000);
    Object.assign(self, {
      onHello: (c) => { counts = c; renderCounts(); reload(); },
      onTx: () => { if (!before) reload(); },
      onCounts: (c) => { counts = c; renderCounts(); },
      dispose: () => { reload.cancel(); clearTimeout(searchTimer); },
    });
    load();
  }

  // ---- detail view

  /** opState describes one operation of a branch for people. */
  function opState(d, state, attempts) {
    const tries = attempts === 1 ? ' (1 call)' : attempts ? ' (' + attempts + ' calls)' : '';
    if (state === 'pending' && terminal(d.status)) return (attempts ? 'no certain outcome' : 'not run') + tries;
    return state + tries;
  }

  function detailView(self, gid) {
    const resultEl = h('div', { id: 'action-result', class: 'hidden' });
    const content = h('div', { id: 'detail' }, h('p', { class: 'muted', text: 'Loading…' }));
    viewEl.replaceChildren(h('p', {}, h('a', { href: '#/' }, '← all transactions')), resultEl, content);
    let busy = false;
    let allCalls = false; // unfold runs of identical retries
    let last = null; // the detail on screen

    // The page is made once and updated in place on every refresh, so a
    // live update never replaces a button under the pointer.
    const statusEl = h('span', { class: 'status' });
    const patternEl = h('span', { class: 'pattern' });
    const retry = h('button', { type: 'button', id: 'btn-retry', onclick: () => act('retry') }, '↻ Retry now');
    const abort = h('button', { type: 'button', id: 'btn-abort', class: 'danger', onclick: () => act('abort') }, '✕ Abort');
    const reasonLabel = h('b');
    const reasonText = h('span');
    const reasonEl = h('div', { class: 'reason-banner hidden', id: 'tx-reason' }, reasonLabel, reasonText);
    const factsEl = h('div', { class: 'facts panel' });
    const showAll = h('input', { type: 'checkbox', id: 'show-all', onchange: (e) => { allCalls = e.target.checked; if (last) render(last); } });
    const diagramEl = h('div', { id: 'diagram' });
    const branchRows = h('tbody');
    const raw = h('pre');
    const page = [
      h('div', { class: 'detail-head' }, h('h1', { id: 'tx-gid', text: gid }), statusEl, patternEl, h('div', { class: 'actions' }, retry, abort)),
      reasonEl,
      factsEl,
      h('h2', {}, 'Sequence diagram ', h('label', { class: 'show-all' }, showAll, ' show every call')),
      h('div', { class: 'panel diagram-wrap' }, diagramEl,
        h('div', { class: 'legend' },
          h('span', {}, h('i', { class: 'leg-call' }), 'call'),
          h('span', {}, h('i', { class: 'leg-comp' }), 'compensation / cancel'),
          h('span', {}, h('i', { class: 'dash leg-success' }), 'success'),
          h('span', {}, h('i', { class: 'dash leg-failure' }), 'failure (definite no)'),
          h('span', {}, h('i', { class: 'dash leg-unknown' }), 'unknown (timeout, 5xx: retried)'),
          h('span', {}, h('i', { class: 'dash leg-pending' }), 'awaiting retry'))),
      h('h2', {}, 'Branches'),
      h('table', { class: 'tx', id: 'branches' },
        h('thead', {}, h('tr', {}, ['#', 'Step', 'Participant', 'Forward', 'Undo', 'Last error'].map((t) => h('th', { text: t })))),
        branchRows),
      h('details', { class: 'raw' }, h('summary', {}, 'Raw JSON (spec, branches, history)'), raw),
    ];

    async function act(kind) {
      const c = await confirmAction(kind, gid);
      if (!c) return;
      busy = true;
      if (last) render(last);
      const r = await postAction(kind, gid, c.token, c.reason);
      busy = false;
      if (last && current === self) render(last); // buttons usable again at once
      resultEl.className = r.ok ? 'ok-box' : 'error-box';
      resultEl.dataset.ok = String(r.ok);
      resultEl.textContent = r.message;
      load();
    }

    function render(d) {
      last = d;
      if (content.firstChild !== page[0]) content.replaceChildren(...page);
      const inflight = !terminal(d.status);
      statusEl.className = 'status ' + d.status;
      statusEl.textContent = d.status;
      patternEl.textContent = d.pattern;
      retry.disabled = !inflight || busy;
      retry.title = inflight ? 'Call the pending operations again now' : 'finished: nothing to retry';
      abort.disabled = d.status !== 'running' || busy;
      abort.title = d.status === 'running' ? 'Compensate this transaction' : 'only a running transaction can be aborted';
      reasonEl.classList.toggle('hidden', !d.reason);
      reasonLabel.textContent = d.status === 'failed' ? 'Failed: ' : 'Reason: ';
      reasonText.textContent = d.reason || '';

      const model = D.model(d);
      const calls = (d.events || []).filter((e) => e.branch >= 0);
      const fails = calls.filter((e) => e.outcome !== 'success').length;
      const facts = [
        ['Pattern', d.pattern.toUpperCase()],
        ['Created', new Date(d.created_at).toLocaleString()],
        ['Updated', new Date(d.updated_at).toLocaleString()],
        [inflight ? 'In flight for' : 'Took', D.fmtMs(ageMs(d))],
        ['Branch calls', calls.length + (fails ? ' (' + fails + ' not successful)' : '')],
        ['Deadline', d.deadline ? new Date(d.deadline).toLocaleString() : '—'],
        ['Lease', d.lease_owner ? d.lease_owner : '—'],
      ];
      factsEl.replaceChildren(...facts.map(([k, v]) => h('div', {}, h('span', { text: k }), v)));
      showAll.checked = allCalls;
      diagramEl.replaceChildren(D.render(d, { all: allCalls }));
      branchRows.replaceChildren(...(d.branches || []).map((b) => {
        const st = (d.spec && d.spec.steps && d.spec.steps[b.index]) || {};
        const p = model.parts[model.stepPart[b.index]] || { label: '' };
        return h('tr', {},
          h('td', { class: 'num', text: String(b.index) }),
          h('td', {}, h('b', { text: b.name })),
          h('td', { title: p.key || '', text: p.label }),
          h('td', { class: 'bs-' + b.action }, (st.action ? (st.action_op || 'action') + ': ' : 'no action: ') + opState(d, b.action, b.action_attempts)),
          h('td', { class: 'bs-' + b.compensate }, (st.compensate ? (st.compensate_op || 'compensate') + ': ' : 'no undo: ') + opState(d, b.compensate, b.compensate_attempts)),
          h('td', { class: 'reason', title: b.last_error || '', text: b.last_error || '' }));
      }));
      raw.textContent = JSON.stringify(d, null, 2);
    }

    async function load() {
      try {
        const d = await getJSON('/transactions/' + encodeURIComponent(gid));
        if (current !== self) return;
        render(d);
      } catch (e) {
        if (current !== self) return;
        last = null;
        const msg = e.status === 404 ? 'No transaction ' + gid + ' on this coordinator.' : 'Could not load ' + gid + ': ' + e.message;
        content.replaceChildren(h('div', { class: 'error-box', id: 'detail-error', text: msg }));
      }
    }

    const reload = throttle(load, 500);
    Object.assign(self, {
      onHello: () => reload(),
      onTx: (c) => { if (c.gid === gid) reload(); },
      dispose: () => reload.cancel(),
    });
    load();
  }

  // ---- flows (choreography)

  const FLOWS_POLL = 2000;
  const NO_FLOWS = 'This server records no flows. Choreographed transactions have no coordinator record: ' +
    'their events are recorded by correlation id when the server runs with --broker … --record-flows <topics> ' +
    '(dtx demo --pattern choreography does so), and then appear here.';

  function flowsView(self) {
    const errEl = h('div', { class: 'error-box hidden', id: 'flows-error' });
    const tbody = h('tbody', { id: 'flow-rows' });
    const info = h('span', { class: 'muted', id: 'flows-info' });
    const table = h('table', { class: 'tx', id: 'flows-table' },
      h('thead', {}, h('tr', {}, ['Flow (correlation id)', 'Events', 'Last event', 'Started', 'Span'].map((t) => h('th', { text: t })))),
      tbody);
    const body = h('div', {}, table, h('div', { class: 'pager' }, h('button', { type: 'button', id: 'flows-refresh', onclick: () => load() }, '↻ Refresh'), info));
    viewEl.replaceChildren(
      h('h1', {}, 'Flows'),
      h('p', { class: 'muted' }, 'Choreographed transactions: no coordinator drives them, so they are rebuilt from the events the services published, by correlation id. Most recently active first; refreshed every 2 s.'),
      errEl, body);

    async function load() {
      let res;
      try {
        res = await getJSON('/flows?limit=200');
      } catch (e) {
        if (current !== self) return;
        if (e.status === 404) {
          stop();
          viewEl.replaceChildren(h('h1', {}, 'Flows'), h('div', { class: 'panel muted', id: 'flows-none', text: NO_FLOWS }));
          return;
        }
        errEl.textContent = 'Could not load flows: ' + e.message;
        errEl.classList.remove('hidden');
        return;
      }
      if (current !== self) return;
      errEl.classList.add('hidden');
      const flows = res.flows || [];
      if (flows.length === 0) {
        tbody.keyed = null;
        tbody.replaceChildren(h('tr', {}, h('td', { colspan: 5, class: 'muted', id: 'flows-empty', text: 'No flow recorded yet.' })));
      } else {
        reconcile(tbody, flows, (fl) => fl.correlation_id, (fl) => fl.events + '|' + fl.last_type, (fl) => h('tr', { 'data-id': fl.correlation_id, 'data-last': fl.last_type },
          h('td', {}, flowLink(fl.correlation_id)),
          h('td', { class: 'num', text: String(fl.events) }),
          h('td', {}, kindBadge(fl.last_type)),
          h('td', { class: 'num age', title: new Date(fl.first).toLocaleString() }),
          h('td', { class: 'num', text: D.fmtMs(Math.max(0, Date.parse(fl.last) - Date.parse(fl.first))) })), (tr, fl) => {
          tr.cells[3].textContent = ago(fl.first);
        });
      }
      info.textContent = flows.length + ' flow(s). Updated ' + new Date().toLocaleTimeString() + '.';
    }

    const timer = setInterval(load, FLOWS_POLL);
    const stop = () => clearInterval(timer);
    self.dispose = stop;
    load();
  }

  function flowView(self, id) {
    const content = h('div', { id: 'flow-detail' }, h('p', { class: 'muted', text: 'Loading…' }));
    viewEl.replaceChildren(h('p', {}, h('a', { href: '#/flows' }, '← all flows')), content);
    const factsEl = h('div', { class: 'facts panel' });
    const diagramEl = h('div', { id: 'flow-diagram' });
    const rows = h('tbody', { id: 'flow-events' });
    const payloadTitle = h('b');
    const payloadPre = h('pre', { id: 'flow-payload-text' });
    const payloadEl = h('div', { class: 'panel payload hidden', id: 'flow-payload' }, payloadTitle, payloadPre);
    const raw = h('pre');
    const page = [
      h('div', { class: 'detail-head' }, h('h1', { id: 'flow-id', text: id }), h('span', { class: 'pattern', text: 'choreography' })),
      factsEl,
      h('h2', {}, 'Sequence diagram ', h('span', { class: 'show-all', text: 'click an event for its payload' })),
      h('div', { class: 'panel diagram-wrap' }, diagramEl,
        h('div', { class: 'legend' },
          h('span', {}, h('i', { class: 'leg-call' }), 'event → the service that reacted'),
          h('span', {}, h('i', { class: 'leg-failure' }), 'failure (…failed)'),
          h('span', {}, h('i', { class: 'leg-comp' }), 'compensation (…restored, …cancelled)'),
          h('span', {}, h('i', { class: 'dash leg-call' }), 'no reaction (yet): to the broker'))),
      payloadEl,
      h('h2', {}, 'Events (causal order)'),
      h('table', { class: 'tx', id: 'flow-table' },
        h('thead', {}, h('tr', {}, ['#', 'Offset', 'Type', 'From → to', 'Topic', 'Message id', 'Caused by'].map((t) => h('th', { text: t })))),
        rows),
      h('details', { class: 'raw' }, h('summary', {}, 'Raw JSON'), raw),
    ];
    let last = null;
    let sig = '';
    let picked = -1;

    function pick(i) {
      picked = i;
      const e = last && last.events[i];
      payloadEl.classList.toggle('hidden', !e);
      for (const g of diagramEl.querySelectorAll('g.event')) g.classList.toggle('sel', Number(g.dataset.index) === i);
      for (const tr of rows.children) tr.classList.toggle('sel', Number(tr.dataset.index) === i);
      if (!e) return;
      payloadTitle.textContent = 'Payload of ' + e.type + ' (' + e.message_id + ')';
      payloadPre.textContent = e.payload === undefined || e.payload === null ? '(none, or not JSON)' : JSON.stringify(e.payload, null, 2);
    }

    function render(fl) {
      last = fl;
      if (content.firstChild !== page[0]) content.replaceChildren(...page);
      const m = D.flowModel(fl);
      const times = fl.events.map(D.eventTime);
      const span = times.length ? Math.max(...times) - Math.min(...times) : 0;
      const services = m.parts.filter((p) => !p.coord).map((p) => p.label);
      factsEl.replaceChildren(...[
        ['Events', String(fl.events.length)],
        ['Services', services.join(', ')],
        ['Started', times.length ? new Date(Math.min(...times)).toLocaleString() : '—'],
        ['Span', D.fmtMs(span)],
        ['Last event', m.last ? m.last.type : '—'],
      ].map(([k, v]) => h('div', {}, h('span', { text: k }), v)));
      diagramEl.replaceChildren(D.renderFlow(fl, pick));
      rows.replaceChildren(...m.rows.map((r) => h('tr', { 'data-index': r.i, class: 'ev-row', onclick: () => pick(r.i) },
        h('td', { class: 'num', text: String(r.i + 1) }),
        h('td', { class: 'num', text: '+' + D.fmtMs(Math.max(0, r.at)) }),
        h('td', {}, kindBadge(r.type)),
        h('td', { text: r.from + ' → ' + (r.end ? '(no reaction)' : r.to.join(', ')) }),
        h('td', { class: 'mono', text: r.e.topic }),
        h('td', { class: 'mono', text: r.e.message_id }),
        h('td', { class: 'mono', text: r.e.causation_id || '' }))));
      raw.textContent = JSON.stringify(fl, null, 2);
      pick(picked);
    }

    async function load() {
      let fl;
      try {
        fl = await getJSON('/flows/' + encodeURIComponent(id));
      } catch (e) {
        if (current !== self) return;
        last = null;
        sig = '';
        const msg = e.status === 404
          ? (e.problem && /no route/.test(e.problem.detail || '') ? NO_FLOWS : 'No flow ' + id + ' recorded on this server.')
          : 'Could not load flow ' + id + ': ' + e.message;
        content.replaceChildren(h('div', { class: 'error-box', id: 'flow-error', text: msg }));
        return;
      }
      if (current !== self) return;
      fl.events = fl.events || [];
      const s = fl.events.map((e) => e.message_id).join('|');
      if (s === sig) return; // nothing new: keep the page (and the selection) as it is
      sig = s;
      render(fl);
    }

    const timer = setInterval(load, FLOWS_POLL);
    self.dispose = () => clearInterval(timer);
    load();
  }

  // ---- needs attention

  function attentionSettings() {
    try {
      const s = JSON.parse(localStorage.getItem(ATTN_KEY) || '{}');
      return { ageS: Number(s.ageS) || 30, fails: Number(s.fails) || 3 };
    } catch (e) {
      return { ageS: 30, fails: 3 };
    }
  }

  /**
   * findAttention returns the unfinished transactions that have been in
   * flight longer than s.ageS seconds or whose branches had at least s.fails
   * unsuccessful calls of one operation, each with the reasons, plus how
   * many unfinished transactions were checked and found.
   */
  async function findAttention(s, maxDetails) {
    const lists = await Promise.all(['running', 'compensating'].map((st) => getJSON(listQuery({ status: st, limit: 1000 }))));
    const all = lists.flatMap((l) => l.transactions || []);
    all.sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at)); // oldest first
    const checked = all.slice(0, maxDetails);
    const out = [];
    let i = 0;
    const worker = async () => {
      while (i < checked.length) {
        const tx = checked[i++];
        let d;
        try {
          d = await getJSON('/transactions/' + encodeURIComponent(tx.gid));
        } catch (e) {
          continue; // finished and gone, or unreachable: next round
        }
        const why = [];
        const age = ageMs(d);
        if (age > s.ageS * 1000) why.push({ bad: false, text: d.status + ' for ' + D.fmtMs(age) });
        const bad = new Map();
        for (const e of d.events || []) {
          if (e.branch < 0 || e.outcome === 'success') continue;
          const k = e.branch + '/' + e.op;
          const b = bad.get(k) || { n: 0, last: '', branch: e.branch, op: e.op };
          b.n++;
          b.last = e.detail || e.outcome;
          bad.set(k, b);
        }
        for (const b of bad.values()) {
          if (b.n < s.fails) continue;
          const name = (d.branches[b.branch] && d.branches[b.branch].name) || 'step-' + b.branch;
          why.push({ bad: true, text: name + ' ' + b.op + ' failed ' + b.n + ' times; last: ' + b.last });
        }
        if (why.length) out.push({ d, why, age });
      }
    };
    await Promise.all([worker(), worker()]); // leave connections for the rest of the page
    out.sort((a, b) => b.age - a.age);
    return { items: out, checked: checked.length, total: all.length };
  }

  const badge = document.getElementById('attention-badge');

  function setBadge(n) {
    badge.textContent = String(n);
    badge.classList.toggle('hidden', n === 0);
  }

  function attentionView(self) {
    const s = attentionSettings();
    const listEl = h('div', { class: 'attn-list', id: 'attention' }, h('p', { class: 'muted', text: 'Checking…' }));
    const info = h('p', { class: 'muted', id: 'attention-info' });
    const save = () => { localStorage.setItem(ATTN_KEY, JSON.stringify(s)); load(); };
    viewEl.replaceChildren(
      h('h1', {}, 'Needs attention'),
      h('p', { class: 'muted' }, 'Unfinished transactions in flight for long, or whose branch calls keep failing (a compensation or confirm that keeps failing is retried for ever and needs a person).'),
      h('div', { class: 'filters' },
        h('label', {}, 'In flight for more than',
          h('select', { id: 'attn-age', onchange: (e) => { s.ageS = Number(e.target.value); save(); } },
            [[10, '10 s'], [30, '30 s'], [60, '1 min'], [300, '5 min'], [900, '15 min']].map(([v, t]) => h('option', { value: v, selected: v === s.ageS }, t)))),
        h('label', {}, 'or one operation failed at least',
          h('select', { id: 'attn-fails', onchange: (e) => { s.fails = Number(e.target.value); save(); } },
            [2, 3, 5, 10].map((v) => h('option', { value: v, selected: v === s.fails }, v + ' times'))))),
      info, listEl);

    async function load() {
      let r;
      try {
        r = await findAttention(s, 100);
      } catch (e) {
        if (current === self) listEl.replaceChildren(h('div', { class: 'error-box', text: 'Could not check: ' + e.message }));
        return;
      }
      if (current !== self) return;
      setBadge(r.items.length);
      info.textContent = r.total + ' unfinished transaction(s)' + (r.checked < r.total ? ', the ' + r.checked + ' oldest checked' : '') + '; ' + r.items.length + ' need attention. Updated ' + new Date().toLocaleTimeString() + '.';
      if (r.items.length === 0) {
        listEl.keyed = null;
        listEl.replaceChildren(h('div', { class: 'ok-box', id: 'attention-empty', text: 'Nothing needs attention.' }));
        return;
      }
      // A card is remade only when its transaction's status changes; its
      // reasons (ages tick) are refreshed in place.
      reconcile(listEl, r.items, (it) => it.d.gid, (it) => it.d.status + '|' + it.d.pattern, (it) => h('div', { class: 'panel attn', 'data-gid': it.d.gid },
        h('div', {}, statusBadge(it.d.status), ' ', patternBadge(it.d.pattern)),
        h('div', { class: 'why' }, txLink(it.d.gid), h('ul'))), (card, it) => {
        card.querySelector('ul').replaceChildren(...it.why.map((w) => h('li', { class: w.bad ? 'bad' : '', text: w.text })));
      });
    }

    const reload = throttle(load, 2000);
    const timer = setInterval(load, 5000); // ages grow without events
    Object.assign(self, {
      onHello: () => reload(),
      onTx: () => reload(),
      dispose: () => { reload.cancel(); clearInterval(timer); },
    });
    load();
  }

  // Keep the nav badge roughly current from any page: after changes (at
  // most every 5 s) and every 20 s.
  const refreshBadge = throttle(() => {
    if (document.hidden || (current && current.kind === 'attention')) return;
    return findAttention(attentionSettings(), 50).then((r) => setBadge(r.items.length), () => {});
  }, 5000);
  setInterval(refreshBadge, 20000);

  // ---- router

  function route() {
    if (current && current.dispose) current.dispose();
    current = null;
    const hash = location.hash || '#/';
    const [path, query] = hash.slice(1).split('?');
    let kind = 'list';
    if (path.startsWith('/tx/')) kind = 'detail';
    else if (path === '/attention') kind = 'attention';
    else if (path === '/flows') kind = 'flows';
    else if (path.startsWith('/flow/')) kind = 'flow';
    const nav = { detail: 'list', flow: 'flows' }[kind] || kind;
    for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === nav);
    // A view drops answers that arrive once it is no longer current.
    const self = { kind };
    current = self;
    if (kind === 'detail') {
      const gid = decodeURIComponent(path.slice(4));
      document.title = gid + ' — dtx';
      detailView(self, gid);
    } else if (kind === 'flow') {
      const id = decodeURIComponent(path.slice(6));
      document.title = id + ' (flow) — dtx';
      flowView(self, id);
    } else if (kind === 'flows') {
      document.title = 'Flows — dtx';
      flowsView(self);
    } else if (kind === 'attention') {
      document.title = 'Needs attention — dtx';
      attentionView(self);
    } else {
      document.title = 'Transactions — dtx';
      listView(self, new URLSearchParams(query || ''));
    }
  }

  window.addEventListener('hashchange', route);
  route();
  connectLive();
})();
