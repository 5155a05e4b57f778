// Privet compliance console. Plain DOM, no libraries, no inline code (the
// page's Content-Security-Policy forbids it). Every read goes through the
// gateway's /v1/audit endpoints with the session cookie and the
// X-Privet-Console header; the gateway authorizes and audits each one.
'use strict';

(function () {
  const PAGE = 25;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);

  const state = { offset: 0, params: null, nextOffset: null, subject: null, loaded: {} };

  // ---------- helpers ----------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function status(text, isError) {
    const el = $('status');
    el.textContent = text;
    el.classList.toggle('error', Boolean(isError));
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = Object.assign({ 'X-Privet-Console': '1' }, opts.headers || {});
    const response = await fetch(path, {
      method: opts.method || 'GET',
      headers,
      body: opts.body,
      credentials: 'same-origin',
      cache: 'no-store',
    });
    const type = response.headers.get('content-type') || '';
    if (!response.ok) {
      let code = 'http_' + response.status;
      let message = 'HTTP ' + response.status;
      if (type.includes('application/json')) {
        const body = await response.json();
        if (body && body.error) {
          code = body.error.code;
          message = body.error.message;
        }
      }
      if (response.status === 401 && path !== '/console/session') {
        showSignedOut();
      }
      throw new ApiError(response.status, code, message);
    }
    if (opts.raw) {
      return response;
    }
    return type.includes('application/json') ? response.json() : response.text();
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    if (className) {
      node.className = className;
    }
    return node;
  }

  // Names each cell after its column, for the narrow layout (one card per
  // row, the header hidden): CSS shows the name before the value.
  function labelCells(tr, labels) {
    Array.from(tr.children).forEach((td, i) => {
      if (labels[i]) {
        td.dataset.label = labels[i];
      }
    });
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  function field(list, name, value) {
    list.appendChild(el('dt', name));
    const dd = el('dd');
    if (value instanceof Node) {
      dd.appendChild(value);
    } else {
      dd.textContent = value === undefined || value === null || value === '' ? '—' : String(value);
    }
    list.appendChild(dd);
  }

  function b64decode(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out;
  }

  function b64encode(bytes) {
    let bin = '';
    for (const b of bytes) {
      bin += String.fromCharCode(b);
    }
    return btoa(bin);
  }

  function equalBytes(a, b) {
    if (a.length !== b.length) {
      return false;
    }
    let diff = 0;
    for (let i = 0; i < a.length; i++) {
      diff |= a[i] ^ b[i];
    }
    return diff === 0;
  }

  function quote(value) {
    return '"' + value.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
  }

  function formatTime(us) {
    return new Date(Number(us) / 1000).toISOString();
  }

  // ---------- verification (WebCrypto) ----------

  async function sha256(...parts) {
    let length = 0;
    for (const p of parts) {
      length += p.length;
    }
    const buf = new Uint8Array(length);
    let at = 0;
    for (const p of parts) {
      buf.set(p, at);
      at += p.length;
    }
    return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  }

  const LEAF = Uint8Array.of(0);
  const NODE = Uint8Array.of(1);

  // RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or null when
  // the proof does not fit the tree size.
  async function rootFromInclusion(leaf, index, size, proof) {
    let fn = BigInt(index);
    let sn = BigInt(size) - 1n;
    if (fn > sn) {
      return null;
    }
    let r = leaf;
    for (const p of proof) {
      if (p.length !== 32 || sn === 0n) {
        return null;
      }
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(NODE, p, r);
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = await sha256(NODE, r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    return sn === 0n ? r : null;
  }

  // The checkpoint's Ed25519 signature over the message the gateway signs,
  // rebuilt here from its fields (never taken from the answer).
  async function verifyCheckpoint(checkpoint) {
    const root = b64decode(checkpoint.root);
    if (root.length !== 32) {
      return { ok: false, why: 'the checkpoint root is not a SHA-256 hash' };
    }
    const message = new TextEncoder().encode(
      'privet-audit-checkpoint/v1\n' + checkpoint.size + '\n' + b64encode(root) + '\n' +
        checkpoint.time_us + '\n');
    let key;
    try {
      key = await crypto.subtle.importKey('raw', b64decode(checkpoint.public_key), { name: 'Ed25519' },
        false, ['verify']);
    } catch (e) {
      return { ok: false, why: 'this browser cannot check Ed25519 signatures (' + e.message + ')' };
    }
    const ok = await crypto.subtle.verify({ name: 'Ed25519' }, key, b64decode(checkpoint.signature),
      message);
    return ok ? { ok: true } : { ok: false, why: 'the checkpoint signature does not verify' };
  }

  // The event's own bytes → leaf hash → audit path → root, and that root
  // signed in the checkpoint.
  async function verifyEvent(entry, seq, proof) {
    if (!window.crypto || !crypto.subtle) {
      return { ok: false, why: 'WebCrypto is unavailable (the console needs a secure context: HTTPS or localhost)' };
    }
    const leaf = await sha256(LEAF, entry);
    if (!equalBytes(leaf, b64decode(proof.leafHash))) {
      return { ok: false, why: 'the event bytes do not hash to the proof\'s leaf' };
    }
    if (Number(proof.leafIdx) !== seq) {
      return { ok: false, why: 'the proof is for another event' };
    }
    const path = proof.proof.map(b64decode);
    const root = await rootFromInclusion(leaf, proof.leafIdx, proof.treeSize, path);
    if (root === null || !equalBytes(root, b64decode(proof.root))) {
      return { ok: false, why: 'the inclusion proof does not lead to the checkpoint root' };
    }
    const cp = proof.checkpoint;
    if (Number(cp.size) !== Number(proof.treeSize) || !equalBytes(b64decode(cp.root), root)) {
      return { ok: false, why: 'the checkpoint is for another tree' };
    }
    const signed = await verifyCheckpoint(cp);
    if (!signed.ok) {
      return signed;
    }
    return { ok: true, size: cp.size, time: cp.time, root: cp.root };
  }

  function badge(node, ok, text) {
    node.textContent = text;
    node.classList.toggle('ok', ok === true);
    node.classList.toggle('bad', ok === false);
  }

  // ---------- sign in / out ----------

  function showSignedIn(session) {
    $('who-text').textContent = 'Signed in as ' + session.principal + ' (purpose ' + session.purpose + ')';
    $('who').hidden = false;
    $('sign-in-section').hidden = true;
    $('app').hidden = false;
  }

  function showSignedOut() {
    $('who').hidden = true;
    $('app').hidden = true;
    $('sign-in-section').hidden = false;
    for (const id of ['results-body', 'event-fields', 'proof-fields', 'subject-body', 'health-fields',
      'timeline-charts']) {
      clear($(id));
    }
    for (const id of ['search-summary', 'subject-summary', 'timeline-summary', 'proof-badge',
      'checkpoint-badge']) {
      $(id).textContent = '';
    }
    $('results').hidden = true;
    $('subject-results').hidden = true;
    $('event-section').hidden = true;
    $('subject-csv').disabled = true;
    state.loaded = {};
  }

  async function signIn(event) {
    event.preventDefault();
    const key = $('api-key').value.trim();
    const purpose = $('sign-in-purpose').value.trim();
    status('Signing in…');
    try {
      const session = await api('/console/session', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ api_key: key, purpose }),
      });
      $('api-key').value = '';
      showSignedIn(session);
      status('Signed in as ' + session.principal + '.');
      showPanel('search-section');
      await runSearch(0, true);
    } catch (e) {
      status('Sign-in refused: ' + e.message, true);
      $('api-key').focus();
    }
  }

  async function signOut() {
    try {
      await api('/console/session', { method: 'DELETE' });
      status('Signed out.');
    } catch (e) {
      status('Signed out (' + e.message + ').');
    }
    showSignedOut();
    $('api-key').focus();
  }

  // ---------- tabs ----------

  function showPanel(id) {
    for (const tab of document.querySelectorAll('.tab')) {
      const on = tab.dataset.panel === id;
      tab.setAttribute('aria-pressed', on ? 'true' : 'false');
      $(tab.dataset.panel).hidden = !on;
    }
    if (id === 'timeline-section' && !state.loaded.timeline) {
      state.loaded.timeline = true;
      runTimeline().catch(() => {});
    }
    if (id === 'health-section' && !state.loaded.health) {
      state.loaded.health = true;
      loadHealth().catch(() => {});
    }
  }

  // ---------- search ----------

  function searchParams() {
    const terms = [];
    const add = (fieldName, id) => {
      const v = $(id).value.trim();
      if (v) {
        terms.push(fieldName + ':' + quote(v));
      }
    };
    add('principal', 'f-principal');
    add('table', 'f-table');
    add('column', 'f-column');
    add('purpose', 'f-purpose');
    const decision = $('f-decision').value;
    if (decision) {
      terms.push('outcome:' + decision);
    }
    const text = $('f-text').value.trim();
    if (text) {
      terms.push('(' + text + ')');
    }
    const params = new URLSearchParams();
    params.set('q', terms.length ? terms.join(' AND ') : '*');
    for (const [name, id] of [['since', 'f-since'], ['until', 'f-until']]) {
      const v = $(id).value.trim();
      if (v) {
        params.set(name, v);
      }
    }
    params.set('limit', String(PAGE));
    return params;
  }

  function what(event) {
    const parts = [];
    for (const t of event.tables || []) {
      const cols = (t.columns || []).map((c) => (c.decision === 'plain' ? c.column
        : c.column + ':' + c.decision + (c.mask ? '(' + c.mask + ')' : '')));
      parts.push(t.table + '(' + cols.join(', ') + ')' + (t.row_filter ? ' [row filter]' : ''));
    }
    return event.endpoint + (parts.length ? ' ' + parts.join(' ') : '');
  }

  function decision(event) {
    const span = el('span', event.outcome + (event.error_code ? ' (' + event.error_code + ')' : ''),
      'outcome ' + event.outcome);
    return span;
  }

  function who(event) {
    return (event.principal || '(unauthenticated)') + ' from ' + event.source;
  }

  // A new search (from the form) or another page of the current one.
  async function runSearch(offset, fresh) {
    const params = fresh || !state.params ? searchParams() : state.params;
    state.params = params;
    params.set('offset', String(offset));
    status('Searching…');
    try {
      const answer = await api('/v1/audit/search?' + params.toString());
      state.offset = offset;
      state.nextOffset = answer.next_offset;
      const body = $('results-body');
      clear(body);
      for (const event of answer.events) {
        const tr = el('tr');
        tr.appendChild(el('td', event.seq));
        tr.appendChild(el('td', event.time));
        tr.appendChild(el('td', who(event), 'who-cell'));
        const whatCell = el('td', what(event), 'what-cell');
        if (event.fingerprint) {
          whatCell.appendChild(el('code', event.fingerprint, 'sql'));
        }
        tr.appendChild(whatCell);
        tr.appendChild(el('td', event.purpose || '—'));
        const d = el('td');
        d.appendChild(decision(event));
        tr.appendChild(d);
        tr.appendChild(el('td', (event.policies || []).join(', ') || '—', 'policies-cell'));
        const open = el('button', 'Open', 'open');
        open.type = 'button';
        open.setAttribute('aria-label', 'Open event ' + event.seq);
        open.addEventListener('click', () => openEvent(event.seq));
        const cell = el('td');
        cell.appendChild(open);
        tr.appendChild(cell);
        labelCells(tr, ['Seq', 'Time', 'Who', 'What', 'Why', 'Decision', 'Policies']);
        body.appendChild(tr);
      }
      $('results').hidden = answer.events.length === 0;
      const last = offset + answer.events.length;
      $('search-summary').textContent = answer.total === 0 ? 'No events match.'
        : 'Events ' + (offset + 1) + '–' + last + ' of ' + answer.total + ' (newest first).';
      $('prev-page').disabled = offset === 0;
      $('next-page').disabled = answer.next_offset === null || answer.next_offset === undefined;
      status(answer.total + ' event(s) found.');
    } catch (e) {
      status('Search failed: ' + e.message, true);
    }
  }

  // ---------- event detail ----------

  async function openEvent(seq) {
    const section = $('event-section');
    section.hidden = false;
    $('event-title').textContent = 'Event ' + seq;
    const fields = $('event-fields');
    const proofFields = $('proof-fields');
    clear(fields);
    clear(proofFields);
    const mark = $('proof-badge');
    badge(mark, null, 'Checking the inclusion proof…');
    try {
      const [shown, proof] = await Promise.all([
        api('/v1/audit/events/' + seq),
        api('/v1/audit/proof/' + seq),
      ]);
      const entry = b64decode(shown.entry);
      // Show what was hashed, not the answer's parsed copy.
      const event = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(entry));
      field(fields, 'Time', formatTime(event.time_us));
      field(fields, 'Request', event.request_id);
      field(fields, 'Who', who(event) + (event.roles && event.roles.length ? ' (roles ' + event.roles.join(', ') + ')' : ''));
      field(fields, 'Why (purpose)', event.purpose);
      field(fields, 'What', what(event));
      field(fields, 'SQL fingerprint', event.fingerprint);
      field(fields, 'Decision', decision(event));
      field(fields, 'Policies', (event.policies || []).join(', '));
      field(fields, 'Rows returned', event.rows);
      const subjects = (event.subjects && event.subjects.ids) || [];
      field(fields, 'Data subjects', subjects.length ? subjects.join(', ') + (event.subjects.truncated ? ' …' : '')
        : (event.subjects && event.subjects.unattributed ? 'unattributed rows' : 'none'));
      field(fields, 'Anomaly', event.anomaly ? event.anomaly.action + ' (score ' + event.anomaly.score + ')' : '');
      field(fields, 'Latency', event.latency_us + ' µs');
      field(proofFields, 'Leaf hash', proof.leafHash);
      field(proofFields, 'Tree size', proof.treeSize);
      field(proofFields, 'Audit path', proof.proof.length + ' hash(es)');
      field(proofFields, 'Root', proof.root);
      field(proofFields, 'Checkpoint signed', proof.checkpoint.time);
      field(proofFields, 'Public key (Ed25519)', proof.checkpoint.public_key);
      const result = await verifyEvent(entry, seq, proof);
      if (result.ok) {
        badge(mark, true, 'Verified: this event is in the log, in checkpoint of ' + result.size +
          ' events signed ' + result.time + ' (checked in this browser).');
      } else {
        badge(mark, false, 'Not verified: ' + result.why + '.');
      }
      section.focus();
    } catch (e) {
      badge(mark, false, 'Not verified: ' + e.message);
      status('Could not open event ' + seq + ': ' + e.message, true);
    }
  }

  // ---------- timeline ----------

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      node.setAttribute(k, String(v));
    }
    return node;
  }

  async function runTimeline(event) {
    if (event) {
      event.preventDefault();
    }
    const since = $('t-range').value;
    status('Loading the timeline…');
    try {
      const answer = await api('/v1/audit/timeline?since=' + encodeURIComponent(since) + '&buckets=24');
      drawTimeline(answer);
      status('Timeline: ' + answer.events + ' event(s).');
    } catch (e) {
      status('Timeline failed: ' + e.message, true);
    }
  }

  function drawTimeline(answer) {
    const charts = $('timeline-charts');
    clear(charts);
    $('timeline-summary').textContent = answer.events + ' event(s) from ' + answer.since + ' to ' +
      answer.until + ', ' + answer.buckets + ' buckets of ' + Math.round(answer.bucket_seconds / 60) +
      ' min' + (answer.truncated ? ' (only the newest ' + answer.events + ' of ' + answer.total + ' counted)' : '') + '.';
    let max = 1;
    for (const p of answer.principals) {
      for (const v of p.requests) {
        max = Math.max(max, v);
      }
    }
    const W = 480;
    const H = 90;
    const n = answer.buckets;
    const bw = W / n;
    for (const p of answer.principals) {
      const figure = el('figure', null, 'chart');
      const t = p.totals;
      const label = p.principal + ': ' + t.requests + ' requests, ' + t.denials + ' denials, ' +
        t.anomalies + ' anomalies';
      figure.appendChild(el('figcaption', label));
      const chart = svg('svg', { viewBox: '0 0 ' + W + ' ' + (H + 14), role: 'img', 'aria-label': label,
        preserveAspectRatio: 'none' });
      chart.appendChild(svg('line', { x1: 0, y1: H, x2: W, y2: H, class: 'axis' }));
      for (let i = 0; i < n; i++) {
        const x = i * bw;
        const start = formatTime(answer.since_us + i * answer.bucket_seconds * 1e6);
        const group = svg('g');
        const title = svg('title');
        title.textContent = start + ': ' + p.requests[i] + ' requests, ' + p.denials[i] + ' denials, ' +
          p.anomalies[i] + ' anomalies';
        group.appendChild(title);
        const rh = (p.requests[i] / max) * (H - 6);
        group.appendChild(svg('rect', { x: x + 1, y: H - rh, width: Math.max(bw - 2, 1), height: rh,
          class: 'bar requests' }));
        const dh = (p.denials[i] / max) * (H - 6);
        if (p.denials[i] > 0) {
          group.appendChild(svg('rect', { x: x + bw / 4, y: H - dh, width: Math.max(bw / 2, 1), height: dh,
            class: 'bar denials' }));
        }
        if (p.anomalies[i] > 0) {
          group.appendChild(svg('circle', { cx: x + bw / 2, cy: Math.max(H - rh - 5, 4), r: 3.5,
            class: 'dot anomalies' }));
        }
        chart.appendChild(group);
      }
      const left = svg('text', { x: 0, y: H + 12, class: 'tick' });
      left.textContent = answer.since.slice(0, 16).replace('T', ' ');
      const right = svg('text', { x: W, y: H + 12, class: 'tick end' });
      right.textContent = answer.until.slice(0, 16).replace('T', ' ');
      chart.appendChild(left);
      chart.appendChild(right);
      figure.appendChild(chart);
      charts.appendChild(figure);
    }
    if (answer.principals.length === 0) {
      charts.appendChild(el('p', 'No events in this period.'));
    }
  }

  // ---------- subject report ----------

  function subjectPath() {
    return '/v1/audit/subjects/' + encodeURIComponent(state.subject);
  }

  async function runSubject(event) {
    event.preventDefault();
    const id = $('s-id').value.trim();
    if (!id) {
      return;
    }
    state.subject = id;
    status('Running the report…');
    try {
      const answer = await api(subjectPath() + '?limit=200');
      const body = $('subject-body');
      clear(body);
      for (const e of answer.events) {
        const tr = el('tr');
        tr.appendChild(el('td', e.seq));
        tr.appendChild(el('td', e.time));
        tr.appendChild(el('td', who(e)));
        tr.appendChild(el('td', what(e)));
        tr.appendChild(el('td', e.purpose || '—'));
        tr.appendChild(el('td', e.rows));
        labelCells(tr, ['Seq', 'Time', 'Who', 'What', 'Why', 'Rows']);
        body.appendChild(tr);
      }
      $('subject-results').hidden = answer.events.length === 0;
      let text = answer.total + ' access(es) returned data of ' + answer.subject +
        (answer.pseudonym ? ' (also seen as ' + answer.pseudonym + ')' : '') + '.';
      if (answer.total > answer.events.length) {
        text += ' The newest ' + answer.events.length + ' are listed; the CSV has all of them.';
      }
      if (answer.unattributed && answer.unattributed.events > 0) {
        text += ' ' + answer.unattributed.events + ' other read(s) returned rows no key names (aggregates and the like) and may include them: search ' +
          answer.unattributed.query + '.';
      }
      $('subject-summary').textContent = text;
      $('subject-csv').disabled = false;
      status('Report ready: ' + answer.total + ' access(es).');
    } catch (e) {
      status('Report failed: ' + e.message, true);
    }
  }

  async function downloadCsv() {
    if (!state.subject) {
      return;
    }
    status('Preparing the CSV…');
    try {
      const response = await api(subjectPath() + '?format=csv', { raw: true });
      const blob = await response.blob();
      const disposition = response.headers.get('content-disposition') || '';
      const match = /filename="([^"]+)"/.exec(disposition);
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = match ? match[1] : 'subject-report.csv';
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
      status('CSV downloaded: ' + a.download + '.');
    } catch (e) {
      status('CSV download failed: ' + e.message, true);
    }
  }

  // ---------- log health ----------

  async function loadHealth() {
    status('Reading the log health…');
    const fields = $('health-fields');
    const mark = $('checkpoint-badge');
    try {
      const h = await api('/v1/audit/health');
      clear(fields);
      field(fields, 'Events in the log', h.size);
      const cp = h.latest_checkpoint;
      if (cp) {
        field(fields, 'Latest checkpoint', cp.size + ' events, signed ' + cp.time);
        field(fields, 'Checkpoint root', cp.root);
        const signed = await verifyCheckpoint(cp);
        badge(mark, signed.ok, signed.ok ? 'Checkpoint signature verified in this browser.'
          : 'Checkpoint not verified: ' + signed.why + '.');
      } else {
        field(fields, 'Latest checkpoint', 'none signed yet');
        badge(mark, null, 'No checkpoint to verify yet.');
      }
      const v = h.last_verification;
      if (v) {
        field(fields, 'Last full verification', v.time);
        field(fields, 'Result', v.verified ? 'intact' : 'TAMPERED at seq ' + v.first_bad_seq + ': ' + v.problem);
        field(fields, 'Verified size', v.verified ? v.events + ' events' : '—');
      } else {
        field(fields, 'Last full verification', 'never (run one below)');
      }
      const pem = el('pre', h.public_key_pem, 'pem');
      field(fields, 'Log public key', pem);
      status('Log health loaded.');
    } catch (e) {
      status('Log health failed: ' + e.message, true);
    }
  }

  async function runVerify() {
    status('Verifying the whole log…');
    try {
      const v = await api('/v1/audit/verify');
      status(v.verified ? 'Full verification: ' + v.events + ' events intact.'
        : 'Full verification FAILED at seq ' + v.first_bad_seq + '.', !v.verified);
      await loadHealth();
    } catch (e) {
      status('Verification failed: ' + e.message, true);
    }
  }

  // ---------- start ----------

  document.addEventListener('DOMContentLoaded', async () => {
    $('sign-in-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', signOut);
    $('search-form').addEventListener('submit', (e) => {
      e.preventDefault();
      runSearch(0, true);
    });
    $('prev-page').addEventListener('click', () => runSearch(Math.max(0, state.offset - PAGE)));
    $('next-page').addEventListener('click', () => {
      if (state.nextOffset !== null && state.nextOffset !== undefined) {
        runSearch(state.nextOffset);
      }
    });
    for (const tab of document.querySelectorAll('.tab')) {
      tab.addEventListener('click', () => showPanel(tab.dataset.panel));
    }
    $('timeline-form').addEventListener('submit', runTimeline);
    $('subject-form').addEventListener('submit', runSubject);
    $('subject-csv').addEventListener('click', downloadCsv);
    $('health-refresh').addEventListener('click', loadHealth);
    $('health-verify').addEventListener('click', runVerify);
    $('event-section').tabIndex = -1;
    try {
      const session = await api('/console/session');
      showSignedIn(session);
      showPanel('search-section');
      await runSearch(0, true);
    } catch (e) {
      showSignedOut();
    }
  });
})();
