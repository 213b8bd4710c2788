// symhub web console: hash router, API client and the views (status, symbols, entry,
// missing, uploads, keys). Plain ES2020, no dependencies. Server data is only ever
// inserted as text (textContent / text nodes), never as HTML.
'use strict';

(() => {
  // ---------------------------------------------------------------- basics

  const KEY_STORAGE = 'symhub-key';
  const REFRESH_MS = 5000;
  const PAGE_SIZE = 50;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** Everything before the final "/ui/" of the page's path: "/sym/ui/" → "/sym". */
  function computeBase(pathname) {
    const i = pathname.lastIndexOf('/ui/');
    if (i >= 0) return pathname.slice(0, i);
    return pathname.replace(/\/ui$/, '').replace(/\/$/, '');
  }
  const BASE = computeBase(location.pathname);

  const $ = (sel) => document.querySelector(sel);

  /** Creates an element. props: class, text, dataset, on<event>, or attributes. */
  function h(tag, props = {}, ...children) {
    return fill(document.createElement(tag), props, children);
  }

  /** Creates an SVG element (attributes only). */
  function s(tag, props = {}, ...children) {
    return fill(document.createElementNS(SVG_NS, tag), props, children);
  }

  function fill(el, props, children) {
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.setAttribute('class', v);
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  /** Encodes a key for a URL path: each "/"-separated segment percent-encoded. */
  function encodeKeyPath(key) {
    return String(key).split('/').map(encodeURIComponent).join('/');
  }

  const entryHref = (key) => '#/entry/' + encodeURIComponent(key);

  // ---------------------------------------------------------------- formatting

  const isNothing = (v) => v === null || v === undefined || v === '' ||
    (Array.isArray(v) && v.length === 0);

  const DASH = '—';

  function fmtInt(n) {
    return Number(n).toLocaleString();
  }

  function humanBytes(n) {
    const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let v = Number(n);
    if (!Number.isFinite(v)) return DASH;
    if (Math.abs(v) < 1024) return `${v} B`;
    let u = -1;
    do { v /= 1024; u += 1; } while (Math.abs(v) >= 1024 && u < units.length - 1);
    return `${v.toFixed(1)} ${units[u]}`;
  }

  /** A size: human units, exact bytes in the title. */
  function bytesEl(n) {
    if (n === null || n === undefined) return h('span', { text: DASH });
    return h('span', { class: 'bytes', title: `${fmtInt(n)} bytes`, text: humanBytes(n) });
  }

  function parseDate(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function shortDate(iso) {
    const d = parseDate(iso);
    if (!d) return String(iso);
    return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
  }

  function shortTime(iso) {
    const d = parseDate(iso);
    if (!d) return String(iso);
    return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  }

  /** A date: local short date-time, the RFC 3339 string in the title. */
  function dateEl(iso) {
    if (isNothing(iso)) return h('span', { text: DASH });
    return h('time', { datetime: iso, title: iso, text: shortDate(iso) });
  }

  function fmtDuration(totalSeconds) {
    let sec = Math.max(0, Math.floor(Number(totalSeconds) || 0));
    const d = Math.floor(sec / 86400); sec -= d * 86400;
    const hr = Math.floor(sec / 3600); sec -= hr * 3600;
    const m = Math.floor(sec / 60); sec -= m * 60;
    if (d) return `${d} d ${hr} h`;
    if (hr) return `${hr} h ${m} min`;
    if (m) return `${m} min ${sec} s`;
    return `${sec} s`;
  }

  function percent(part, whole) {
    return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : DASH;
  }

  /** Text or an em dash for null/empty. */
  const orDash = (v) => (isNothing(v) ? DASH : String(v));

  // ---------------------------------------------------------------- API key

  let memoryKey = '';
  /** The scope of the key in use (from /api/whoami), or null. */
  let currentScope = null;
  const mayChange = () => currentScope === 'upload' || currentScope === 'admin';

  function getKey() {
    try { return sessionStorage.getItem(KEY_STORAGE) || ''; } catch { return memoryKey; }
  }

  function setKey(key) {
    memoryKey = key;
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch { /* storage disabled: the in-memory copy is used */ }
  }

  // ---------------------------------------------------------------- API client

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Calls base + "/api/" + path; resolves to the parsed JSON or throws ApiError. */
  async function api(path, { method = 'GET', body } = {}) {
    const headers = { Accept: 'application/json' };
    const key = getKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    let text;
    try {
      res = await fetch(`${BASE}/api/${path}`, init);
      text = await res.text();
    } catch (e) {
      throw new ApiError(0, 'network', `Could not reach the server (${e.message}).`);
    }
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!res.ok) {
      const message = (data && typeof data.message === 'string' && data.message) ||
        `${res.status} ${res.statusText}`.trim();
      throw new ApiError(res.status, (data && data.error) || `http_${res.status}`, message);
    }
    if (data === null || typeof data !== 'object') {
      throw new ApiError(res.status, 'bad_response', 'The server sent a response that is not JSON.');
    }
    return data;
  }

  /** A failed action on the page still shown: its message, and its button usable again. */
  function actionFailed(ctx, button, err) {
    if (!ctx.alive()) return;
    notice.error(errorText(err));
    button.disabled = false;
    button.focus();
  }

  /** The server's message for a failed action (delete, forget, revoke, create). */
  function errorText(err) {
    return err && err.message ? err.message : String(err);
  }

  /** The text to show for a page that failed to load; 401/403 say the page needs a key. */
  function describeError(err, scope) {
    const msg = errorText(err);
    if (!(err instanceof ApiError)) return msg;
    const what = scope ? `an API key with ${scope} scope` : 'an API key';
    if (err.status === 401) return `This page needs ${what}: ${msg}`;
    if (err.code === 'insufficient_scope') {
      return scope ? `This page needs ${what}: ${msg}` : `This page needs a key with a wider scope: ${msg}`;
    }
    if (err.status === 403) return `The key was refused: ${msg}`;
    return msg;
  }

  // ---------------------------------------------------------------- notice

  const notice = {
    el: null,
    pending: null,
    show(text, kind) {
      this.el.className = kind;
      this.el.textContent = text;
    },
    ok(text) { this.show(text, 'ok'); },
    error(text) { this.show(text, 'error'); },
    clear() { this.show('', ''); },
    /** Shows text after the next navigation (which clears the notice). */
    afterNavigation(text, kind) { this.pending = { text, kind }; },
  };

  // ---------------------------------------------------------------- in-page confirmation

  let closeOpenConfirm = null;

  /**
   * Shows a <div id="confirm" role="alertdialog"> right after `anchor`; resolves true
   * for Yes, false for Cancel / Escape. Focus starts on Cancel and returns to `returnTo`
   * when cancelled.
   */
  function askConfirm(anchor, text, yesLabel, returnTo) {
    if (closeOpenConfirm) closeOpenConfirm(false);
    return new Promise((resolve) => {
      const yes = h('button', { type: 'button', id: 'confirm-yes', class: 'danger', text: yesLabel });
      const no = h('button', { type: 'button', id: 'confirm-no', text: 'Cancel' });
      const box = h('div', {
        id: 'confirm', class: 'confirm', role: 'alertdialog',
        'aria-labelledby': 'confirm-text',
      }, h('p', { id: 'confirm-text', text }), h('div', { class: 'actions' }, yes, no));
      const finish = (ok) => {
        closeOpenConfirm = null;
        box.remove();
        if (!ok && returnTo && returnTo.isConnected) returnTo.focus();
        resolve(ok);
      };
      closeOpenConfirm = finish;
      yes.addEventListener('click', () => finish(true));
      no.addEventListener('click', () => finish(false));
      box.addEventListener('keydown', (e) => {
        if (e.key === 'Escape') { e.preventDefault(); finish(false); }
        // Focus stays in the dialog until it is answered.
        if (e.key === 'Tab') {
          e.preventDefault();
          (document.activeElement === yes ? no : yes).focus();
        }
      });
      anchor.after(box);
      no.focus();
    });
  }

  // ---------------------------------------------------------------- small view helpers

  function table(id, headings, rows, emptyText) {
    const head = h('thead', {}, h('tr', {}, headings.map((t) => h('th', { scope: 'col', text: t }))));
    const body = h('tbody', {}, rows.length ? rows : emptyRow(headings.length, emptyText));
    return h('div', { class: 'table-wrap' }, h('table', { id }, head, body));
  }

  function emptyRow(columns, text) {
    return h('tr', { class: 'empty' }, h('td', { colspan: columns, text }));
  }

  const keyCell = (key) => h('td', { class: 'key' }, key);
  const numCell = (n) => h('td', { class: 'num', text: isNothing(n) ? DASH : fmtInt(n) });
  const bytesCell = (n) => h('td', { class: 'num' }, bytesEl(n));
  const dateCell = (iso) => h('td', { class: 'date' }, dateEl(iso));
  const textCell = (v) => h('td', { text: orDash(v) });

  function stateCell(state) {
    return h('td', { class: `state is-${String(state).replace(/[^a-z0-9_-]/gi, '')}`, text: state });
  }

  function loading() {
    return h('p', { class: 'loading', text: 'Loading…' });
  }

  function section(title, ...children) {
    return h('section', { class: 'block' }, h('h2', { text: title }), children);
  }

  // ---------------------------------------------------------------- router

  const views = {
    status: viewStatus,
    symbols: viewSymbols,
    entry: viewEntry,
    missing: viewMissing,
    uploads: viewUploads,
    keys: viewKeys,
  };
  const navFor = { entry: 'symbols' };
  const titles = {
    status: 'Status', symbols: 'Symbols', entry: 'Symbol', missing: 'Missing symbols',
    uploads: 'Uploads', keys: 'API keys',
  };

  let routeToken = 0;
  let leaveView = null;

  function parseHash() {
    let raw = location.hash.replace(/^#/, '');
    if (raw === '' || raw === '/') raw = '/status';
    const q = raw.indexOf('?');
    const path = (q < 0 ? raw : raw.slice(0, q)).replace(/^\/+/, '');
    const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    const slash = path.indexOf('/');
    const name = slash < 0 ? path : path.slice(0, slash);
    const arg = slash < 0 ? '' : path.slice(slash + 1);
    return { name, arg, params };
  }

  /** Goes to a hash route; re-renders when the hash is already that. */
  function navigate(hash) {
    if (location.hash === hash) route(true);
    else location.hash = hash;
  }

  function setCurrentNav(name) {
    for (const a of document.querySelectorAll('nav a[data-nav]')) {
      if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  function route(moveFocus) {
    if (leaveView) leaveView();
    leaveView = null;
    if (closeOpenConfirm) closeOpenConfirm(false);
    const token = ++routeToken;
    const { name, arg, params } = parseHash();
    const view = views[name] || viewNotFound;
    setCurrentNav(navFor[name] || name);
    document.title = `${titles[name] || 'Not found'} · symhub`;

    notice.clear();
    if (notice.pending) {
      notice.show(notice.pending.text, notice.pending.kind);
      notice.pending = null;
    }

    const root = $('#view');
    root.replaceChildren();
    const ctx = {
      root,
      arg,
      params,
      alive: () => token === routeToken,
      onLeave: (fn) => { leaveView = fn; },
      /** Shows a failed load in the notice, unless the user has moved on. */
      fail(err, scope) {
        if (token !== routeToken) return;
        notice.error(describeError(err, scope));
      },
    };
    view(ctx);
    if (moveFocus) {
      const heading = root.querySelector('h1');
      if (heading) heading.focus();
    }
  }

  function heading(text, extraClass) {
    return h('h1', { tabindex: '-1', class: extraClass || null, text });
  }

  function viewNotFound(ctx) {
    ctx.root.append(
      heading('Page not found'),
      h('p', {}, 'There is no such page. Go to ', h('a', { href: '#/status', text: 'Status' }), '.'),
    );
  }

  // ---------------------------------------------------------------- status view

  function viewStatus(ctx) {
    const body = h('div', { class: 'status-body' }, loading());
    ctx.root.append(heading('Status'), body);
    let timer = null;
    let shownError = false;

    const load = async () => {
      timer = null;
      if (document.hidden && !body.querySelector('.loading')) {
        timer = setTimeout(load, REFRESH_MS); // the tab is in the background: skip this round
        return;
      }
      try {
        const data = await api('status');
        if (!ctx.alive()) return;
        body.replaceChildren(...renderStatus(data, ctx.root));
        if (shownError) { notice.clear(); shownError = false; }
      } catch (err) {
        if (!ctx.alive()) return;
        if (body.querySelector('.loading')) body.replaceChildren();
        ctx.fail(err);
        shownError = true;
      }
      if (ctx.alive()) timer = setTimeout(load, REFRESH_MS);
    };
    ctx.onLeave(() => { if (timer) clearTimeout(timer); timer = null; });
    load();
  }

  function renderStatus(data, root) {
    const width = Math.max(320, Math.floor(root.clientWidth || 720) - 8);
    return [
      statusSummary(data),
      section('Traffic', trafficStats(data.totals || {}), trafficCharts(data.history || {}, width)),
      section('Upstreams', upstreamTable(data.upstreams || [])),
      section('Downloads in progress', fillsTable(data.fills || [])),
      section('Storage', storageStats(data.cache || {}, data.store || {})),
    ];
  }

  function statusSummary(data) {
    return h('p', { class: 'summary' },
      'symhub ', h('span', { id: 'version', text: orDash(data.version) }),
      ', up ', h('span', { id: 'uptime', text: fmtDuration(data.uptime_s) }),
      data.started_at ? [' (since ', dateEl(data.started_at), ')'] : null,
      '.');
  }

  function stat(label, valueEl, id) {
    const value = valueEl instanceof Node ? valueEl : h('span', { text: valueEl });
    if (id) value.id = id;
    return h('div', { class: 'stat' }, h('dt', { text: label }), h('dd', {}, value));
  }

  function trafficStats(t) {
    const answered = (t.hits || 0) + (t.misses || 0) + (t.negatives || 0);
    return h('dl', { class: 'stats' },
      stat('Requests', fmtInt(t.requests || 0), 'total-requests'),
      stat('Hits', percent(t.hits || 0, answered), 'ratio-hits'),
      stat('Misses', percent(t.misses || 0, answered), 'ratio-misses'),
      stat('Negative answers', percent(t.negatives || 0, answered), 'ratio-negatives'),
      stat('Bytes served', bytesEl(t.bytes_served || 0), 'bytes-served'));
  }

  function upstreamTable(upstreams) {
    const rows = upstreams.map((u) => h('tr', { dataset: { upstream: u.name } },
      h('td', { class: 'name', text: u.name }),
      h('td', { class: 'url', text: u.url }),
      stateCell(u.down ? 'down' : 'up'),
      h('td', { class: 'num', text: u.latency_ms === null || u.latency_ms === undefined ? DASH : `${Math.round(u.latency_ms)} ms` }),
      h('td', { class: 'num', text: `${fmtInt(u.requests || 0)} / ${fmtInt(u.errors || 0)}` }),
      h('td', { class: 'last-error' }, isNothing(u.last_error) ? DASH
        : [h('span', { text: u.last_error }), u.last_error_at ? [' ', h('span', { class: 'when' }, '(', dateEl(u.last_error_at), ')')] : null]),
    ));
    return table('upstreams',
      ['Name', 'URL', 'State', 'Latency', 'Requests / errors', 'Last error'],
      rows, 'No upstreams configured');
  }

  function fillsTable(fills) {
    const rows = fills.map((f) => {
      const known = f.size !== null && f.size !== undefined;
      const bar = known
        ? h('progress', { max: Math.max(1, f.size), value: Math.min(f.received || 0, Math.max(1, f.size)) })
        : h('progress');
      bar.setAttribute('aria-label', `Download of ${f.key}`);
      return h('tr', { dataset: { key: f.key } },
        keyCell(f.key),
        textCell(f.upstream),
        h('td', { class: 'progress' }, bar, ' ', h('span', { class: 'progress-text' },
          bytesEl(f.received), ' of ', known ? bytesEl(f.size) : 'unknown size')),
        numCell(f.waiters));
    });
    return table('fills', ['Key', 'Upstream', 'Progress', 'Waiters'], rows, 'No downloads in progress');
  }

  function storageStats(cache, store) {
    const limited = cache.limit !== null && cache.limit !== undefined && cache.limit > 0;
    const cacheSize = h('span', { id: 'cache-size' }, bytesEl(cache.bytes || 0),
      limited ? [' of ', bytesEl(cache.limit)] : ' (no limit)');
    const meter = limited
      ? h('meter', { id: 'cache-meter', min: 0, max: cache.limit, value: cache.bytes || 0, high: cache.limit * 0.9, 'aria-label': 'Cache use' })
      : null;
    const storeSize = h('span', { id: 'store-size' }, bytesEl(store.bytes || 0));
    return h('dl', { class: 'stats' },
      h('div', { class: 'stat wide' }, h('dt', { text: 'Cache' }),
        h('dd', {}, cacheSize, meter ? [' ', meter] : null)),
      stat('Cache entries', fmtInt(cache.entries || 0), 'cache-entries'),
      h('div', { class: 'stat wide' }, h('dt', { text: 'Store' }),
        h('dd', {}, storeSize, ', ', h('span', { id: 'store-keys', text: `${fmtInt(store.keys || 0)} keys` }),
          store.shared ? h('span', { class: 'shared', text: ' (shared: bucket + PostgreSQL)' }) : null)));
  }

  // ---------------------------------------------------------------- status charts

  const REQUEST_SERIES = [
    { field: 'hits', label: 'Hits', cls: 'hits' },
    { field: 'misses', label: 'Misses', cls: 'misses' },
    { field: 'negatives', label: 'Negative answers', cls: 'negatives' },
  ];
  const BYTES_SERIES = [{ field: 'bytes', label: 'Bytes served', cls: 'bytes' }];

  function trafficCharts(history, width) {
    const points = Array.isArray(history.points) ? history.points : [];
    const interval = history.interval_s || 10;
    const span = fmtDuration(points.length * interval);
    const sums = REQUEST_SERIES.map((se) => points.reduce((a, p) => a + (p[se.field] || 0), 0));
    const bytes = points.reduce((a, p) => a + (p.bytes || 0), 0);
    const reqLabel = `Requests per ${interval} s interval over the last ${span}: ` +
      REQUEST_SERIES.map((se, i) => `${fmtInt(sums[i])} ${se.label.toLowerCase()}`).join(', ');
    const bytesLabel = `Bytes served per ${interval} s interval over the last ${span}: ${humanBytes(bytes)} in all`;
    return h('div', { class: 'charts' },
      h('figure', { class: 'chart-box' },
        barChart('chart', points, REQUEST_SERIES, { width, height: 170, label: reqLabel, fmt: fmtInt }),
        h('figcaption', {}, `Requests per ${interval} s`, legend(REQUEST_SERIES))),
      h('figure', { class: 'chart-box' },
        barChart('bytes-chart', points, BYTES_SERIES, { width, height: 110, label: bytesLabel, fmt: humanBytes, binary: true }),
        h('figcaption', {}, `Bytes served per ${interval} s`, legend(BYTES_SERIES))));
  }

  function legend(series) {
    return h('ul', { class: 'legend' }, series.map((se) =>
      h('li', {}, h('span', { class: `swatch ${se.cls}`, 'aria-hidden': 'true' }), se.label)));
  }

  /** A stacked bar chart; newest point on the right, at least 60 slots wide. */
  function barChart(id, points, series, { width, height, label, fmt, binary }) {
    const pad = { left: 64, right: 8, top: 8, bottom: 20 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const totals = points.map((p) => series.reduce((a, se) => a + (p[se.field] || 0), 0));
    const max = niceCeil(Math.max(1, ...totals), binary);
    const slots = Math.max(points.length, 60);
    const slotW = plotW / slots;
    const gap = slotW > 3 ? 1 : 0;
    const y = (v) => pad.top + plotH - (v / max) * plotH;

    const svg = s('svg', {
      id, class: 'chart', role: 'img', 'aria-label': label,
      viewBox: `0 0 ${width} ${height}`, width, height,
      preserveAspectRatio: 'xMinYMin meet',
    });
    if (!points.length) {
      svg.append(s('line', { x1: pad.left, x2: pad.left + plotW, y1: y(0), y2: y(0), class: 'baseline' }));
      svg.append(s('text', { x: pad.left + plotW / 2, y: pad.top + plotH / 2, 'text-anchor': 'middle', class: 'axis' }, 'No data yet'));
      return svg;
    }
    const bars = s('g', { class: 'bars' });
    points.forEach((p, i) => {
      const x = pad.left + (slots - points.length + i) * slotW;
      bars.append(barStack(p, series, { x, w: Math.max(slotW - gap, 0.5), top: pad.top }, y, fmt));
    });
    svg.append(gridLines(pad, plotW, max, y, fmt), bars, timeAxis(points, pad, width, height));
    return svg;
  }

  function barStack(point, series, { x, w, top: plotTop }, y, fmt) {
    const g = s('g', {});
    const parts = series.map((se) => `${se.label.toLowerCase()} ${fmt(point[se.field] || 0)}`);
    g.append(s('title', {}, `${shortDate(point.at)}: ${parts.join(', ')}`));
    let base = 0;
    for (const se of series) {
      const v = point[se.field] || 0;
      if (v > 0) {
        const top = y(base + v);
        g.append(s('rect', { class: `bar ${se.cls}`, x: x.toFixed(2), y: top.toFixed(2), width: w.toFixed(2), height: (y(base) - top).toFixed(2) }));
      }
      base += v;
    }
    // An invisible full-height rect so the tooltip shows over the whole column.
    g.append(s('rect', { class: 'hover', x: x.toFixed(2), y: plotTop, width: w.toFixed(2), height: (y(0) - plotTop).toFixed(2) }));
    return g;
  }

  function gridLines(pad, plotW, max, y, fmt) {
    const g = s('g', { class: 'grid' });
    for (const v of max >= 2 ? [0, max / 2, max] : [0, max]) {
      const yy = y(v).toFixed(2);
      g.append(
        s('line', { x1: pad.left, x2: pad.left + plotW, y1: yy, y2: yy, class: v === 0 ? 'baseline' : 'gridline' }),
        s('text', { x: pad.left - 6, y: yy, dy: '0.32em', 'text-anchor': 'end', class: 'axis' }, fmt(v)));
    }
    return g;
  }

  function timeAxis(points, pad, width, height) {
    const g = s('g', { class: 'time-axis' });
    const yy = height - 5;
    g.append(s('text', { x: width - pad.right, y: yy, 'text-anchor': 'end', class: 'axis' }, shortTime(points[points.length - 1].at)));
    if (points.length > 1) {
      g.append(s('text', { x: pad.left, y: yy, 'text-anchor': 'start', class: 'axis' }, shortTime(points[0].at)));
    }
    return g;
  }

  /**
   * Rounds up to 1, 2 or 5 times a power of ten; with `binary`, of a power of ten times
   * a power of 1024 (so byte axes read 200 MiB, not 190.7 MiB).
   */
  function niceCeil(v, binary) {
    const unit = binary ? Math.pow(1024, Math.max(0, Math.floor(Math.log(v) / Math.log(1024)))) : 1;
    const x = v / unit;
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 5, 10]) if (m * p >= x) return Math.max(1, Math.ceil(m * p * unit));
    return v;
  }

  // ---------------------------------------------------------------- symbols view

  function viewSymbols(ctx) {
    const q = ctx.params.get('q') || '';
    const input = h('input', { id: 'search-input', type: 'search', name: 'q', value: q, spellcheck: 'false' });
    const form = h('form', { id: 'search-form', class: 'search', role: 'search' },
      h('label', { for: 'search-input', text: 'Debug file, debug id, code file, code id or key prefix' }),
      h('div', { class: 'row' }, input, h('button', { id: 'search-button', type: 'submit', text: 'Search' })));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = input.value.trim();
      navigate(text ? `#/symbols?q=${encodeURIComponent(text)}` : '#/symbols');
    });
    const results = h('div', { class: 'results' }, loading());
    ctx.root.append(heading('Symbols'), form, results);
    loadSymbols(ctx, q, results);
  }

  function symbolsQuery(q, after) {
    const p = new URLSearchParams({ q, limit: String(PAGE_SIZE) });
    if (after) p.set('after', after);
    return `symbols?${p}`;
  }

  async function loadSymbols(ctx, q, results) {
    let data;
    try {
      data = await api(symbolsQuery(q, null));
    } catch (err) {
      if (ctx.alive()) { results.replaceChildren(); ctx.fail(err); }
      return;
    }
    if (!ctx.alive()) return;
    const list = data.symbols || [];
    const count = h('p', { id: 'result-count', class: 'muted' });
    const wrap = table('results', ['Key', 'Size', 'Kind', 'Uploader', 'Uploaded'],
      list.map(symbolRow), 'No symbols match');
    const tbody = wrap.querySelector('tbody');
    const more = h('button', { id: 'more', type: 'button', text: 'More' });
    let next = data.next;
    let shown = list.length;
    let busy = false;
    const update = () => {
      count.textContent = `${fmtInt(shown)} shown${next ? ', more available' : ''}`;
      more.hidden = !next;
    };
    more.addEventListener('click', async () => {
      if (busy) return;
      busy = true;
      more.setAttribute('aria-busy', 'true');
      try {
        const page = await api(symbolsQuery(q, next));
        if (!ctx.alive()) return;
        const rows = (page.symbols || []).map(symbolRow);
        tbody.append(...rows);
        shown += rows.length;
        next = page.next;
        update();
        if (!next && rows.length) rows[0].querySelector('a').focus();
      } catch (err) {
        if (ctx.alive()) notice.error(describeError(err));
      } finally {
        busy = false;
        more.removeAttribute('aria-busy');
      }
    });
    update();
    results.replaceChildren(count, wrap, h('p', { class: 'more' }, more));
  }

  function symbolRow(sym) {
    return h('tr', { dataset: { key: sym.key } },
      h('td', { class: 'key' }, h('a', { class: 'entry-link', href: entryHref(sym.key), text: sym.key })),
      bytesCell(sym.size),
      textCell(sym.kind),
      textCell(sym.uploader),
      dateCell(sym.uploaded_at));
  }

  // ---------------------------------------------------------------- entry view

  const ENTRY_FIELDS = [
    ['key', 'Key'], ['size', 'Size'], ['sha256', 'SHA-256'], ['source', 'Source'],
    ['uploader', 'Uploader'], ['uploaded_at', 'Uploaded'], ['kind', 'Kind'],
    ['debug_file', 'Debug file'], ['debug_id', 'Debug id'], ['code_file', 'Code file'],
    ['code_id', 'Code id'], ['upstream', 'Upstream'], ['transactions', 'Transactions'],
    ['package', 'Package'],
  ];
  const MONO_FIELDS = new Set(['key', 'sha256', 'debug_file', 'debug_id', 'code_file', 'code_id']);

  function viewEntry(ctx) {
    let key;
    try { key = decodeURIComponent(ctx.arg); } catch { key = ctx.arg; }
    const body = h('div', {}, loading());
    ctx.root.append(heading(key || 'Symbol', 'key-heading'), body);
    if (!key) { body.replaceChildren(); notice.error('No symbol key in the address.'); return; }
    api(`symbols/${encodeKeyPath(key)}`).then((data) => {
      if (ctx.alive()) body.replaceChildren(...renderEntry(ctx, data));
    }, (err) => {
      if (ctx.alive()) { body.replaceChildren(backToSymbols()); ctx.fail(err); }
    });
  }

  function backToSymbols() {
    return h('p', {}, h('a', { href: '#/symbols', text: 'Back to symbols' }));
  }

  function entryValue(field, v) {
    if (field === 'size') {
      return isNothing(v) ? DASH : `${humanBytes(v)} (${fmtInt(v)} bytes)`;
    }
    if (field === 'uploaded_at') return dateEl(v);
    if (field === 'transactions') return isNothing(v) ? DASH : v.join(', ');
    return orDash(v);
  }

  function renderEntry(ctx, data) {
    const dl = h('dl', { id: 'entry', class: 'fields' });
    for (const [field, label] of ENTRY_FIELDS) {
      const mono = MONO_FIELDS.has(field) && !isNothing(data[field]);
      const dd = h('dd', { dataset: { field }, class: mono ? 'mono' : null },
        entryValue(field, data[field]));
      dl.append(h('dt', { text: label }), dd);
    }
    const others = data.other_keys || [];
    dl.append(h('dt', { text: 'Other names' }), h('dd', { dataset: { field: 'other_keys' } },
      others.length
        ? h('ul', { class: 'plain mono', id: 'other-keys' }, others.map((k) => h('li', {}, h('a', { class: 'entry-link', href: entryHref(k), text: k }))))
        : DASH));

    const actions = h('div', { class: 'actions' });
    if (data.download_url) {
      const link = h('a', { id: 'download-link', class: 'button', href: BASE + data.download_url, download: true, text: 'Download' });
      link.addEventListener('click', (e) => downloadWithKey(e, link));
      actions.append(link);
    }
    if (data.deletable) actions.append(deleteButton(ctx, data.key));
    return [dl, actions];
  }

  /**
   * With a key in use, the file is fetched with it (a plain link would make the browser
   * prompt for Basic credentials when downloads need a key) and saved from memory.
   */
  async function downloadWithKey(e, link) {
    const key = getKey();
    if (!key) return;
    e.preventDefault();
    try {
      const res = await fetch(link.href, { headers: { Authorization: `Bearer ${key}` }, cache: 'no-store' });
      if (!res.ok) throw new Error(`${res.status} ${res.statusText}`.trim());
      const url = URL.createObjectURL(await res.blob());
      const save = h('a', { href: url, download: link.href.split('/').pop() });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      notice.error(`Download failed: ${errorText(err)}`);
    }
  }

  function deleteButton(ctx, key) {
    const button = h('button', { id: 'delete-button', type: 'button', class: 'danger', text: 'Delete' });
    button.addEventListener('click', async () => {
      const ok = await askConfirm(button.parentElement, `Delete ${key} from the store? This cannot be undone.`, 'Delete', button);
      if (!ok) return;
      button.disabled = true;
      try {
        const res = await api(`symbols/${encodeKeyPath(key)}`, { method: 'DELETE' });
        if (!ctx.alive()) return;
        notice.afterNavigation(`Deleted ${res.deleted || key}`, 'ok');
        navigate('#/symbols');
      } catch (err) {
        actionFailed(ctx, button, err);
      }
    });
    return button;
  }

  // ---------------------------------------------------------------- missing view

  function viewMissing(ctx) {
    const state = { order: 'count', offset: 0, total: 0 };
    const select = h('select', { id: 'missing-order' },
      h('option', { value: 'count', text: 'Most requested' }),
      h('option', { value: 'recent', text: 'Most recent' }));
    const prev = h('button', { id: 'prev', type: 'button', text: 'Previous' });
    const next = h('button', { id: 'next', type: 'button', text: 'Next' });
    const range = h('span', { id: 'missing-range', class: 'range', 'aria-live': 'polite' });
    const list = h('div', { class: 'results' }, loading());
    const pager = h('div', { class: 'pager' }, prev, range, next);
    ctx.root.append(heading('Missing symbols'),
      h('p', { class: 'muted', text: 'Symbols that were asked for and found nowhere. Forgetting one makes symhub ask the upstreams again next time.' }),
      h('div', { class: 'controls' }, h('label', { for: 'missing-order', text: 'Order' }), select),
      list, pager);

    const updateRange = () => {
      const rows = list.querySelectorAll('tr[data-key]').length;
      range.textContent = rows
        ? `${fmtInt(state.offset + 1)}–${fmtInt(state.offset + rows)} of ${fmtInt(state.total)}`
        : `0 of ${fmtInt(state.total)}`;
      prev.disabled = state.offset <= 0;
      next.disabled = state.offset + rows >= state.total;
    };
    let busy = false;
    const load = async (focusAfter) => {
      busy = true;
      list.setAttribute('aria-busy', 'true');
      try {
        const p = new URLSearchParams({ order: state.order, limit: String(PAGE_SIZE), offset: String(state.offset) });
        const data = await api(`missing?${p}`);
        if (!ctx.alive()) return;
        const items = data.missing || [];
        state.total = data.total || 0;
        if (!items.length && state.offset > 0) {
          state.offset = Math.max(0, state.offset - PAGE_SIZE);
          return load(focusAfter);
        }
        list.replaceChildren(table('missing',
          ['Key', 'Requests', 'First seen', 'Last seen', 'Answers', 'Clients', 'Action'],
          items.map((m) => missingRow(ctx, m, state, updateRange)), 'No missing symbols'));
      } catch (err) {
        if (!ctx.alive()) return;
        list.replaceChildren();
        ctx.fail(err);
      }
      busy = false;
      list.removeAttribute('aria-busy');
      updateRange();
      if (focusAfter && focusAfter.disabled) {
        const other = focusAfter === prev ? next : prev;
        (other.disabled ? ctx.root.querySelector('h1') : other).focus();
      }
    };
    select.addEventListener('change', () => { state.order = select.value; state.offset = 0; load(null); });
    prev.addEventListener('click', () => {
      if (busy || prev.disabled) return;
      state.offset = Math.max(0, state.offset - PAGE_SIZE);
      load(prev);
    });
    next.addEventListener('click', () => {
      if (busy || next.disabled) return;
      state.offset += PAGE_SIZE;
      load(next);
    });
    load(null);
  }

  function missingRow(ctx, m, state, updateRange) {
    const forget = h('button', { type: 'button', class: 'forget', 'aria-label': `Forget ${m.key}`, text: 'Forget' });
    const row = h('tr', { dataset: { key: m.key } },
      keyCell(m.key),
      numCell(m.count),
      dateCell(m.first_seen),
      dateCell(m.last_seen),
      h('td', { class: 'answers', text: orDash(m.answers) }),
      textCell((m.clients || []).join(', ')),
      h('td', {}, mayChange() ? forget : DASH));
    forget.addEventListener('click', async () => {
      forget.disabled = true;
      try {
        const res = await api(`missing/${encodeKeyPath(m.key)}`, { method: 'DELETE' });
        if (!ctx.alive()) return;
        const focusNext = neighbourButton(row, 'button.forget');
        const tbody = row.parentElement;
        row.remove();
        state.total = Math.max(0, state.total - 1);
        if (!tbody.querySelector('tr[data-key]')) tbody.append(emptyRow(7, 'No missing symbols'));
        updateRange();
        notice.ok(`Forgot ${typeof res.key === 'string' ? res.key : m.key}`);
        (focusNext || ctx.root.querySelector('h1')).focus();
      } catch (err) {
        if (!ctx.alive()) return;
        forget.disabled = false;
        forget.focus();
        notice.error(errorText(err));
      }
    });
    return row;
  }

  /** The matching control in the next row, else in the previous one. */
  function neighbourButton(row, selector) {
    const sib = row.nextElementSibling || row.previousElementSibling;
    return sib ? sib.querySelector(selector) : null;
  }

  // ---------------------------------------------------------------- uploads view

  function viewUploads(ctx) {
    const tx = h('div', {}, loading());
    const pk = h('div', {}, loading());
    ctx.root.append(heading('Uploads'), section('Transactions', tx), section('Packages', pk));
    const show = (el, promise, render) => promise.then((data) => {
      if (ctx.alive()) el.replaceChildren(render(data));
    }, (err) => {
      if (ctx.alive()) el.replaceChildren(h('p', { class: 'inline-error', text: describeError(err) }));
    });
    show(tx, api('transactions'), (d) => transactionsTable(d.transactions || []));
    show(pk, api('packages'), (d) => packagesTable(d.packages || []));
  }

  function transactionsTable(list) {
    const rows = list.map((t) => h('tr', { dataset: { transaction: t.id } },
      numCell(t.id),
      textCell(t.product),
      textCell(t.version),
      h('td', { class: 'comment', text: orDash(t.comment) }),
      textCell(t.uploader),
      dateCell(t.created_at),
      dateCell(t.expires_at),
      stateCell(t.state),
      dateCell(t.deleted_at),
      numCell(t.key_count),
      bytesCell(t.bytes)));
    return table('transactions',
      ['ID', 'Product', 'Version', 'Comment', 'Uploader', 'Created', 'Expires', 'State', 'Deleted', 'Keys', 'Size'],
      rows, 'None');
  }

  function packagesTable(list) {
    const rows = list.map((p) => h('tr', { dataset: { package: p.name } },
      h('td', { class: 'key', text: p.name }),
      bytesCell(p.size),
      numCell(p.key_count),
      dateCell(p.added_at),
      numCell(p.priority)));
    return table('packages', ['Name', 'Size', 'Keys', 'Added', 'Priority'], rows, 'None');
  }

  // ---------------------------------------------------------------- keys view

  function viewKeys(ctx) {
    const list = h('div', {}, loading());
    const result = h('div', { id: 'new-key-result', class: 'new-key', tabindex: '-1', hidden: true });
    const reload = () => loadKeys(ctx, list);
    ctx.root.append(heading('API keys'), section('Keys', list));
    // Only an admin key may make one: others reach this page by its address alone, and
    // are told so by the list's error rather than offered a form that is refused.
    if (currentScope === 'admin') {
      ctx.root.append(section('New key', newKeyForm(ctx, result, reload), result));
    }
    reload();
  }

  async function loadKeys(ctx, list) {
    try {
      const data = await api('keys');
      if (!ctx.alive()) return;
      list.replaceChildren(keysTable(ctx, data.keys || [], () => loadKeys(ctx, list)));
    } catch (err) {
      if (!ctx.alive()) return;
      list.replaceChildren();
      ctx.fail(err, 'admin');
    }
  }

  function keysTable(ctx, keys, reload) {
    const rows = keys.map((k) => h('tr', { dataset: { keyName: k.name } },
      h('td', { class: 'key', text: k.name }),
      textCell(k.scope),
      textCell(k.source),
      dateCell(k.created_at),
      dateCell(k.expires_at),
      dateCell(k.revoked_at),
      stateCell(k.state),
      h('td', {}, k.state === 'active' && k.source === 'store' ? revokeButton(ctx, k.name, reload) : null)));
    return table('keys', ['Name', 'Scope', 'Source', 'Created', 'Expires', 'Revoked', 'State', 'Action'], rows, 'No keys');
  }

  function revokeButton(ctx, name, reload) {
    const button = h('button', { type: 'button', class: 'revoke danger', 'aria-label': `Revoke ${name}`, text: 'Revoke' });
    button.addEventListener('click', async () => {
      const ok = await askConfirm(button, `Revoke the key ${name}? Clients using it stop working at once.`, 'Revoke', button);
      if (!ok) return;
      button.disabled = true;
      try {
        const res = await api(`keys/${encodeURIComponent(name)}`, { method: 'DELETE' });
        if (!ctx.alive()) return;
        notice.ok(`Revoked ${res.revoked || name}`);
        await reload();
        const h2 = ctx.root.querySelector('section h2');
        if (h2 && ctx.alive()) { h2.tabIndex = -1; h2.focus(); }
      } catch (err) {
        actionFailed(ctx, button, err);
      }
    });
    return button;
  }

  function newKeyForm(ctx, result, reload) {
    const name = h('input', { id: 'new-key-name', name: 'name', required: true, autocomplete: 'off', spellcheck: 'false' });
    const scope = h('select', { id: 'new-key-scope', name: 'scope' },
      ['download', 'upload', 'admin'].map((v) => h('option', { value: v, text: v })));
    const expires = h('input', { id: 'new-key-expires', name: 'expires', placeholder: 'e.g. 90d', autocomplete: 'off' });
    const create = h('button', { id: 'new-key-create', type: 'submit', text: 'Create key' });
    const form = h('form', { id: 'new-key-form', class: 'inline-form' },
      field('new-key-name', 'Name', name),
      field('new-key-scope', 'Scope', scope),
      field('new-key-expires', 'Expires (optional)', expires),
      h('div', { class: 'field submit' }, create));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = { name: name.value.trim(), scope: scope.value };
      if (expires.value.trim()) body.expires = expires.value.trim();
      create.disabled = true;
      try {
        const res = await api('keys', { method: 'POST', body });
        if (!ctx.alive()) return;
        showNewKey(result, res);
        form.reset();
        notice.ok(`Created key ${res.name}`);
        await reload();
        result.focus();
      } catch (err) {
        if (ctx.alive()) {
          notice.error(errorText(err));
          create.disabled = false;
          create.focus();
        }
      } finally {
        create.disabled = false;
      }
    });
    return form;
  }

  function field(id, label, control) {
    return h('div', { class: 'field' }, h('label', { for: id, text: label }), control);
  }

  function showNewKey(result, res) {
    const code = h('code', { id: 'new-key-value', text: res.key });
    const copy = navigator.clipboard
      ? h('button', { id: 'new-key-copy', type: 'button', text: 'Copy' })
      : null;
    if (copy) {
      copy.addEventListener('click', () => {
        navigator.clipboard.writeText(res.key).then(
          () => notice.ok('Key copied to the clipboard'),
          () => notice.error('Could not copy; select the key and copy it by hand.'));
      });
    }
    result.replaceChildren(
      h('p', {}, 'New key ', h('strong', { text: res.name }), ` (${res.scope})`,
        res.expires_at ? [', expires ', dateEl(res.expires_at)] : ', does not expire', ':'),
      h('p', { class: 'key-value' }, code, copy ? [' ', copy] : null),
      h('p', { class: 'warning', text: 'copy it now; it is not shown again' }));
    result.hidden = false;
  }

  // ---------------------------------------------------------------- header key form

  function setKeysNavVisible(visible) {
    const a = $('nav a[data-nav="keys"]');
    a.hidden = !visible;
    a.closest('li').hidden = !visible;
  }

  /** Asks who the key belongs to; shows "name (scope)", "no key" or the error. */
  async function refreshWhoami() {
    const out = $('#whoami');
    if (!getKey()) {
      out.textContent = 'no key';
      currentScope = null;
      out.className = 'whoami';
      setKeysNavVisible(false);
      return null;
    }
    try {
      const me = await api('whoami');
      out.textContent = `${me.name} (${me.scope})`;
      out.className = 'whoami ok';
      setKeysNavVisible(me.scope === 'admin');
      currentScope = me.scope;
      return me;
    } catch (err) {
      out.textContent = err.message;
      currentScope = null;
      out.className = 'whoami error';
      setKeysNavVisible(false);
      throw err;
    }
  }

  function setupKeyForm() {
    const form = $('#key-form');
    const input = $('#key-input');
    const syncPlaceholder = () => { input.placeholder = getKey() ? 'key in use' : 'paste a key'; };
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (key && /[^\x21-\x7e]/.test(key)) {
        notice.error('An API key is printable ASCII without spaces.');
        return;
      }
      if (!key && !getKey()) {
        notice.error('Paste an API key first.');
        input.focus();
        return;
      }
      if (key) setKey(key);
      input.value = '';
      syncPlaceholder();
      let message;
      try {
        const me = await refreshWhoami();
        message = { text: `Using the key of ${me.name} (${me.scope})`, kind: 'ok' };
      } catch (err) {
        message = { text: err.message, kind: 'error' };
      }
      route(false);
      notice.show(message.text, message.kind);
    });
    $('#key-forget').addEventListener('click', () => {
      setKey('');
      input.value = '';
      syncPlaceholder();
      refreshWhoami();
      notice.afterNavigation('Key forgotten', 'ok');
      route(false);
    });
    syncPlaceholder();
  }

  // ---------------------------------------------------------------- start

  function start() {
    notice.el = $('#notice');
    notice.clear();
    setupKeyForm();
    window.addEventListener('hashchange', () => route(true));
    // The first page waits for the key's scope: it decides which actions are offered.
    refreshWhoami()
      .catch(() => { /* shown in #whoami */ })
      .finally(() => route(false));
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
