/* global document, Node, FormData, URLSearchParams, sessionStorage */
// Operator dashboard: plain ES module, no build step, no CDN. Polls the control plane's
// /v1/cluster and /v1/routers (1 s), /v1/capacity/history and /v1/capacity (5 s); charts are inline SVG.
const $ = (sel) => document.querySelector(sel);
const SVG = 'http://www.w3.org/2000/svg';

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  return e;
}
function svgEl(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}
const fmt = (x, d = 2) =>
  x === undefined || x === null || Number.isNaN(x)
    ? '–'
    : Number(x)
        .toFixed(d)
        .replace(/\.?0+$/, '') || '0';
const badge = (text, cls) => el('span', { class: `badge ${cls}` }, text);
const verdictClass = { HEALTHY: 'ok', DEGRADED: 'warn', UNHEALTHY: 'bad', UNKNOWN: 'off' };

/** Line chart: series = [{ name, color, points: [[t, y], ...] }]. */
function lineChart(series, { width = 520, height = 140, title = '' } = {}) {
  const svg = svgEl('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title });
  const pts = series.flatMap((s) => s.points);
  if (pts.length < 2) {
    const t = svgEl('text', { x: 10, y: height / 2 });
    t.textContent = 'not enough history yet';
    svg.append(t);
    return svg;
  }
  const pad = height < 60 ? { l: 2, r: 2, t: 4, b: 4 } : { l: 40, r: 8, t: 14, b: 18 };
  const t0 = Math.min(...pts.map((p) => p[0])),
    t1 = Math.max(...pts.map((p) => p[0]));
  const yMax = Math.max(1e-9, ...pts.map((p) => p[1])) * 1.1;
  const x = (t) => pad.l + ((t - t0) / Math.max(1, t1 - t0)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / yMax) * (height - pad.t - pad.b);
  svg.append(svgEl('line', { x1: pad.l, y1: height - pad.b, x2: width - pad.r, y2: height - pad.b, stroke: '#ccc' }));
  for (const v of height < 60 ? [] : [0, yMax / 2, yMax / 1.1]) {
    const tx = svgEl('text', { x: 2, y: y(v) + 3 });
    tx.textContent = fmt(v, 1);
    svg.append(tx);
  }
  if (height >= 60) {
    const tl = svgEl('text', { x: pad.l, y: height - 4 });
    tl.textContent = new Date(t0).toLocaleTimeString();
    const tr = svgEl('text', { x: width - pad.r - 50, y: height - 4 });
    tr.textContent = new Date(t1).toLocaleTimeString();
    svg.append(tl, tr);
  }
  let lx = pad.l;
  for (const s of series) {
    if (s.points.length) {
      svg.append(
        svgEl('polyline', {
          fill: 'none',
          stroke: s.color,
          'stroke-width': 1.5,
          points: s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' '),
        }),
      );
    }
    const lg = svgEl('text', { x: lx, y: 10, fill: s.color });
    lg.textContent = s.name;
    svg.append(lg);
    lx += 8 + 6 * s.name.length;
  }
  return svg;
}

let history = new Map(); // node -> [[t, running+waiting]]

function renderNodes(cluster) {
  const tbody = $('#nodes tbody');
  const rows = cluster.nodes.map((n) => {
    const state = [];
    if (!n.connected) state.push(badge('no status', 'off'));
    else state.push(n.ready ? badge('ready', 'ok') : badge(`not ready${n.notReadyReason ? `: ${n.notReadyReason}` : ''}`, 'bad'));
    if (n.draining) state.push(badge('draining', 'warn'));
    if (n.cordoned) state.push(badge('cordoned', 'warn'));
    const gpu = el('td', { 'data-testid': `gpu-${n.id}` }, badge(n.gpuVerdict, verdictClass[n.gpuVerdict] ?? 'off'));
    for (const g of n.gpus) {
      const bits = [`GPU ${g.index} ${g.name}`];
      if (g.temperatureC !== undefined) bits.push(`${fmt(g.temperatureC, 0)}°C`);
      if (g.powerW !== undefined) bits.push(`${fmt(g.powerW, 0)} W`);
      if (g.utilization !== undefined) bits.push(`${fmt(g.utilization * 100, 0)}%`);
      gpu.append(el('div', { class: 'muted' }, bits.join(' · ')));
      if (g.reasons.length) gpu.append(el('div', { class: 'reasons' }, g.reasons.join(', ')));
    }
    if (!n.gpus.length && n.connected) gpu.append(el('div', { class: 'muted' }, 'no GPU telemetry'));
    const l = n.load;
    const spark = lineChart([{ name: '', color: '#2f6fdf', points: history.get(n.id) ?? [] }], { width: 180, height: 40 });
    return el(
      'tr',
      { 'data-node': n.id, 'data-testid': `node-${n.id}` },
      el('td', {}, el('strong', {}, n.id), el('div', { class: 'muted' }, n.address)),
      el('td', {}, n.models.join(', ')),
      el('td', {}, ...state),
      gpu,
      el('td', {}, l ? `${l.running} / ${l.waiting}${l.maxNumSeqs ? ` (max ${l.maxNumSeqs})` : ''}` : '–'),
      el('td', {}, l ? `${fmt(l.kvCacheUsage * 100, 0)}%` : '–'),
      el('td', {}, l && l.ttftSeconds > 0 ? `${fmt(l.ttftSeconds, 3)} s` : '–'),
      el('td', {}, spark),
    );
  });
  tbody.replaceChildren(...rows);
  const ready = cluster.nodes.filter((n) => n.ready).length;
  const sick = cluster.nodes.filter((n) => n.gpuVerdict === 'UNHEALTHY' || n.gpuVerdict === 'DEGRADED').length;
  const draining = cluster.nodes.filter((n) => n.draining || n.cordoned).length;
  $('#summary').textContent = `${cluster.nodes.length} nodes · ${ready} ready · ${sick} with GPU problems · ${draining} draining/cordoned`;
}

function renderLanes(routers) {
  const rows = routers.data.flatMap((r) =>
    r.lanes.map((l, i) => {
      const reasons = Object.entries(l.refused)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
      return el(
        'tr',
        { 'data-testid': `lane-${r.router}-${l.lane}` },
        el('td', {}, i === 0 ? el('strong', {}, r.router) : ''),
        el('td', {}, l.lane),
        el('td', {}, l.queued),
        el('td', {}, fmt(l.admittedPerSecond, 1)),
        el('td', {}, l.refusedPerSecond ? badge(fmt(l.refusedPerSecond, 1), 'warn') : fmt(l.refusedPerSecond, 1)),
        el('td', {}, reasons || '–'),
      );
    }),
  );
  if (!rows.length)
    rows.push(
      el(
        'tr',
        {},
        el('td', { colspan: 6, class: 'muted' }, 'no router has reported (admission off, or no router points at this control plane)'),
      ),
    );
  $('#lanes tbody').replaceChildren(...rows);
}

/** Shadow traffic (docs/shadow.md): the admin summary per alias and target. */
function renderShadow(summary) {
  const ms = (p) => `${fmt(p.p50, 0)} / ${fmt(p.p95, 0)} ms`;
  const rows = summary.data.map((r) =>
    el(
      'tr',
      { 'data-testid': `shadow-${r.alias}-${r.target}` },
      el('td', {}, r.alias),
      el('td', {}, r.target),
      el('td', {}, r.count),
      el('td', {}, r.errorRate > 0 ? badge(`${fmt(r.errorRate * 100, 1)}%`, r.errorRate > 0.05 ? 'bad' : 'warn') : '0%'),
      el('td', {}, ms(r.primary.latencyMs)),
      el('td', {}, ms(r.shadow.latencyMs)),
      el('td', {}, `${fmt(r.primary.ttftMs.p50, 0)} / ${fmt(r.shadow.ttftMs.p50, 0)} ms`),
      el('td', {}, fmt(r.meanSimilarity, 3)),
      el('td', {}, fmt(r.tokenRatio)),
    ),
  );
  if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 9, class: 'muted' }, 'no shadow records in the last 24 h')));
  $('#shadow tbody').replaceChildren(...rows);
}

async function refreshShadow() {
  const token = sessionStorage.getItem('icp-admin-token');
  if (!token) return;
  const res = await fetch('/v1/admin/shadow/summary?window=24h', { headers: apiHeaders() });
  if (!res.ok) {
    $('#shadow tbody').replaceChildren(el('tr', {}, el('td', { colspan: 9, class: 'muted' }, `shadow summary: HTTP ${res.status}`)));
    return;
  }
  renderShadow(await res.json());
}

function renderCapacity(report) {
  $('#capacity-params').textContent =
    `window ${Math.round(report.params.windowMs / 60000)} min · growth ×${report.params.growth} · TTFT SLO ${report.params.sloTtftSeconds} s · from ${report.params.source}`;
  const pools = report.pools.map((p) => {
    const kv = (k, v) => el('div', {}, el('span', {}, `${k}: `), v);
    const nn = p.nodesNeeded;
    const box = el(
      'div',
      { class: 'pool', 'data-testid': `pool-${p.model}` },
      el('h3', {}, `${p.model} `, el('span', { class: 'muted' }, p.unit)),
      el(
        'div',
        { class: 'kv' },
        kv('demand mean / p95 / peak', `${fmt(p.demand.mean)} / ${fmt(p.demand.p95)} / ${fmt(p.demand.peak)}`),
        p.demand.outputTokensPerSecond ? kv('output tokens/s p95', fmt(p.demand.outputTokensPerSecond.p95, 0)) : null,
        kv('usable capacity', fmt(p.capacity.usable)),
        kv('reference node', fmt(p.referenceNodeCapacity)),
        kv('headroom', p.headroom ? `${fmt(p.headroom.absolute)} (${fmt(p.headroom.ratio * 100, 0)}%)` : '–'),
        kv(
          'nodes needed (p95 × growth)',
          nn ? `${nn.forP95} (have ${nn.have}, effective ${fmt(nn.haveEffective, 1)}; add ${nn.toAdd})` : '–',
        ),
        kv('slow nodes', p.slowNodes.length ? p.slowNodes.join(', ') : 'none'),
      ),
      lineChart(
        [
          { name: 'demand', color: '#d9480f', points: p.series.map((s) => [s.t, s.demand]) },
          { name: 'usable capacity', color: '#2b8a3e', points: p.series.map((s) => [s.t, s.usableCapacity]) },
        ],
        { title: `${p.model} demand and capacity` },
      ),
    );
    if (p.costs.length) {
      box.append(
        el('h3', {}, 'capacity lost'),
        el('ul', {}, ...p.costs.map((c) => el('li', {}, `${c.node}: ${c.why.join('; ')} — ${fmt(c.capacityLost)} ${p.unit}`))),
      );
    }
    const nodeRows = p.nodes.map((n) =>
      el(
        'tr',
        {},
        el('td', {}, n.node),
        el('td', {}, n.kind),
        el('td', {}, fmt(n.capacity)),
        el('td', {}, n.capacityBasis),
        el('td', {}, fmt(n.relativeCapacity)),
        el('td', {}, fmt(n.observed.meanDemand)),
        el('td', {}, fmt(n.observed.meanTtftSeconds, 3)),
        el('td', {}, n.slow ? badge('slow', 'warn') : ''),
      ),
    );
    box.append(
      el(
        'table',
        {},
        el(
          'thead',
          {},
          el('tr', {}, ...['node', 'kind', 'capacity', 'basis', 'relative', 'mean demand', 'mean TTFT', ''].map((h) => el('th', {}, h))),
        ),
        el('tbody', {}, ...nodeRows),
      ),
    );
    if (p.whatIf.length)
      box.append(
        el('h3', {}, 'what if'),
        el(
          'ul',
          {},
          ...p.whatIf.map((w) =>
            el(
              'li',
              {},
              `${w.change}: usable ${fmt(w.usable)}, headroom ${fmt(w.headroom)}${w.meetsP95TimesGrowth ? '' : ' — short of p95 × growth'}`,
            ),
          ),
        ),
      );
    return box;
  });
  if (!pools.length) pools.push(el('p', { class: 'muted' }, 'no history yet'));
  for (const n of report.notes) pools.push(el('p', { class: 'muted' }, n));
  $('#capacity').replaceChildren(...pools);
}

function apiHeaders() {
  const token = sessionStorage.getItem('icp-admin-token');
  return token ? { accept: 'application/json', authorization: `Bearer ${token}` } : { accept: 'application/json' };
}

async function getJson(path) {
  // Without the token every call would be a 401: ask for it instead.
  if (!sessionStorage.getItem('icp-admin-token')) throw new Error('enter the admin token above');
  const res = await fetch(path, { headers: apiHeaders() });
  if (res.status === 401 || res.status === 403) throw new Error('enter the admin token above');
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

let lastCluster;
async function refreshCluster() {
  try {
    lastCluster = await getJson('/v1/cluster');
    renderNodes(lastCluster);
    renderLanes(await getJson('/v1/routers'));
    $('#conn').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $('#conn').textContent = `control plane unreachable (${err.message})`;
  }
}

async function refreshSlow() {
  try {
    const h = await getJson('/v1/capacity/history?window=15m');
    const m = new Map();
    for (const r of h.data) {
      const v = r.kind === 'raw' ? r.running + r.waiting : (r.mean.running ?? 0) + (r.mean.waiting ?? 0);
      if (!m.has(r.node)) m.set(r.node, []);
      m.get(r.node).push([r.t, v]);
    }
    history = m;
    const form = new FormData($('#capacity-form'));
    const q = new URLSearchParams();
    for (const [k, v] of form) if (v !== '') q.set(k, String(v));
    renderCapacity(await getJson(`/v1/capacity?${q}`));
    if (lastCluster) renderNodes(lastCluster);
  } catch (err) {
    $('#conn').textContent = `capacity unavailable (${err.message})`;
  }
}

$('#capacity-form').addEventListener('change', () => void refreshSlow());
$('#token-form').addEventListener('submit', (e) => e.preventDefault());
$('#token-form').addEventListener('change', () => {
  // Per tab only; never sent anywhere but this control plane's own API.
  sessionStorage.setItem('icp-admin-token', String(new FormData($('#token-form')).get('token') ?? ''));
  void refreshCluster();
  void refreshSlow();
  void refreshShadow().catch(() => undefined);
});
void refreshCluster();
void refreshSlow();
setInterval(() => void refreshCluster(), 1000);
setInterval(() => void refreshSlow(), 5000);
void refreshShadow().catch(() => undefined);
setInterval(() => void refreshShadow().catch(() => undefined), 5000);
