/* mosbridge dashboard: plain JS, no build step. Reads the JSON API under /api/v1 (same origin,
 * the mosbridge_token cookie or loopback access) and draws charts with the vendored uPlot.
 * Hash routes: #/ (overview), #/tenant/<name>, #/call/<sid>. Overview and tenant pages refresh
 * every 15 s. Every value from the API reaches the page through textContent, never as HTML. */
(function () {
  'use strict';

  const REFRESH_MS = 15000;
  const BANDS = ['excellent', 'good', 'fair', 'poor'];
  const BAND_COLOR = { excellent: '#22c55e', good: '#2dd4bf', fair: '#f59e0b', poor: '#ef4444' };
  const THRESHOLDS = [
    { mos: 4.0, color: BAND_COLOR.fair, label: '4.0 incident' },
    { mos: 3.6, color: BAND_COLOR.poor, label: '3.6 breaks' },
  ];
  const BAND_ZONES = [
    { lo: 4.3, hi: 9, color: 'rgba(34,197,94,0.07)' },
    { lo: 4.0, hi: 4.3, color: 'rgba(45,212,191,0.06)' },
    { lo: 3.6, hi: 4.0, color: 'rgba(245,158,11,0.07)' },
    { lo: -9, hi: 3.6, color: 'rgba(239,68,68,0.07)' },
  ];
  const COLORS = {
    mean: '#60a5fa', p10: '#c084fc', calls: 'rgba(148,163,184,0.30)', callsStroke: 'rgba(148,163,184,0.55)',
    mos: '#60a5fa', loss: '#f87171', lossFill: 'rgba(248,113,113,0.22)',
    grid: 'rgba(148,163,184,0.10)', axis: '#8fa0bd', tick: 'rgba(148,163,184,0.25)',
  };
  const IMPAIRMENTS = ['jitter', 'loss', 'delay', 'codec'];
  const WINDOWS = [['5m', '5 min'], ['1h', '1 hour'], ['24h', '24 hours']];
  const SPANS = { '1h': { span_s: 3600, bucket_s: 60 }, '24h': { span_s: 86400, bucket_s: 300 } };
  const DASH = '—';

  // For tests and for poking at the page from the console.
  const state = { COLORS, BAND_COLOR, charts: {}, ready: false, route: null };
  window.mosbridge = state;

  // ------------------------------------------------------------------ DOM helper

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k === 'style') Object.assign(el.style, v);
        else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else if (k === 'dataset') Object.assign(el.dataset, v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  /** Replace el's children, skipping null/undefined/false as h() does: the DOM's own
   *  replaceChildren writes a null (an optional card left out) as the text "null". */
  function fill(el, ...children) {
    el.replaceChildren();
    append(el, children);
  }

  // ------------------------------------------------------------------ formatting

  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

  function bandOf(mos) {
    if (!isNum(mos)) return null;
    if (mos >= 4.3) return 'excellent';
    if (mos >= 4.0) return 'good';
    if (mos >= 3.6) return 'fair';
    return 'poor';
  }
  const bandClass = (band) => 'band-' + (BANDS.includes(band) ? band : 'none');
  const fmtMos = (v) => (isNum(v) ? v.toFixed(2) : DASH);
  const fmtNum = (v, d = 1) => (isNum(v) ? v.toFixed(d) : DASH);
  const fmtInt = (v) => (isNum(v) ? Math.round(v).toLocaleString('en-US') : DASH);
  const fmtMs = (v, d = 1) => (isNum(v) ? v.toFixed(d) + ' ms' : DASH);
  const fmtPct = (v) => (isNum(v) ? v.toFixed(v !== 0 && Math.abs(v) < 10 ? 2 : 1) + ' %' : DASH);
  const fmtStr = (v) => (v === null || v === undefined || v === '' ? DASH : String(v));

  function fmtDur(s) {
    if (!isNum(s)) return DASH;
    if (s < 60) return s.toFixed(1) + ' s';
    const m = Math.floor(s / 60);
    const sec = Math.round(s - m * 60);
    if (m < 60) return `${m} m ${String(sec).padStart(2, '0')} s`;
    return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} m`;
  }

  function parseTime(iso) {
    if (typeof iso !== 'string' || !iso) return null;
    const t = Date.parse(iso);
    return Number.isNaN(t) ? null : t;
  }

  const pad = (n) => String(n).padStart(2, '0');
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  function fmtClock(ms) {
    const d = new Date(ms);
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }

  /** "13:40:05" today (UTC), "Nov 26 13:40:05" otherwise. */
  function fmtTime(iso, nowMs) {
    const t = parseTime(iso);
    if (t === null) return DASH;
    const d = new Date(t);
    const now = new Date(nowMs || Date.now());
    const sameDay = d.getUTCFullYear() === now.getUTCFullYear() && d.getUTCMonth() === now.getUTCMonth() &&
      d.getUTCDate() === now.getUTCDate();
    return (sameDay ? '' : `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()} `) + fmtClock(t);
  }

  function fmtFull(iso) {
    const t = parseTime(iso);
    if (t === null) return DASH;
    const d = new Date(t);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${fmtClock(t)} UTC`;
  }

  function fmtAgo(iso, nowMs) {
    const t = parseTime(iso);
    if (t === null) return DASH;
    const s = Math.max(0, Math.round(((nowMs || Date.now()) - t) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  function fmtSince(iso, nowMs) {
    const t = parseTime(iso);
    if (t === null) return DASH;
    const m = Math.max(0, Math.round(((nowMs || Date.now()) - t) / 60000));
    return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  const humanize = (key) => String(key).replace(/_/g, ' ').replace(/\bms\b/, '(ms)').replace(/\bpct\b/, '(%)');

  /** A value of an unknown report field, with its unit guessed from the key's suffix. */
  function fmtAuto(key, v) {
    if (v === null || v === undefined) return DASH;
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (isNum(v)) {
      if (/_ms$/.test(key)) return fmtMs(v);
      if (/_pct$/.test(key)) return fmtPct(v);
      return Number.isInteger(v) ? fmtInt(v) : v.toFixed(2);
    }
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  function mosSpan(mos, band) {
    const b = BANDS.includes(band) ? band : bandOf(mos);
    return h('span', { class: 'mos-cell ' + bandClass(b), title: b || '' }, fmtMos(mos));
  }

  function bandPill(band) {
    return BANDS.includes(band) ? h('span', { class: 'band-pill ' + bandClass(band) }, band) : null;
  }

  function planChip(plan) {
    return plan ? h('span', { class: 'chip plan-' + plan, title: 'plan' }, plan) : null;
  }

  function alertBadge(alert, nowMs) {
    if (!alert || alert.state !== 'firing') return null;
    return h('span', {
      class: 'alert-badge',
      title: `mean MOS ${fmtMos(alert.mos_at_fire)} when it fired (${fmtFull(alert.fired_at)}); ` +
        `firing for ${fmtSince(alert.fired_at, nowMs)}`,
    }, `ALERT firing since ${fmtTime(alert.fired_at, nowMs)}`);
  }

  function bandBar(bands) {
    const counts = BANDS.map((b) => (bands && isNum(bands[b]) ? bands[b] : 0));
    const total = counts.reduce((a, b) => a + b, 0);
    const bar = h('div', { class: 'bandbar', role: 'img',
      'aria-label': BANDS.map((b, i) => `${b} ${counts[i]}`).join(', ') });
    if (total > 0) {
      BANDS.forEach((b, i) => {
        if (counts[i] > 0) bar.append(h('span', { class: b, style: { width: (100 * counts[i] / total) + '%' },
          title: `${b}: ${counts[i]} call${counts[i] === 1 ? '' : 's'}` }));
      });
    }
    const legend = h('div', { class: 'bandlegend' }, BANDS.map((b, i) =>
      h('span', { class: 'bl-' + b }, h('span', { class: 'band-dot ' + b }), b, h('b', null, fmtInt(counts[i])))));
    return [bar, legend];
  }

  function table(columns, rows, opts) {
    const thead = h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.right ? 'r' : null }, c.label))));
    const tbody = h('tbody');
    for (const row of rows) {
      tbody.append(h('tr', opts && opts.rowAttrs ? opts.rowAttrs(row) : null,
        columns.map((c) => h('td', { class: [c.right ? 'r' : '', c.cls || ''].join(' ').trim() || null }, c.cell(row)))));
    }
    return h('div', { class: 'table-wrap' }, h('table', { class: 'data ' + ((opts && opts.cls) || '') }, thead, tbody));
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path) {
    let res;
    try {
      res = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' }, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'the bridge is unreachable');
    }
    if (res.status === 401 && document.body.dataset.auth === 'token') {
      try { sessionStorage.setItem('mosbridge.next', location.hash); } catch (e) { /* private mode */ }
      location.assign('/dashboard/login');
      throw new ApiError(401, 'signed out');
    }
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) throw new ApiError(res.status, (body && body.error) || `HTTP ${res.status}`);
    return body;
  }

  const enc = encodeURIComponent;

  // ------------------------------------------------------------------ charts (uPlot)

  function thresholdPlugin(zones) {
    return {
      hooks: {
        drawClear: [(u) => {
          if (!zones) return;
          const { left, top, width, height } = u.bbox;
          const ctx = u.ctx;
          ctx.save();
          for (const z of BAND_ZONES) {
            const y1 = Math.max(top, Math.min(top + height, u.valToPos(Math.min(z.hi, u.scales.y.max), 'y', true)));
            const y0 = Math.max(top, Math.min(top + height, u.valToPos(Math.max(z.lo, u.scales.y.min), 'y', true)));
            if (y0 > y1) { ctx.fillStyle = z.color; ctx.fillRect(left, y1, width, y0 - y1); }
          }
          ctx.restore();
        }],
        draw: [(u) => {
          const { left, top, width, height } = u.bbox;
          const ctx = u.ctx;
          const dpr = window.devicePixelRatio || 1;
          ctx.save();
          ctx.lineWidth = 1.5 * dpr;
          ctx.setLineDash([6 * dpr, 4 * dpr]);
          ctx.font = `600 ${10.5 * dpr}px ${getComputedStyle(document.body).fontFamily}`;
          ctx.textAlign = 'left';
          ctx.textBaseline = 'middle';
          for (const t of THRESHOLDS) {
            if (t.mos < u.scales.y.min || t.mos > u.scales.y.max) continue;
            const y = Math.round(u.valToPos(t.mos, 'y', true)) + 0.5;
            if (y < top || y > top + height) continue;
            ctx.strokeStyle = t.color;
            ctx.setLineDash([6 * dpr, 4 * dpr]);
            ctx.beginPath();
            ctx.moveTo(left, y);
            ctx.lineTo(left + width, y);
            ctx.stroke();
            const tw = ctx.measureText(t.label).width;
            const x = left + 6 * dpr;
            ctx.setLineDash([]);
            ctx.fillStyle = 'rgba(11,17,32,0.88)';
            ctx.fillRect(x - 4 * dpr, y - 7 * dpr, tw + 8 * dpr, 14 * dpr);
            ctx.fillStyle = t.color;
            ctx.fillText(t.label, x, y + 0.5 * dpr);
          }
          ctx.restore();
        }],
      },
    };
  }

  function tooltipPlugin(lines) {
    let tip = null;
    return {
      hooks: {
        init: [(u) => {
          tip = h('div', { class: 'chart-tip', hidden: true });
          u.over.append(tip);
          u.over.addEventListener('mouseleave', () => { tip.hidden = true; });
        }],
        setCursor: [(u) => {
          const idx = u.cursor.idx;
          if (idx === null || idx === undefined || u.cursor.left < 0) { tip.hidden = true; return; }
          const content = lines(u, idx);
          if (!content) { tip.hidden = true; return; }
          fill(tip, h('div', { class: 'tt' }, content[0]), ...content.slice(1).map((l) => h('div', null, l)));
          tip.hidden = false;
          const x = u.cursor.left;
          const w = u.over.clientWidth;
          tip.style.left = (x + 14 + tip.offsetWidth > w ? x - 14 - tip.offsetWidth : x + 14) + 'px';
          tip.style.top = '8px';
        }],
      },
    };
  }

  /** Indices of values whose neighbours are both null: without a point they would not show. */
  function isolated(u, seriesIdx) {
    const d = u.data[seriesIdx];
    const out = [];
    for (let i = 0; i < d.length; i++) {
      if (d[i] !== null && d[i] !== undefined && (i === 0 || d[i - 1] == null) && (i === d.length - 1 || d[i + 1] == null)) out.push(i);
    }
    return out;
  }

  function mosRange(values) {
    let lo = Infinity;
    for (const v of values) if (isNum(v) && v < lo) lo = v;
    const min = Math.max(1, Math.min(3.0, Math.floor((lo - 0.15) * 2) / 2));
    return [min, 4.6];
  }

  const MOS_INCRS = [0.1, 0.2, 0.5, 1];  // tick steps that print exactly with one decimal
  const CLOCK_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];  // s: ticks that print exactly as m:ss

  const axisCommon = {
    stroke: COLORS.axis,
    grid: { stroke: COLORS.grid, width: 1 },
    ticks: { stroke: COLORS.tick, width: 1, size: 4 },
    font: '11px system-ui, sans-serif',
  };

  function chartWidth(el) { return Math.max(320, el.clientWidth || el.parentElement.clientWidth || 800); }

  function makeChart(el, opts, data, key) {
    if (state.charts[key]) { state.charts[key].destroy(); delete state.charts[key]; }
    const u = new uPlot(Object.assign({ width: chartWidth(el), height: 280 }, opts), data, el);
    state.charts[key] = u;
    return u;
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const u of Object.values(state.charts)) {
        const el = u.root.parentElement;
        if (el) u.setSize({ width: chartWidth(el), height: u.height });
      }
    }, 120);
  });

  function destroyCharts() {
    for (const [k, u] of Object.entries(state.charts)) { u.destroy(); delete state.charts[k]; }
  }

  function tenantChart(el, series, spanKey) {
    const t = series && Array.isArray(series.t) ? series.t : [];
    const mean = t.map((_, i) => (series.mean && isNum(series.mean[i]) ? series.mean[i] : null));
    const p10 = t.map((_, i) => (series.p10 && isNum(series.p10[i]) ? series.p10[i] : null));
    const calls = t.map((_, i) => (series.calls && isNum(series.calls[i]) ? series.calls[i] : 0));
    const maxCalls = Math.max(1, ...calls);
    const bucket = series && isNum(series.bucket_s) ? series.bucket_s : SPANS[spanKey].bucket_s;
    const fmtTick = (u, splits) => splits.map((v) => {
      const d = new Date(v * 1000);
      return spanKey === '1h' || splits.length < 2 || (splits[1] - splits[0]) < 86400 ? `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}` : `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
    });
    const opts = {
      class: 'tenant-chart',
      padding: [12, 8, 0, 4],
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      scales: {
        x: { time: true, range: (u, min, max) => (t.length ? [t[0], t[t.length - 1] + bucket] : [min, max]) },
        y: { range: () => mosRange(mean.concat(p10)) },
        calls: { range: () => [0, maxCalls * 3] },
      },
      axes: [
        Object.assign({}, axisCommon, { values: fmtTick, space: 70 }),
        Object.assign({}, axisCommon, { label: 'MOS', labelSize: 18, labelFont: '600 11px system-ui, sans-serif', size: 46,
          incrs: MOS_INCRS, values: (u, s) => s.map((v) => v.toFixed(1)) }),
        Object.assign({}, axisCommon, { scale: 'calls', side: 1, grid: { show: false }, size: 44,
          label: 'calls', labelSize: 18, labelFont: '600 11px system-ui, sans-serif',
          values: (u, s) => s.map((v) => (Number.isInteger(v) && v <= maxCalls ? v : '')) }),
      ],
      series: [
        {},
        { label: 'calls', scale: 'calls', fill: COLORS.calls, stroke: COLORS.callsStroke, width: 1,
          paths: uPlot.paths.bars({ size: [0.8, 24], align: 1 }), points: { show: false } },
        { label: 'p10', stroke: COLORS.p10, width: 1.5, dash: [5, 4], spanGaps: false,
          points: { show: true, size: 5, fill: COLORS.p10, filter: isolated } },
        { label: 'mean', stroke: COLORS.mean, width: 2.25, spanGaps: false,
          points: { show: true, size: 6, fill: COLORS.mean, filter: isolated } },
      ],
      plugins: [thresholdPlugin(true), tooltipPlugin((u, i) => {
        const d = new Date(t[i] * 1000);
        return [`${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC, ${bucket >= 60 ? bucket / 60 + ' min' : bucket + ' s'}`,
          `mean MOS ${fmtMos(mean[i])}`, `p10 ${fmtMos(p10[i])}`, `${fmtInt(calls[i])} call${calls[i] === 1 ? '' : 's'}`];
      })],
    };
    return makeChart(el, opts, [t, calls, p10, mean], 'tenant');
  }

  function intervalChart(el, intervals) {
    const xs = [];
    const mos = [];
    const loss = [];
    for (const iv of intervals) {
      xs.push(isNum(iv.start_s) ? iv.start_s : xs.length ? xs[xs.length - 1] : 0);
      mos.push(isNum(iv.mos) ? iv.mos : null);
      loss.push(isNum(iv.loss_pct) ? iv.loss_pct : null);
    }
    // The last interval's step needs its end as a closing point.
    const last = intervals[intervals.length - 1];
    if (last && isNum(last.end_s) && last.end_s > xs[xs.length - 1]) {
      xs.push(last.end_s); mos.push(mos[mos.length - 1]); loss.push(loss[loss.length - 1]);
    }
    const maxLoss = Math.max(1, ...loss.filter(isNum));
    const clock = (v) => `${Math.floor(v / 60)}:${pad(Math.floor(v % 60))}`;
    const idxOf = (i) => Math.min(i, intervals.length - 1);
    const opts = {
      class: 'interval-chart',
      padding: [12, 8, 0, 4],
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      scales: {
        x: { time: false, range: (u, min, max) => [xs.length ? xs[0] : min, xs.length ? xs[xs.length - 1] : max] },
        y: { range: () => mosRange(mos) },
        loss: { range: () => [0, maxLoss * 2.5] },
      },
      axes: [
        // whole seconds and round minutes only: m:ss labels of half-second ticks would repeat
        Object.assign({}, axisCommon, { values: (u, s) => s.map(clock), space: 60, incrs: CLOCK_INCRS, label: 'time into the call', labelSize: 18,
          labelFont: '600 11px system-ui, sans-serif' }),
        Object.assign({}, axisCommon, { label: 'MOS', labelSize: 18, labelFont: '600 11px system-ui, sans-serif', size: 46,
          incrs: MOS_INCRS, values: (u, s) => s.map((v) => v.toFixed(1)) }),
        Object.assign({}, axisCommon, { scale: 'loss', side: 1, grid: { show: false }, size: 50, label: 'loss %', labelSize: 18,
          labelFont: '600 11px system-ui, sans-serif', values: (u, s) => s.map((v) => (v <= maxLoss ? v.toFixed(v < 10 ? 1 : 0) : '')) }),
      ],
      series: [
        {},
        { label: 'loss %', scale: 'loss', stroke: COLORS.loss, fill: COLORS.lossFill, width: 1.25,
          paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
        { label: 'MOS', stroke: COLORS.mos, width: 2.5, paths: uPlot.paths.stepped({ align: 1 }), spanGaps: false,
          points: { show: false } },
      ],
      plugins: [thresholdPlugin(true), tooltipPlugin((u, i) => {
        const iv = intervals[idxOf(i)];
        if (!iv) return null;
        const lines = [`${clock(iv.start_s || 0)}–${clock(iv.end_s || 0)} (${fmtNum((iv.end_s || 0) - (iv.start_s || 0), 1)} s)`,
          `MOS ${fmtMos(iv.mos)} · R ${fmtNum(iv.r)}`, `loss ${fmtPct(iv.loss_pct)}`];
        if ('jitter_ms' in iv) lines.push(`jitter ${fmtMs(iv.jitter_ms)}`);
        if (iv.dominant_impairment) lines.push(`dominant ${iv.dominant_impairment}`);
        return lines;
      })],
    };
    return makeChart(el, opts, [xs, loss, mos], 'intervals');
  }

  function legend(items) {
    return h('div', { class: 'chart-legend' }, items.map(([label, color, kind]) =>
      h('span', { style: kind === 'dash' ? { color } : null },
        h('span', { class: 'sw' + (kind ? ' ' + kind : ''), style: kind === 'dash' ? null : { background: color } }), label)));
  }

  const thresholdLegend = [['4.0 incident', BAND_COLOR.fair, 'dash'], ['3.6 breaks', BAND_COLOR.poor, 'dash']];

  // ------------------------------------------------------------------ chrome

  function setCrumbs(items) {
    const nav = document.getElementById('crumbs');
    const out = [];
    items.forEach(([label, href], i) => {
      if (i) out.push(h('span', { class: 'sep' }, '/'));
      out.push(href ? h('a', { href }, label) : h('span', { class: 'here' }, label));
    });
    fill(nav, ...out);
  }

  function setStatus(ok, text) {
    const el = document.getElementById('status');
    el.className = 'status' + (ok ? '' : ' error');
    fill(el, h('span', { class: 'dot' }), text);
  }

  function showError(main, err) {
    fill(main, h('div', { class: 'error-box', role: 'alert' },
      err && err.status === 404 ? `Not found: ${err.message}` : `Could not load this page: ${err && err.message ? err.message : err}`));
  }

  // ------------------------------------------------------------------ alerts table

  function alertsTable(alerts, nowMs, withTenant) {
    if (!alerts.length) return h('div', { class: 'empty' }, 'No alerts.');
    const cols = [
      { label: 'State', cell: (a) => h('span', { class: 'state ' + (a.state === 'firing' ? 'firing' : 'resolved') }, fmtStr(a.state)) },
    ];
    if (withTenant) cols.push({ label: 'Tenant', cell: (a) => (a.tenant ? h('a', { href: '#/tenant/' + enc(a.tenant) }, a.tenant) : DASH) });
    cols.push(
      { label: 'Rule', cell: (a) => fmtStr(a.rule) },
      { label: 'Fired', cell: (a) => h('span', { title: fmtFull(a.fired_at) }, fmtTime(a.fired_at, nowMs)) },
      { label: 'Resolved', cell: (a) => (a.resolved_at ? h('span', { title: fmtFull(a.resolved_at) }, fmtTime(a.resolved_at, nowMs)) : DASH) },
      { label: 'Duration', right: true, cell: (a) => (a.state === 'firing' ? fmtSince(a.fired_at, nowMs) :
        fmtSince(a.fired_at, parseTime(a.resolved_at) || nowMs)) },
      { label: 'MOS at fire', right: true, cell: (a) => mosSpan(a.mos_at_fire) },
      { label: 'MOS at resolve', right: true, cell: (a) => mosSpan(a.mos_at_resolve) },
      { label: 'Threshold', right: true, cell: (a) => fmtMos(a.threshold) },
      { label: 'Calls', right: true, cell: (a) => fmtInt(a.calls) },
    );
    return table(cols, alerts, { cls: 'alerts-table', rowAttrs: (a) => ({ 'data-alert-id': a.id, 'data-state': a.state }) });
  }

  // ------------------------------------------------------------------ overview

  function windowCell(key, label, w) {
    const mean = w && isNum(w.mean) ? w.mean : null;
    const band = bandOf(mean);
    return h('div', { class: 'win', 'data-window': key },
      h('div', { class: 'wl' }, label),
      h('div', { class: 'mos ' + bandClass(band), title: band ? `mean MOS, ${band}` : 'no calls' }, fmtMos(mean)),
      h('div', { class: 'band-label ' + bandClass(band) }, band || 'no calls'),
      h('div', { class: 'stats' },
        h('span', null, h('b', { class: 'calls' }, fmtInt(w ? w.calls || 0 : 0)), w && w.calls === 1 ? ' call' : ' calls'),
        h('span', null, 'p10 ', h('b', { class: 'p10' }, fmtMos(w && w.p10)))));
  }

  function tenantTile(t, nowMs) {
    const firing = t.alert && t.alert.state === 'firing';
    const w24 = (t.windows && t.windows['24h']) || {};
    return h('article', { class: 'tile' + (firing ? ' firing' : ''), 'data-tenant': t.tenant },
      h('div', { class: 'tile-head' },
        h('a', { class: 'tile-name', href: '#/tenant/' + enc(t.tenant) }, t.tenant),
        planChip(t.plan),
        alertBadge(t.alert, nowMs)),
      h('div', { class: 'windows' }, WINDOWS.map(([k, label]) => windowCell(k, label, t.windows && t.windows[k]))),
      h('div', { class: 'tile-bands' }, h('h3', { style: { marginBottom: '7px' } }, 'Bands, 24 hours'), bandBar(w24.bands)),
      h('div', { class: 'tile-foot' },
        h('span', null, 'last call ', h('span', { title: fmtFull(t.last_call_at) }, fmtAgo(t.last_call_at, nowMs))),
        h('span', null, '24 h min ', mosSpan(w24.min), ' · p50 ', mosSpan(w24.p50))));
  }

  function weightedMean(tenants, key) {
    let sum = 0;
    let n = 0;
    for (const t of tenants) {
      const w = t.windows && t.windows[key];
      if (w && isNum(w.mean) && w.calls) { sum += w.mean * w.calls; n += w.calls; }
    }
    return n ? sum / n : null;
  }

  class OverviewView {
    constructor() { this.autoRefresh = true; }

    async load(main, live) {
      const [summary, alerts] = await Promise.all([api('/api/v1/tenants'), api('/api/v1/alerts?limit=20')]);
      if (!live()) return;
      const nowMs = parseTime(summary.now) || Date.now();
      // The API's order (worst 5-minute mean first); firing alerts always lead.
      const isFiring = (t) => (t.alert && t.alert.state === 'firing' ? 0 : 1);
      const tenants = (summary.tenants || []).slice().sort((a, b) => isFiring(a) - isFiring(b));
      const firing = tenants.filter((t) => t.alert && t.alert.state === 'firing').length;
      const sumCalls = (k) => tenants.reduce((a, t) => a + ((t.windows && t.windows[k] && t.windows[k].calls) || 0), 0);
      const fleet = weightedMean(tenants, '1h');
      setCrumbs([['Overview', null]]);
      fill(main,
        h('div', { class: 'page-head' }, h('div', null,
          h('h1', null, 'Tenants'),
          h('div', { class: 'sub' }, `${tenants.length} tenant${tenants.length === 1 ? '' : 's'} · mean MOS per window, band by the mean`))),
        h('div', { class: 'kpis' },
          h('div', { class: 'kpi' }, h('div', { class: 'k' }, 'Fleet mean MOS, 1 hour'), h('div', { class: 'v ' + bandClass(bandOf(fleet)) }, fmtMos(fleet))),
          h('div', { class: 'kpi' }, h('div', { class: 'k' }, 'Calls, 1 hour'), h('div', { class: 'v' }, fmtInt(sumCalls('1h')))),
          h('div', { class: 'kpi' }, h('div', { class: 'k' }, 'Calls, 24 hours'), h('div', { class: 'v' }, fmtInt(sumCalls('24h')))),
          h('div', { class: 'kpi' }, h('div', { class: 'k' }, 'Alerts firing'), h('div', { class: 'v' + (firing ? ' alerting' : '') }, String(firing)))),
        tenants.length ? h('div', { class: 'tiles' }, tenants.map((t) => tenantTile(t, nowMs)))
          : h('div', { class: 'card empty' }, 'No calls reported yet.'),
        h('section', { class: 'section' },
          h('div', { class: 'section-head' }, h('h2', null, 'Recent alerts'), h('span', { class: 'muted' }, 'newest first')),
          h('div', { class: 'card' }, alertsTable(alerts.alerts || [], nowMs, true))));
      return nowMs;
    }
  }

  // ------------------------------------------------------------------ tenant page

  function callsTable(calls, nowMs) {
    if (!calls.length) return h('div', { class: 'empty' }, 'No calls yet.');
    return table([
      { label: 'Started (UTC)', cell: (c) => h('span', { title: fmtFull(c.started_at) }, fmtTime(c.started_at, nowMs)) },
      { label: 'Call SID', cls: 'sid', cell: (c) => h('a', { href: '#/call/' + enc(c.call_sid), class: 'call-link' }, c.call_sid) },
      { label: 'Duration', right: true, cell: (c) => fmtDur(c.duration_s) },
      { label: 'MOS', right: true, cell: (c) => mosSpan(c.mos, c.band) },
      { label: 'Dominant', cell: (c) => fmtStr(c.dominant_impairment) },
      { label: 'Jitter', right: true, cell: (c) => fmtMs(c.jitter_ms) },
      { label: 'Loss', right: true, cell: (c) => fmtPct(c.packet_loss_pct) },
      { label: 'Latency', right: true, cell: (c) => fmtMs(c.latency_ms, 0) },
      { label: 'Bridge p99', right: true, cell: (c) => fmtMs(c.bridge_latency_p99_ms, 2) },
      { label: 'End reason', cell: (c) => fmtStr(c.end_reason) },
    ], calls, { cls: 'calls-table', rowAttrs: (c) => ({ 'data-call-sid': c.call_sid }) });
  }

  function windowCard(key, label, w) {
    const mean = w && isNum(w.mean) ? w.mean : null;
    const band = bandOf(mean);
    return h('div', { class: 'stat-card', 'data-window': key },
      h('div', { class: 'wl' }, label),
      h('div', { class: 'big ' + bandClass(band) }, h('span', { class: 'mos' }, fmtMos(mean)), ' ', bandPill(band)),
      h('div', { class: 'row' },
        h('span', null, h('b', { class: 'calls' }, fmtInt(w ? w.calls || 0 : 0)), w && w.calls === 1 ? ' call' : ' calls'),
        h('span', null, 'p10 ', h('b', null, fmtMos(w && w.p10))),
        h('span', null, 'p50 ', h('b', null, fmtMos(w && w.p50))),
        h('span', null, 'p90 ', h('b', null, fmtMos(w && w.p90))),
        h('span', null, 'min ', h('b', null, fmtMos(w && w.min)))),
      bandBar(w && w.bands));
  }

  class TenantView {
    constructor(tenant) {
      this.tenant = tenant;
      this.autoRefresh = true;
      let saved = null;
      try { saved = localStorage.getItem('mosbridge.span'); } catch (e) { /* ignore */ }
      this.span = saved === '1h' ? '1h' : '24h';
    }

    async load(main, live) {
      const sp = SPANS[this.span];
      const q = enc(this.tenant);
      const [summary, calls, alerts] = await Promise.all([
        api(`/api/v1/tenants/${q}?span_s=${sp.span_s}&bucket_s=${sp.bucket_s}`),
        api(`/api/v1/calls?tenant=${q}&limit=50`),
        api(`/api/v1/alerts?tenant=${q}&limit=20`),
      ]);
      if (!live()) return;
      const nowMs = Date.now();
      const t = summary;
      setCrumbs([['Overview', '#/'], [t.tenant, null]]);
      const chartEl = h('div', { class: 'chart', id: 'tenant-chart' });
      const toggle = h('div', { class: 'toggle', role: 'group', 'aria-label': 'time span' },
        Object.keys(SPANS).map((k) => h('button', {
          type: 'button', class: k === this.span ? 'on' : null, 'data-span': k, 'aria-pressed': String(k === this.span),
          onclick: () => {
            if (this.span === k) return;
            this.span = k;
            try { localStorage.setItem('mosbridge.span', k); } catch (e) { /* ignore */ }
            this.refresh();
          },
        }, k === '1h' ? '1 hour' : '24 hours')));
      const bucket = t.series && isNum(t.series.bucket_s) ? t.series.bucket_s : sp.bucket_s;
      fill(main,
        h('div', { class: 'page-head' }, h('div', null,
          h('div', { class: 'title' }, h('h1', { class: 'tenant-title' }, t.tenant), planChip(t.plan), alertBadge(t.alert, nowMs)),
          h('div', { class: 'sub' }, 'last call ', h('span', { title: fmtFull(t.last_call_at) }, fmtAgo(t.last_call_at, nowMs)),
            t.alert && t.alert.state === 'firing' ? ` · alert fired at mean MOS ${fmtMos(t.alert.mos_at_fire)}, firing for ${fmtSince(t.alert.fired_at, nowMs)}` : ''))),
        h('div', { class: 'stat-cards' }, WINDOWS.map(([k, label]) => windowCard(k, label, t.windows && t.windows[k]))),
        h('section', { class: 'section card chart-card' },
          h('div', { class: 'chart-head' },
            h('div', null, h('h2', null, 'Rolling MOS'),
              h('div', { class: 'muted', style: { fontSize: '12.5px' } },
                `mean and p10 per ${bucket >= 60 ? bucket / 60 + '-minute' : bucket + '-second'} bucket, last ${this.span === '1h' ? 'hour' : '24 hours'}; bars: calls per bucket`)),
            legend([['mean', COLORS.mean], ['p10', COLORS.p10, 'dash'], ['calls', COLORS.callsStroke, 'bar'], ...thresholdLegend]),
            toggle),
          chartEl),
        h('section', { class: 'section' },
          h('div', { class: 'section-head' }, h('h2', null, 'Recent calls'), h('span', { class: 'muted' }, `newest ${(calls.calls || []).length}`)),
          h('div', { class: 'card' }, callsTable(calls.calls || [], nowMs))),
        h('section', { class: 'section' },
          h('div', { class: 'section-head' }, h('h2', null, 'Alerts')),
          h('div', { class: 'card' }, alertsTable(alerts.alerts || [], nowMs, false))));
      tenantChart(chartEl, t.series, this.span);
      return nowMs;
    }
  }

  // ------------------------------------------------------------------ call page

  function fact(k, v) {
    return h('div', { class: 'fact' }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, v));
  }

  function tagsOf(tags) {
    const entries = tags && typeof tags === 'object' ? Object.entries(tags) : [];
    if (!entries.length) return DASH;
    return entries.sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) =>
      h('span', { class: 'tag' }, h('span', { class: 'tk' }, k + '='), fmtStr(typeof v === 'object' ? JSON.stringify(v) : v)));
  }

  function codecChain(chain) {
    if (!chain) return DASH;
    if (typeof chain === 'string') return chain;
    return Object.entries(chain).map(([k, v]) => `${k} ${v}`).join(' · ');
  }

  function contributionsCard(label, sub, d, scaleMax) {
    const c = (d && d.contributions) || {};
    const lost = IMPAIRMENTS.reduce((a, k) => a + (isNum(c[k]) ? c[k] : 0), 0);
    const dom = d && d.dominant_impairment;
    return h('div', { class: 'card contrib-dir', 'data-direction': label.toLowerCase() },
      h('h2', null, `${label} `, h('span', { class: 'muted', style: { fontWeight: 400 } }, sub)),
      h('div', { class: 'sub' }, 'MOS ', mosSpan(d && d.mos, d && d.band), ` · R ${fmtNum(d && d.r)} · `,
        `${fmtNum(lost)} R points lost`, dom ? ` · dominant: ${dom}` : ''),
      IMPAIRMENTS.map((k) => {
        const v = isNum(c[k]) ? c[k] : null;
        return h('div', { class: 'hbar' + (k === dom ? ' dominant' : ''), 'data-impairment': k },
          h('span', { class: 'name' }, k),
          h('div', { class: 'track' }, h('div', { class: 'fill imp-' + k, style: { width: (v ? Math.min(100, 100 * v / scaleMax) : 0) + '%' } })),
          h('span', { class: 'val' }, fmtNum(v)));
      }));
  }

  const FIGURES = [
    ['Frames', 'frames', fmtInt], ['Expected', 'expected', fmtInt], ['Lost', 'lost', fmtInt],
    ['Loss', 'loss_pct', fmtPct], ['Gaps', 'gaps', fmtInt], ['Longest loss run (frames)', 'max_loss_run', fmtInt],
    ['Burst ratio', 'burst_r', (v) => fmtNum(v, 2)], ['Duplicates', 'duplicates', fmtInt], ['Reordered', 'reordered', fmtInt],
    ['Too late', 'too_late', fmtInt], ['Chunk gaps', 'chunk_gaps', fmtInt],
    ['Jitter, mean (RFC 3550 J)', 'jitter_ms', fmtMs], ['Jitter, max', 'jitter_max_ms', fmtMs],
    ['Late frames', 'late_discards', fmtInt], ['Late', 'late_pct', fmtPct], ['Jitter-buffer delay', 'buffer_delay_ms', fmtMs], ['Mouth-to-ear delay', 'delay_ms', (v) => fmtMs(v, 0)],
    ['Bridge latency p50', ['bridge_latency_ms', 'p50'], (v) => fmtMs(v, 2)],
    ['Bridge latency p95', ['bridge_latency_ms', 'p95'], (v) => fmtMs(v, 2)],
    ['Bridge latency p99', ['bridge_latency_ms', 'p99'], (v) => fmtMs(v, 2)],
    ['Bridge latency max', ['bridge_latency_ms', 'max'], (v) => fmtMs(v, 2)],
    ['Deadline misses (> 20 ms)', 'deadline_misses', fmtInt], ['Codec chain', 'codec_chain', fmtStr],
    ['R', 'r', (v) => fmtNum(v)], ['MOS', 'mos', null],
  ];

  function pick(d, path) {
    if (!d) return undefined;
    if (!Array.isArray(path)) return d[path];
    let v = d;
    for (const p of path) v = v && typeof v === 'object' ? v[p] : undefined;
    return v;
  }

  function figuresTable(r) {
    const dirs = [['inbound', 'Inbound (caller → AI)'], ['outbound', 'Outbound (AI → caller)']];
    const head = h('thead', null, h('tr', null, h('th', null, ''), dirs.map(([, l]) => h('th', { class: 'r' }, l))));
    const body = h('tbody');
    for (const [label, key, f] of FIGURES) {
      const cells = dirs.map(([d]) => {
        const v = pick(r[d], key);
        return h('td', { class: 'r' }, key === 'mos' ? mosSpan(v, r[d] && r[d].band) : f(v));
      });
      body.append(h('tr', { 'data-figure': Array.isArray(key) ? key.join('.') : key }, h('th', null, label), cells));
    }
    return h('div', { class: 'table-wrap' }, h('table', { class: 'data figures' }, head, body));
  }

  function kvCard(title, obj, cls, filter) {
    const entries = obj && typeof obj === 'object' ? Object.entries(obj).filter(filter || (() => true)) : [];
    return h('div', { class: 'card ' + (cls || '') },
      h('h3', { style: { marginBottom: '8px' } }, title),
      entries.length ? h('table', { class: 'kv' }, h('tbody', null, entries.map(([k, v]) =>
        h('tr', { 'data-key': k }, h('th', null, humanize(k)), h('td', null, fmtAuto(k, v)))))) :
        h('div', { class: 'empty', style: { textAlign: 'left', padding: '4px 0' } }, cls === 'counters' ? 'All zero.' : DASH));
  }

  // A lagging bridge turns its own delay into jitter and late discards: say so above the figures.
  function saturatedNotice(lag) {
    if (!lag || lag.saturated !== true) return null;
    return h('div', { class: 'error-box section saturated-notice' },
      h('b', null, 'The bridge was saturated during this call. '),
      `Its event loop ran late (p99 ${fmtMs(lag.p99_ms)}, ${fmtPct(lag.over_20ms_pct)} of ticks over 20 ms), ` +
      'so jitter, late discards and bridge latency below include the bridge’s own delay, not only the network’s. ' +
      'Add capacity (more pods, fewer calls per pod) before reading this MOS as the network’s.');
  }

  function dominantStrip(intervals) {
    if (!intervals.some((iv) => iv.dominant_impairment)) return null;
    const clock = (v) => `${Math.floor((v || 0) / 60)}:${pad(Math.floor((v || 0) % 60))}`;
    return h('div', { class: 'card dominant-strip' },
      h('h3', null, 'Dominant impairment per interval'),
      h('div', { class: 'strip' }, intervals.map((iv) => {
        const d = IMPAIRMENTS.includes(iv.dominant_impairment) ? iv.dominant_impairment : 'none';
        return h('span', { class: 'imp-' + d, 'data-dominant': iv.dominant_impairment || '',
          title: `${clock(iv.start_s)}–${clock(iv.end_s)}: ${iv.dominant_impairment || DASH}, MOS ${fmtMos(iv.mos)}` });
      })),
      h('div', { class: 'strip-legend' }, IMPAIRMENTS.map((k) => {
        const n = intervals.filter((iv) => iv.dominant_impairment === k).length;
        return h('span', null, h('i', { class: 'imp-' + k }), `${k} ${n}`);
      })));
  }

  function intervalsTable(intervals) {
    const hasJitter = intervals.some((iv) => 'jitter_ms' in iv);
    const hasDom = intervals.some((iv) => 'dominant_impairment' in iv);
    const clock = (v) => (isNum(v) ? `${Math.floor(v / 60)}:${pad(Math.floor(v % 60))}` : DASH);
    const cols = [
      { label: 'From', right: true, cell: (iv) => clock(iv.start_s) },
      { label: 'To', right: true, cell: (iv) => clock(iv.end_s) },
      { label: 'MOS', right: true, cell: (iv) => mosSpan(iv.mos) },
      { label: 'R', right: true, cell: (iv) => fmtNum(iv.r) },
      { label: 'Loss', right: true, cell: (iv) => fmtPct(iv.loss_pct) },
    ];
    if (hasJitter) cols.push({ label: 'Jitter', right: true, cell: (iv) => fmtMs(iv.jitter_ms) });
    if (hasDom) cols.push({ label: 'Dominant', cell: (iv) => fmtStr(iv.dominant_impairment) });
    return h('details', { class: 'intervals' }, h('summary', null, `All ${intervals.length} intervals`), table(cols, intervals, { cls: 'intervals-table' }));
  }

  class CallView {
    constructor(sid) { this.sid = sid; this.autoRefresh = false; }

    async load(main, live) {
      const r = await api('/api/v1/calls/' + enc(this.sid));
      if (!live()) return;
      const nowMs = Date.now();
      const intervals = Array.isArray(r.intervals) ? r.intervals.filter((iv) => iv && typeof iv === 'object') : [];
      setCrumbs([['Overview', '#/'], ...(r.tenant ? [[r.tenant, '#/tenant/' + enc(r.tenant)]] : []), [r.call_sid || this.sid, null]]);
      const contribs = ['inbound', 'outbound'].flatMap((d) => IMPAIRMENTS.map((k) => pick(r[d], ['contributions', k]))).filter(isNum);
      const scaleMax = Math.max(5, ...contribs);
      const chartEl = h('div', { class: 'chart', id: 'interval-chart' });
      const interval = intervals.length && isNum(intervals[0].end_s) && isNum(intervals[0].start_s) ? intervals[0].end_s - intervals[0].start_s : null;
      fill(main,
        h('div', { class: 'page-head' }, h('div', null,
          h('div', { class: 'title' }, h('h1', { class: 'mono call-title' }, r.call_sid || this.sid), bandPill(r.band)),
          h('div', { class: 'sub' }, r.tenant ? h('a', { href: '#/tenant/' + enc(r.tenant) }, r.tenant) : 'no tenant',
            ` · started ${fmtFull(r.started_at)}`))),
        h('div', { class: 'card call-head' },
          h('div', { class: 'call-score' },
            h('div', { class: 'big call-mos ' + bandClass(r.band || bandOf(r.mos)) }, fmtMos(r.mos)),
            h('div', { class: 'lbl' }, 'MOS (caller hears) · R ', h('b', { class: 'call-r' }, fmtNum(r.r)))),
          h('div', { class: 'facts' },
            fact('Band', bandPill(r.band) || DASH),
            fact('Dominant impairment', h('span', { class: 'call-dominant' }, fmtStr(r.dominant_impairment))),
            fact('Duration', fmtDur(r.duration_s)),
            fact('End reason', fmtStr(r.end_reason)),
            fact('Started', fmtFull(r.started_at)),
            fact('Ended', fmtFull(r.ended_at)),
            fact('AI format', fmtStr(r.ai_format)),
            fact('Codec chain', codecChain(r.codec_chain)),
            h('div', { class: 'fact', style: { gridColumn: '1 / -1' } }, h('div', { class: 'k' }, 'Tags'), h('div', { class: 'v call-tags' }, tagsOf(r.tags))))),
        saturatedNotice(pick(r, ['bridge_host', 'loop_lag'])),
        h('section', { class: 'section card chart-card' },
          h('div', { class: 'chart-head' },
            h('div', null, h('h2', null, 'MOS per interval'),
              h('div', { class: 'muted', style: { fontSize: '12.5px' } },
                intervals.length ? `${intervals.length} interval${intervals.length === 1 ? '' : 's'}${interval ? ` of ${fmtNum(interval, 0)} s` : ''}; shaded: loss % per interval (right axis)` : 'no intervals in this report')),
            legend([['MOS', COLORS.mos], ['loss %', COLORS.loss], ...thresholdLegend])),
          intervals.length ? chartEl : h('div', { class: 'empty' }, 'No per-interval figures.')),
        h('section', { class: 'section' },
          h('div', { class: 'section-head' }, h('h2', null, 'Where the impairment came from'),
            h('span', { class: 'muted' }, 'R points lost to each impairment (E-model, G.107); the call’s MOS is the outbound direction')),
          h('div', { class: 'grid-2 contributions' },
            contributionsCard('Inbound', 'caller → AI', r.inbound, scaleMax),
            contributionsCard('Outbound', 'AI → caller', r.outbound, scaleMax)),
          dominantStrip(intervals),
          intervals.length ? intervalsTable(intervals) : null),
        h('section', { class: 'section' },
          h('div', { class: 'section-head' }, h('h2', null, 'Figures')),
          h('div', { class: 'card' }, figuresTable(r))),
        h('section', { class: 'section grid-3' },
          kvCard('Playback', r.playback, 'playback'),
          kvCard('Round-trip time', r.rtt_ms, 'rtt'),
          kvCard('AI turn', r.ai_turn_ms, 'ai-turn')),
        h('section', { class: 'section grid-3' },
          kvCard('Counters (non-zero)', r.counters, 'counters', ([, v]) => v !== 0 && v !== null),
          kvCard('Bridge event loop', pick(r, ['bridge_host', 'loop_lag']), 'loop-lag'),
          kvCard('Assumptions', r.assumptions, 'assumptions')));
      if (intervals.length) intervalChart(chartEl, intervals);
      return nowMs;
    }
  }

  // ------------------------------------------------------------------ router

  let current = null;
  let generation = 0;
  let timer = null;
  let loading = false;

  function parseRoute() {
    const parts = (location.hash.replace(/^#\/?/, '') || '').split('/').filter(Boolean);
    const arg = parts.length > 1 ? safeDecode(parts[1]) : null;
    if (parts[0] === 'tenant' && arg) return { view: 'tenant', arg };
    if (parts[0] === 'call' && arg) return { view: 'call', arg };
    return { view: 'overview', arg: null };
  }

  function safeDecode(s) { try { return decodeURIComponent(s); } catch (e) { return s; } }

  async function run(view, gen, first) {
    if (loading && !first) return;
    loading = true;
    const main = document.getElementById('main');
    const live = () => gen === generation;
    try {
      const y = window.scrollY;
      await view.load(main, live);
      if (!live()) return;
      if (!first) window.scrollTo(0, y);
      state.ready = true;
      setStatus(true, `Updated ${fmtClock(Date.now())} UTC` + (view.autoRefresh ? ' · every 15 s' : ''));
    } catch (err) {
      if (!live() || (err && err.status === 401)) return;
      if (first) showError(main, err);
      setStatus(false, `Refresh failed: ${err && err.message ? err.message : err}`);
      state.ready = true;
    } finally {
      if (live()) loading = false;
    }
  }

  function navigate() {
    generation += 1;
    loading = false;
    clearInterval(timer);
    destroyCharts();
    state.ready = false;
    const route = parseRoute();
    state.route = route;
    const view = route.view === 'tenant' ? new TenantView(route.arg) : route.view === 'call' ? new CallView(route.arg) : new OverviewView();
    view.refresh = () => run(view, generation, false);
    current = view;
    fill(document.getElementById('main'), h('div', { class: 'loading' }, 'Loading…'));
    window.scrollTo(0, 0);
    run(view, generation, true);
    if (view.autoRefresh) {
      timer = setInterval(() => { if (!document.hidden) view.refresh(); }, REFRESH_MS);
    }
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && current && current.autoRefresh) current.refresh();
  });

  function boot() {
    if (document.body.dataset.auth === 'token') document.getElementById('logout').hidden = false;
    let next = null;
    try { next = sessionStorage.getItem('mosbridge.next'); sessionStorage.removeItem('mosbridge.next'); } catch (e) { /* ignore */ }
    if (next && (!location.hash || location.hash === '#/') && /^#\/(tenant|call)\//.test(next)) {
      location.replace(next);  // fires hashchange
    }
    window.addEventListener('hashchange', navigate);
    navigate();
  }

  boot();
})();
