// dtx dashboard: one transaction drawn as a sequence diagram in SVG.
//
// Lifelines are the coordinator and the participants, derived from the
// steps' URLs (host:port plus the first path segment, e.g.
// 127.0.0.1:9002/inventory). Each recorded branch call is a request arrow
// from the coordinator and a dashed reply arrow coloured by its outcome
// (success, failure, unknown), labelled with the step, operation, attempt
// number and duration; the error of a failed or unknown call is written
// under it. Compensations (compensate, cancel) are drawn in their own
// colour. Status changes of the transaction span every lifeline. Calls that
// are being retried while the transaction is still in flight end the
// diagram as grey dashed arrows.
//
// A choreographed flow (no coordinator) is drawn in the same language:
// lifelines are the services that published its events (plus the broker,
// where events no service reacted to end), each event an arrow from its
// source to the services that reacted to it (the sources of the events it
// caused), labelled with its type and time offset; failures (…failed) in red
// and compensations (…restored, …cancelled) in purple.
'use strict';

(function () {
  const NS = 'http://www.w3.org/2000/svg';
  const COLORS = {
    call: '#344054', comp: '#7a3fc2', success: '#1b8a4b', failure: '#c62a2a',
    unknown: '#b88300', pending: '#8893a7', running: '#2f6fdb', compensating: '#c26a00',
    succeeded: '#1b8a4b', failed: '#c62a2a',
  };
  const TIMEW = 78; // the time column
  const COLW = 200; // one lifeline's column
  const HEAD = 62; // participant boxes
  const MAXDETAIL = 110; // characters of an error shown inline (all of it in the tooltip)

  function el(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function tooltip(parent, text) {
    parent.appendChild(el('title', {}, text));
  }

  function clip(s, n) {
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  }

  /** Formats milliseconds for people: 0.4 ms, 12 ms, 1.3 s, 2m 05s. */
  function fmtMs(ms) {
    if (ms < 10) return ms.toFixed(1) + ' ms';
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    const m = Math.floor(ms / 60000);
    const s = Math.floor((ms % 60000) / 1000);
    return m + 'm ' + String(s).padStart(2, '0') + 's';
  }

  /** Whether op is an undo: a saga compensation or a TCC/XA cancel. */
  function isUndo(op) {
    return op === 'compensate' || op === 'cancel';
  }

  /** The participant a URL belongs to: host:port and first path segment. */
  function participantOf(url, fallback) {
    try {
      const u = new URL(url);
      const seg = u.pathname.split('/').filter(Boolean)[0] || '';
      return { key: u.host + '/' + seg, label: seg || u.host, host: u.host };
    } catch (e) {
      return { key: 'step:' + fallback, label: fallback, host: '' };
    }
  }

  /**
   * model turns a TxDetail (GET /v1/transactions/{gid}) into lifelines and
   * rows. Exposed for the dashboard's branch table.
   */
  function model(d) {
    const steps = (d.spec && Array.isArray(d.spec.steps)) ? d.spec.steps : [];
    const branches = d.branches || [];
    const parts = [{ key: 'coordinator', label: 'coordinator', host: 'dtx', coord: true }];
    const byKey = new Map();
    const stepPart = []; // branch index -> lifeline index
    const n = Math.max(branches.length, steps.length);
    for (let i = 0; i < n; i++) {
      const st = steps[i] || {};
      const name = (branches[i] && branches[i].name) || st.name || ('step-' + i);
      const url = st.action || st.compensate || '';
      const p = url ? participantOf(url, name) : { key: 'step:' + name, label: name, host: '' };
      if (!byKey.has(p.key)) {
        byKey.set(p.key, parts.length);
        parts.push(p);
      }
      stepPart[i] = byKey.get(p.key);
    }
    // Two services with the same first path segment on different hosts.
    const seen = new Map();
    for (const p of parts) seen.set(p.label, (seen.get(p.label) || 0) + 1);
    for (const p of parts) if (seen.get(p.label) > 1 && p.host) p.label += ' @' + p.host;

    const created = Date.parse(d.created_at);
    const attempts = new Map();
    const rows = [];
    const events = (d.events || []).slice().sort((a, b) => a.seq - b.seq);
    for (const e of events) {
      const at = Date.parse(e.at) - created;
      if (e.branch < 0) {
        rows.push({ kind: 'status', status: e.outcome, detail: e.detail || '', at });
        continue;
      }
      const key = e.branch + '/' + e.op;
      const attempt = (attempts.get(key) || 0) + 1;
      attempts.set(key, attempt);
      const name = (branches[e.branch] && branches[e.branch].name) || ('step-' + e.branch);
      rows.push({
        kind: 'call', branch: e.branch, step: name, op: e.op || 'action', undo: isUndo(e.op),
        outcome: e.outcome, detail: e.detail || '', ms: (e.duration_ns || 0) / 1e6, attempt, at,
        part: stepPart[e.branch] || 1,
      });
    }
    // Calls being retried right now (the store records only certain
    // outcomes: a pending operation with attempts is awaiting its next try).
    if (d.status === 'running' || d.status === 'compensating') {
      for (const b of branches) {
        const st = steps[b.index] || {};
        const undo = d.status === 'compensating';
        const state = undo ? b.compensate : b.action;
        const tries = undo ? b.compensate_attempts : b.action_attempts;
        if (state !== 'pending' || tries === 0) continue;
        const op = undo ? (st.compensate_op || 'compensate') : (st.action_op || 'action');
        rows.push({ kind: 'pending', branch: b.index, step: b.name, op, undo, attempt: tries + 1, detail: b.last_error || '', part: stepPart[b.index] || 1 });
      }
    }
    return { parts, rows, stepPart };
  }

  /**
   * collapse folds runs of at least four identical consecutive calls (same
   * step, operation, outcome and error) into first, a "repeat" row, and last.
   */
  function collapse(rows) {
    const out = [];
    for (let i = 0; i < rows.length;) {
      const r = rows[i];
      let j = i + 1;
      if (r.kind === 'call') {
        while (j < rows.length && rows[j].kind === 'call' && rows[j].branch === r.branch && rows[j].op === r.op &&
          rows[j].outcome === r.outcome && rows[j].detail === r.detail) j++;
      }
      if (j - i >= 4) {
        const last = rows[j - 1];
        out.push(r, { kind: 'repeat', count: j - i - 2, first: rows[i + 1], last: rows[j - 2], part: r.part, outcome: r.outcome }, last);
      } else {
        out.push(...rows.slice(i, j));
      }
      i = j;
    }
    return out;
  }

  function arrowMarkers(defs) {
    for (const [name, color] of Object.entries(COLORS)) {
      const m = el('marker', { id: 'ah-' + name, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
      m.appendChild(el('path', { d: 'M0,0 L10,5 L0,10 z', fill: color }));
      defs.appendChild(m);
    }
  }

  const GLYPH = { success: '✓', failure: '✗', unknown: '?' };

  /**
   * render draws detail d as an <svg class="seq"> element. Runs of identical
   * retries are folded unless opts.all is set.
   */
  function render(d, opts) {
    const m = model(d);
    const parts = m.parts;
    const rows = (opts && opts.all) ? m.rows : collapse(m.rows);
    const x = (i) => TIMEW + COLW / 2 + i * COLW;
    const width = Math.max(TIMEW + COLW * parts.length + 10, 760); // room for notes
    const svg = el('svg', { class: 'seq', id: 'seq', role: 'img', 'aria-label': 'sequence diagram of ' + d.gid });
    const defs = el('defs');
    arrowMarkers(defs);
    svg.appendChild(defs);
    const body = el('g', { class: 'rows' });
    const heads = el('g', { class: 'lifelines' });
    svg.appendChild(heads);
    svg.appendChild(body);

    let y = HEAD + 12;
    for (const r of rows) {
      if (r.kind === 'status') {
        const g = el('g', { class: 'status-note', 'data-status': r.status });
        const color = COLORS[r.status] || COLORS.pending;
        g.appendChild(el('rect', { x: TIMEW - 2, y: y + 3, width: width - TIMEW - 6, height: 24, rx: 4, fill: color, 'fill-opacity': 0.1, stroke: color, 'stroke-opacity': 0.6 }));
        const label = r.status + (r.detail ? ' — ' + clip(r.detail, 150) : '');
        g.appendChild(el('text', { x: TIMEW + 8, y: y + 19, 'font-size': 12.5, 'font-weight': 600, fill: color }, '● ' + d.pattern + ' ' + label));
        g.appendChild(el('text', { x: TIMEW - 10, y: y + 19, 'text-anchor': 'end', 'font-size': 11, fill: '#667085' }, '+' + fmtMs(Math.max(0, r.at))));
        tooltip(g, label);
        body.appendChild(g);
        y += 34;
        continue;
      }
      const x0 = x(0);
      const xp = x(r.part);
      if (r.kind === 'repeat') {
        const oc = COLORS[r.outcome] || COLORS.pending;
        const g = el('g', { class: 'repeat', 'data-count': r.count, 'data-step': r.first.step, 'data-op': r.first.op });
        g.appendChild(el('line', { x1: (x0 + xp) / 2, y1: y + 2, x2: (x0 + xp) / 2, y2: y + 22, stroke: oc, 'stroke-width': 2, 'stroke-dasharray': '2 3' }));
        const span = '+' + fmtMs(Math.max(0, r.first.at)) + ' … +' + fmtMs(Math.max(0, r.last.at));
        g.appendChild(el('text', { x: (x0 + xp) / 2 + 10, y: y + 16, 'font-size': 11.5, 'font-style': 'italic', fill: oc },
          '⟳ ' + r.count + ' more identical attempts (#' + r.first.attempt + '–#' + r.last.attempt + ', ' + span + ')'));
        tooltip(g, r.count + ' more ' + r.first.step + ' ' + r.first.op + ' calls with the same outcome (' + r.outcome + ')' + (r.first.detail ? ': ' + r.first.detail : ''));
        body.appendChild(g);
        y += 26;
        continue;
      }
      const fwd = r.undo ? COLORS.comp : COLORS.call;
      const g = el('g', {
        class: r.kind === 'pending' ? 'call pending' : 'call',
        'data-step': r.step, 'data-op': r.op, 'data-outcome': r.kind === 'pending' ? 'pending' : r.outcome,
        'data-kind': r.undo ? 'compensation' : 'forward', 'data-attempt': r.attempt,
      });
      // TCC and XA steps are named <participant>.<op>: no need to say it twice.
      const what = r.step.endsWith('.' + r.op) ? r.step : r.step + ' · ' + r.op;
      const reqLabel = (r.undo ? '↩ ' : '') + what + (r.attempt > 1 ? '  #' + r.attempt : '');
      const mid = (x0 + xp) / 2;
      if (r.kind === 'pending') {
        g.appendChild(el('line', { x1: x0 + 4, y1: y + 16, x2: xp - 4, y2: y + 16, stroke: COLORS.pending, 'stroke-width': 1.6, 'stroke-dasharray': '5 4', 'marker-end': 'url(#ah-pending)' }));
        g.appendChild(el('text', { x: mid, y: y + 11, 'text-anchor': 'middle', 'font-size': 12, fill: COLORS.pending }, reqLabel + ' …'));
        g.appendChild(el('text', { x: mid, y: y + 30, 'text-anchor': 'middle', 'font-size': 11, fill: COLORS.pending }, 'awaiting attempt ' + r.attempt));
        tooltip(g, reqLabel + ': retrying' + (r.detail ? ' — last error: ' + r.detail : ''));
        body.appendChild(g);
        y += 44;
        continue;
      }
      const oc = COLORS[r.outcome] || COLORS.pending;
      // request
      g.appendChild(el('line', { x1: x0 + 4, y1: y + 16, x2: xp - 4, y2: y + 16, stroke: fwd, 'stroke-width': 1.8, 'marker-end': r.undo ? 'url(#ah-comp)' : 'url(#ah-call)' }));
      g.appendChild(el('text', { x: mid, y: y + 11, 'text-anchor': 'middle', 'font-size': 12, 'font-weight': 600, fill: fwd }, reqLabel));
      // reply
      g.appendChild(el('line', { x1: xp - 4, y1: y + 34, x2: x0 + 4, y2: y + 34, stroke: oc, 'stroke-width': 1.8, 'stroke-dasharray': '6 4', 'marker-end': 'url(#ah-' + (COLORS[r.outcome] ? r.outcome : 'pending') + ')' }));
      g.appendChild(el('text', { x: mid, y: y + 30, 'text-anchor': 'middle', 'font-size': 11, fill: oc }, (GLYPH[r.outcome] || '·') + ' ' + r.outcome + (r.ms ? ' · ' + fmtMs(r.ms) : '')));
      g.appendChild(el('circle', { cx: xp, cy: y + 25, r: 7, fill: oc }));
      g.appendChild(el('text', { x: xp, y: y + 29, 'text-anchor': 'middle', 'font-size': 10, 'font-weight': 700, fill: '#fff' }, GLYPH[r.outcome] || '·'));
      g.appendChild(el('text', { x: TIMEW - 10, y: y + 20, 'text-anchor': 'end', 'font-size': 11, fill: '#667085' }, '+' + fmtMs(Math.max(0, r.at))));
      let h = 44;
      if (r.detail && r.outcome !== 'success') {
        const text = clip(r.detail, MAXDETAIL);
        const w = Math.min(width - x0 - 10, 14 + text.length * 6.75);
        const box = el('g', { class: 'error-detail' });
        box.appendChild(el('rect', { x: x0 + 6, y: y + 39, width: w, height: 18, rx: 3, fill: r.outcome === 'failure' ? '#fdecec' : '#fff6dc', stroke: oc, 'stroke-opacity': 0.5 }));
        box.appendChild(el('text', { x: x0 + 12, y: y + 52, 'font-size': 11, fill: r.outcome === 'failure' ? '#8a1c1c' : '#7a5600', 'font-family': 'ui-monospace, Menlo, Consolas, monospace' }, text));
        g.appendChild(box);
        h = 64;
      }
      tooltip(g, reqLabel + ' → ' + r.outcome + (r.ms ? ' in ' + fmtMs(r.ms) : '') + (r.detail ? '\n' + r.detail : ''));
      body.appendChild(g);
      y += h;
    }
    const height = y + 16;

    // Lifelines and participant boxes, behind the rows.
    parts.forEach((p, i) => {
      const cx = x(i);
      heads.appendChild(el('line', { x1: cx, y1: HEAD - 8, x2: cx, y2: height - 6, stroke: '#c3c9d5', 'stroke-width': 1.2, 'stroke-dasharray': '3 4' }));
      const g = el('g', { class: 'participant', 'data-name': p.label });
      g.appendChild(el('rect', { x: cx - COLW / 2 + 12, y: 6, width: COLW - 24, height: HEAD - 14, rx: 7, fill: p.coord ? '#18202f' : '#eef2fb', stroke: p.coord ? '#18202f' : '#9fb0d6' }));
      g.appendChild(el('text', { x: cx, y: 26, 'text-anchor': 'middle', 'font-size': 13.5, 'font-weight': 700, fill: p.coord ? '#fff' : '#1d2330' }, clip(p.label, 26)));
      g.appendChild(el('text', { x: cx, y: 43, 'text-anchor': 'middle', 'font-size': 11, fill: p.coord ? '#aab4c8' : '#667085' }, clip(p.host, 30)));
      tooltip(g, p.coord ? 'the dtx coordinator' : p.key);
      heads.appendChild(g);
    });
    if (rows.length === 0) {
      body.appendChild(el('text', { x: TIMEW, y: HEAD + 30, 'font-size': 12, fill: '#667085' }, 'no history recorded'));
    }
    svg.setAttribute('width', width);
    svg.setAttribute('height', Math.max(height, HEAD + 50));
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + Math.max(height, HEAD + 50));
    return svg;
  }

  // ---- choreographed flows (GET /v1/flows/{id})

  /**
   * eventKind classifies a flow event by its type: 'failure' (…failed),
   * 'compensation' (…restored, …cancelled: undoing), or 'forward'.
   */
  function eventKind(type) {
    const t = String(type || '').toLowerCase();
    if (t.includes('failed')) return 'failure';
    if (t.includes('restored') || t.includes('cancelled') || t.includes('canceled')) return 'compensation';
    return 'forward';
  }

  const BROKER = 'broker';
  const UNKNOWN = '(unknown)';

  /** The time of a flow event: when it was published, else observed. */
  function eventTime(e) {
    const p = e.published_at ? Date.parse(e.published_at) : NaN;
    return Number.isNaN(p) ? Date.parse(e.observed_at) : p;
  }

  /**
   * flowModel turns a flow (events in causal order) into lifelines and one
   * row per event: from its source to the services that reacted to it (the
   * sources of the events it caused), or to the broker when nothing did.
   */
  function flowModel(f) {
    const evs = f.events || [];
    const children = new Map();
    for (const e of evs) {
      if (!e.causation_id || e.causation_id === e.message_id) continue;
      if (!children.has(e.causation_id)) children.set(e.causation_id, []);
      children.get(e.causation_id).push(e);
    }
    const t0 = evs.reduce((m, e) => Math.min(m, eventTime(e)), Infinity);
    const names = [];
    const add = (n) => { if (!names.includes(n)) names.push(n); };
    const rows = evs.map((e, i) => {
      const from = e.source || UNKNOWN;
      add(from);
      const to = [];
      for (const c of children.get(e.message_id) || []) {
        const s = c.source || UNKNOWN;
        if (!to.includes(s)) to.push(s);
      }
      return { i, e, type: e.type || e.topic, from, to: to.length ? to : [BROKER], end: to.length === 0, kind: eventKind(e.type || e.topic), at: eventTime(e) - t0 };
    });
    for (const r of rows) for (const n of r.to) if (n !== BROKER) add(n);
    const parts = names.map((n) => ({ key: n, label: n, host: n === UNKNOWN ? 'no Dtx-Source header' : 'service' }));
    if (rows.some((r) => r.end)) parts.unshift({ key: BROKER, label: BROKER, host: 'no reaction (yet)', coord: true });
    const idx = new Map(parts.map((p, i) => [p.key, i]));
    for (const r of rows) {
      r.fromPart = idx.get(r.from);
      r.toParts = r.to.map((n) => idx.get(n));
    }
    // The latest event (RFC 3339 strings of varying length do not sort as
    // strings: compare instants); on a tie the later one in causal order.
    const at = (r) => Date.parse(r.e.published_at || r.e.observed_at) || 0;
    const last = rows.length ? rows.reduce((a, b) => (at(b) >= at(a) ? b : a)) : null;
    return { parts, rows, last };
  }

  function payloadText(p) {
    if (p === undefined || p === null) return '';
    return typeof p === 'string' ? p : JSON.stringify(p);
  }

  /**
   * renderFlow draws flow f as an <svg class="seq flow"> element: every
   * event a <g class="event"> with data-type, data-from, data-to and
   * data-kind. onPick, if given, is called with an event's index when it is
   * clicked.
   */
  function renderFlow(f, onPick) {
    const m = flowModel(f);
    const parts = m.parts;
    const x = (i) => TIMEW + COLW / 2 + i * COLW;
    const width = Math.max(TIMEW + COLW * parts.length + 10, 760);
    const svg = el('svg', { class: 'seq flow', id: 'flow-seq', role: 'img', 'aria-label': 'sequence diagram of flow ' + f.correlation_id });
    const defs = el('defs');
    arrowMarkers(defs);
    svg.appendChild(defs);
    const heads = el('g', { class: 'lifelines' });
    const body = el('g', { class: 'rows' });
    svg.appendChild(heads);
    svg.appendChild(body);
    const colorOf = { forward: COLORS.call, failure: COLORS.failure, compensation: COLORS.comp };
    const markerOf = { forward: 'call', failure: 'failure', compensation: 'comp' };

    let y = HEAD + 12;
    for (const r of m.rows) {
      const color = colorOf[r.kind];
      const g = el('g', {
        class: 'event', 'data-index': r.i, 'data-type': r.type, 'data-kind': r.kind,
        'data-from': r.from, 'data-to': r.to.join(','), 'data-message-id': r.e.message_id,
      });
      const xf = x(r.fromPart);
      const payload = payloadText(r.e.payload);
      let labelX = xf + 60;
      r.toParts.forEach((tp, k) => {
        const xt = x(tp);
        const yy = y + 16 + k * 6;
        const dash = r.end ? '6 4' : null;
        if (tp === r.fromPart) { // a service reacting to its own event
          g.appendChild(el('path', { d: 'M' + (xf + 4) + ',' + (yy - 8) + ' h40 v16 h-36', fill: 'none', stroke: color, 'stroke-width': 1.8, 'marker-end': 'url(#ah-' + markerOf[r.kind] + ')' }));
          return;
        }
        g.appendChild(el('line', { x1: xf + (xt > xf ? 4 : -4), y1: yy, x2: xt + (xt > xf ? -4 : 4), y2: yy, stroke: color, 'stroke-width': 1.8, 'stroke-dasharray': dash, 'marker-end': 'url(#ah-' + markerOf[r.kind] + ')' }));
        if (k === 0) labelX = (xf + xt) / 2;
      });
      g.appendChild(el('circle', { cx: xf, cy: y + 16, r: 4, fill: color }));
      const label = (r.kind === 'compensation' ? '↩ ' : r.kind === 'failure' ? '✗ ' : '') + r.type;
      g.appendChild(el('text', { class: 'label', x: labelX, y: y + 11, 'text-anchor': 'middle', 'font-size': 12, 'font-weight': 600, fill: color }, label));
      if (payload) {
        g.appendChild(el('text', { class: 'payload', x: labelX, y: y + 31 + (r.toParts.length - 1) * 6, 'text-anchor': 'middle', 'font-size': 10.5, fill: '#667085', 'font-family': 'ui-monospace, Menlo, Consolas, monospace' }, clip(payload, 48)));
      }
      g.appendChild(el('text', { class: 'offset', x: TIMEW - 10, y: y + 20, 'text-anchor': 'end', 'font-size': 11, fill: '#667085' }, '+' + fmtMs(Math.max(0, r.at))));
      tooltip(g, r.type + ': ' + r.from + ' → ' + (r.end ? 'no reaction' : r.to.join(', ')) + '\nmessage ' + r.e.message_id +
        (r.e.causation_id ? ', caused by ' + r.e.causation_id : '') + (payload ? '\n' + payload : ''));
      if (onPick) g.addEventListener('click', () => onPick(r.i));
      body.appendChild(g);
      y += 40 + (r.toParts.length - 1) * 6;
    }
    // How the flow ended (as far as it has been observed).
    if (m.last) {
      const k = m.last.kind;
      const color = k === 'forward' ? (m.last.end ? COLORS.succeeded : COLORS.running) : (k === 'failure' ? COLORS.failure : COLORS.comp);
      const g = el('g', { class: 'status-note', 'data-status': m.last.type });
      g.appendChild(el('rect', { x: TIMEW - 2, y: y + 3, width: width - TIMEW - 6, height: 24, rx: 4, fill: color, 'fill-opacity': 0.1, stroke: color, 'stroke-opacity': 0.6 }));
      g.appendChild(el('text', { x: TIMEW + 8, y: y + 19, 'font-size': 12.5, 'font-weight': 600, fill: color }, '● last event: ' + m.last.type + (m.last.end ? '' : ' (awaiting reactions)')));
      body.appendChild(g);
      y += 34;
    }
    const height = y + 16;
    parts.forEach((p, i) => {
      const cx = x(i);
      heads.appendChild(el('line', { x1: cx, y1: HEAD - 8, x2: cx, y2: height - 6, stroke: '#c3c9d5', 'stroke-width': 1.2, 'stroke-dasharray': '3 4' }));
      const g = el('g', { class: 'participant', 'data-name': p.label });
      g.appendChild(el('rect', { x: cx - COLW / 2 + 12, y: 6, width: COLW - 24, height: HEAD - 14, rx: 7, fill: p.coord ? '#18202f' : '#eef2fb', stroke: p.coord ? '#18202f' : '#9fb0d6' }));
      g.appendChild(el('text', { x: cx, y: 26, 'text-anchor': 'middle', 'font-size': 13.5, 'font-weight': 700, fill: p.coord ? '#fff' : '#1d2330' }, clip(p.label, 26)));
      g.appendChild(el('text', { x: cx, y: 43, 'text-anchor': 'middle', 'font-size': 11, fill: p.coord ? '#aab4c8' : '#667085' }, p.host));
      tooltip(g, p.coord ? 'the broker: events no service has reacted to end here' : 'service ' + p.label + ' (the Dtx-Source of its events)');
      heads.appendChild(g);
    });
    svg.setAttribute('width', width);
    svg.setAttribute('height', Math.max(height, HEAD + 50));
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + Math.max(height, HEAD + 50));
    return svg;
  }

  window.dtxDiagram = { render, model, collapse, participantOf, fmtMs, isUndo, renderFlow, flowModel, eventKind, eventTime };
})();
