// The status page itself: one self-contained HTML document (inline style and
// script, no fonts, images or other requests but its own JSON feed), which
// polls the feed every second and draws requests/s by result and the hit
// ratio over the last five minutes on a canvas. Text from the feed is set
// with textContent only, so keys and tags can never inject markup.

export const STATUS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tiercache status</title>
<style>
  :root { color-scheme: light; --fg: #1d2330; --muted: #6b7385; --line: #e3e6ee; --bg: #f7f8fb; --card: #fff;
    --hit: #2e9e5b; --stale: #d9a21b; --collapsed: #4a7fd6; --miss: #e0663a; --bypass: #9aa1b1; --ratio: #7a3fc4; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px; background: var(--card); border-bottom: 1px solid var(--line); }
  header h1 { font-size: 18px; margin: 0; }
  header .muted { color: var(--muted); }
  main { padding: 16px 24px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(270px, 1fr)); }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 0 0 8px; }
  canvas { width: 100%; height: 260px; display: block; }
  .legend { display: flex; flex-wrap: wrap; gap: 14px; margin-top: 6px; color: var(--muted); font-size: 12px; }
  .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  td.num, th.num { text-align: right; }
  td.wrap { white-space: normal; word-break: break-all; }
  dl { display: grid; grid-template-columns: auto 1fr; gap: 3px 12px; margin: 0; font-variant-numeric: tabular-nums; }
  dt { color: var(--muted); }
  dd { margin: 0; text-align: right; }
  .bar { height: 8px; background: var(--line); border-radius: 4px; overflow: hidden; margin: 2px 0 8px; }
  .bar span { display: block; height: 100%; background: var(--collapsed); }
  .state { font-weight: 600; }
  .state.ok, .state.closed-breaker { color: var(--hit); }
  .state.bad { color: var(--miss); }
  .big { font-size: 28px; font-weight: 600; }
  .empty { color: var(--muted); font-style: italic; }
</style>
</head>
<body>
<header><h1>tiercache</h1><span class="muted" id="updated">waiting for the first update…</span></header>
<main>
  <section class="wide">
    <h2>Requests per second by result, and hit ratio (last 5 minutes)</h2>
    <canvas id="chart" width="1200" height="260" data-drawn="0"></canvas>
    <div class="legend" id="legend"></div>
  </section>
  <section>
    <h2>Hit ratio (5 min)</h2>
    <div class="big" id="ratio">–</div>
    <div class="muted" id="rate">–</div>
  </section>
  <section>
    <h2>Tiers</h2>
    <dl>
      <dt>L2 (Redis)</dt><dd><span class="state" data-stat="l2.state">–</span></dd>
      <dt>Breaker</dt><dd><span class="state" data-stat="l2.breaker">–</span></dd>
      <dt>Invalidation bus</dt><dd><span class="state" data-stat="bus.state">–</span></dd>
      <dt>Queued invalidations</dt><dd data-stat="queuedInvalidations">–</dd>
    </dl>
  </section>
  <section>
    <h2>L1</h2>
    <div>Entries <b data-stat="l1.entries">–</b> of <span data-stat="l1.maxEntries">–</span></div>
    <div class="bar"><span id="entries-bar" style="width:0"></span></div>
    <div>Bytes <b data-stat="l1.bytes" data-format="bytes">–</b> of <span data-stat="l1.maxBytes" data-format="bytes">–</span></div>
    <div class="bar"><span id="bytes-bar" style="width:0"></span></div>
    <dl><dt>Evictions</dt><dd data-stat="l1.evictions">–</dd></dl>
  </section>
  <section>
    <h2>Totals since start</h2>
    <dl>
      <dt>L1 hits</dt><dd data-stat="l1.hits">–</dd>
      <dt>L1 misses</dt><dd data-stat="l1.misses">–</dd>
      <dt>L2 hits</dt><dd data-stat="l2.hits">–</dd>
      <dt>L2 misses</dt><dd data-stat="l2.misses">–</dd>
      <dt>L2 errors</dt><dd data-stat="l2.errors">–</dd>
      <dt>Stale serves</dt><dd data-stat="stale">–</dd>
      <dt>Fills</dt><dd data-stat="fills">–</dd>
      <dt>Coalesced waits</dt><dd data-stat="coalesced">–</dd>
      <dt>Invalidations</dt><dd data-stat="invalidations">–</dd>
      <dt>Bus sent / received</dt><dd><span data-stat="bus.sent">–</span> / <span data-stat="bus.received">–</span></dd>
      <dt>Bus gaps</dt><dd data-stat="bus.gaps">–</dd>
    </dl>
  </section>
  <section class="wide">
    <h2>Routes</h2>
    <table>
      <thead><tr><th>Route</th><th class="num">Hits</th><th class="num">Misses</th><th class="num">Stale</th><th class="num">Collapsed</th><th>Bypasses</th><th class="num">Hit ratio</th><th class="num">Median fill</th></tr></thead>
      <tbody id="routes"><tr><td colspan="8" class="empty">no requests yet</td></tr></tbody>
    </table>
  </section>
  <section class="wide">
    <h2>Last 50 invalidations</h2>
    <table>
      <thead><tr><th>When</th><th>Kind</th><th>Tags / key</th><th>From</th><th>Delivered</th></tr></thead>
      <tbody id="invalidations"><tr><td colspan="5" class="empty">none yet</td></tr></tbody>
    </table>
  </section>
</main>
<script>
(function () {
  'use strict';
  var RESULTS = ['hit', 'stale', 'collapsed', 'miss', 'bypass'];
  var css = getComputedStyle(document.documentElement);
  var COLORS = {};
  RESULTS.concat(['ratio']).forEach(function (r) { COLORS[r] = css.getPropertyValue('--' + r).trim(); });
  var legend = document.getElementById('legend');
  RESULTS.concat(['ratio']).forEach(function (r) {
    var item = document.createElement('span');
    var swatch = document.createElement('i');
    swatch.style.background = COLORS[r];
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(r === 'ratio' ? 'hit ratio (right axis)' : r));
    legend.appendChild(item);
  });

  function pick(obj, path) {
    return path.split('.').reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }
  function bytes(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
  }
  function pct(x) { return x == null ? '–' : (x * 100).toFixed(1) + ' %'; }
  function cell(row, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }
  function fill(tbody, rows, columns, emptyText) {
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    if (rows.length === 0) {
      var tr = document.createElement('tr');
      var td = cell(tr, emptyText, 'empty');
      td.colSpan = columns;
      tbody.appendChild(tr);
      return;
    }
    rows.forEach(function (cells) {
      var tr = document.createElement('tr');
      cells.forEach(function (c) { cell(tr, c[0], c[1]); });
      tbody.appendChild(tr);
    });
  }

  function showStats(stats) {
    document.querySelectorAll('[data-stat]').forEach(function (el) {
      var value = pick(stats, el.getAttribute('data-stat'));
      el.setAttribute('data-value', String(value));
      el.textContent = typeof value === 'number' ? (el.getAttribute('data-format') === 'bytes' ? bytes(value) : value.toLocaleString('en-US')) : String(value);
      if (typeof value === 'string') el.className = 'state ' + (value === 'ok' || value === 'closed' || value === 'disabled' ? 'ok' : 'bad');
    });
    var l1 = stats.l1;
    document.getElementById('entries-bar').style.width = (l1.maxEntries ? Math.min(100, 100 * l1.entries / l1.maxEntries) : 0) + '%';
    document.getElementById('bytes-bar').style.width = (l1.maxBytes ? Math.min(100, 100 * l1.bytes / l1.maxBytes) : 0) + '%';
  }

  function showRoutes(routes) {
    fill(document.getElementById('routes'), routes.map(function (r) {
      var reasons = Object.keys(r.bypasses).sort().map(function (k) { return k + ' ' + r.bypasses[k]; }).join(', ');
      return [[r.route, 'wrap'], [String(r.hits), 'num'], [String(r.misses), 'num'], [String(r.stale), 'num'], [String(r.collapsed), 'num'],
        [reasons || '–', 'wrap'], [pct(r.hitRatio), 'num'], [r.medianFillMs == null ? '–' : r.medianFillMs + ' ms', 'num']];
    }), 8, 'no requests yet');
  }

  function showInvalidations(list) {
    fill(document.getElementById('invalidations'), list.map(function (i) {
      var what = i.key !== undefined ? i.key : i.tags.join(', ') + (i.moreTags ? ' (+' + i.moreTags + ' more)' : '');
      return [[new Date(i.at).toLocaleTimeString('en-GB')], [i.kind + (i.namespace ? ' (' + i.namespace + ')' : '')], [what || '–', 'wrap'], [i.remote ? 'another instance' : 'here'], [i.delivered ? 'yes' : 'queued']];
    }), 5, 'none yet');
  }

  function draw(series) {
    var canvas = document.getElementById('chart');
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    var g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    var left = 44, right = 44, top = 8, bottom = 22;
    var pw = w - left - right, ph = h - top - bottom;
    var n = series.counts.hit.length;
    var totals = [], max = 1;
    for (var i = 0; i < n; i++) {
      var t = 0;
      RESULTS.forEach(function (r) { t += series.counts[r][i]; });
      totals.push(t);
      if (t > max) max = t;
    }
    var step = Math.pow(10, Math.floor(Math.log10(max)));
    var yMax = Math.ceil(max / step) * step;
    function x(i) { return left + (n <= 1 ? 0 : (i / (n - 1)) * pw); }
    function y(v) { return top + ph - (v / yMax) * ph; }
    g.strokeStyle = '#e3e6ee'; g.fillStyle = '#6b7385'; g.lineWidth = 1; g.font = '11px system-ui, sans-serif';
    for (var k = 0; k <= 4; k++) {
      var v = (yMax * k) / 4, yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(left, yy); g.lineTo(left + pw, yy); g.stroke();
      g.textAlign = 'right'; g.fillText(String(Math.round(v * 10) / 10), left - 6, yy + 4);
      g.textAlign = 'left'; g.fillText((k * 25) + '%', left + pw + 6, yy + 4);
    }
    g.textAlign = 'center';
    for (var m = 0; m <= 5; m++) g.fillText(m === 5 ? 'now' : '-' + (5 - m) + ' min', left + (m / 5) * pw, h - 6);
    // Stacked areas, bottom to top in RESULTS order.
    var base = new Array(n).fill(0);
    RESULTS.forEach(function (r) {
      var values = series.counts[r];
      var upper = base.map(function (b, i) { return b + values[i]; });
      g.beginPath();
      for (var i = 0; i < n; i++) (i === 0 ? g.moveTo : g.lineTo).call(g, x(i), y(upper[i]));
      for (var j = n - 1; j >= 0; j--) g.lineTo(x(j), y(base[j]));
      g.closePath();
      g.fillStyle = COLORS[r];
      g.globalAlpha = 0.85;
      g.fill();
      g.globalAlpha = 1;
      base = upper;
    });
    // Hit ratio, where there were lookups that second.
    g.strokeStyle = COLORS.ratio; g.lineWidth = 2;
    g.beginPath();
    var pen = false, points = 0;
    for (var p = 0; p < n; p++) {
      var served = series.counts.hit[p] + series.counts.stale[p];
      var looked = served + series.counts.miss[p] + series.counts.collapsed[p];
      if (looked === 0) { pen = false; continue; }
      var yr = top + ph - (served / looked) * ph;
      if (pen) g.lineTo(x(p), yr); else g.moveTo(x(p), yr);
      pen = true;
      points++;
    }
    g.stroke();
    canvas.setAttribute('data-drawn', String(Number(canvas.getAttribute('data-drawn')) + 1));
    canvas.setAttribute('data-points', String(points));
    canvas.setAttribute('data-requests', String(totals.reduce(function (a, b) { return a + b; }, 0)));
  }

  function showSummary(series) {
    var served = 0, looked = 0, all = 0, n = series.counts.hit.length;
    for (var i = 0; i < n; i++) {
      var s = series.counts.hit[i] + series.counts.stale[i];
      served += s;
      looked += s + series.counts.miss[i] + series.counts.collapsed[i];
      all += s + series.counts.miss[i] + series.counts.collapsed[i] + series.counts.bypass[i];
    }
    document.getElementById('ratio').textContent = looked === 0 ? '–' : pct(served / looked);
    var last = 0;
    for (var j = Math.max(0, n - 11); j < n - 1; j++) RESULTS.forEach(function (r) { last += series.counts[r][j]; });
    document.getElementById('rate').textContent = (last / 10).toFixed(1) + ' requests/s (last 10 s), ' + all + ' in 5 min';
  }

  var feedUrl = location.pathname + '?feed=1';
  function update() {
    fetch(feedUrl, { cache: 'no-store', headers: { accept: 'application/json' } })
      .then(function (res) { if (!res.ok) throw new Error('HTTP ' + res.status); return res.json(); })
      .then(function (feed) {
        showStats(feed.stats);
        showRoutes(feed.routes);
        showInvalidations(feed.invalidations);
        showSummary(feed.series);
        draw(feed.series);
        var updated = document.getElementById('updated');
        updated.textContent = 'updated ' + new Date(feed.now).toLocaleTimeString('en-GB') + (feed.showKeys ? '' : ' · user ids and keys hidden');
        document.body.setAttribute('data-feed-at', String(feed.now));
      })
      .catch(function (err) { document.getElementById('updated').textContent = 'feed unavailable: ' + err.message; });
  }
  update();
  setInterval(update, 1000);
})();
</script>
</body>
</html>
`;
