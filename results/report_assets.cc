#include "results/report_assets.h"

namespace cb {

const char* const kReportStyle = R"CSS(
body { font-family: "DejaVu Sans", sans-serif; margin: 1.5em; color: #222; max-width: 1100px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; } h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } td.text { text-align: left; }
.status-ok { color: #1a7f37; } .status-bad { color: #b42318; font-weight: bold; }
tr.regression td { background: #fde2e1; } tr.improvement td { background: #dff3e3; }
.note { color: #555; font-size: 0.85em; }
svg { background: #fff; border: 1px solid #ddd; margin: 0.5em 0; display: block; }
svg text { font-size: 11px; fill: #333; font-family: "DejaVu Sans", sans-serif; }
svg text.point-label { font-size: 10px; fill: #111; }
svg text.axis-title { font-size: 12px; }
.axis line { stroke: #888; } .grid line { stroke: #eee; }
.frontier-line { fill: none; stroke-width: 2; } .frontier-line.modelled { stroke-dasharray: 6 4; }
.bar { fill: #00798c; } .bar.modelled { fill: #8fc1c8; } .bar.extrapolated { fill: #edae49; }
#cb-error { color: #b42318; border: 2px solid #b42318; padding: 0.5em; }
)CSS";

const char* const kReportScript = R"JS(
(function () {
  'use strict';
  var NS = 'http://www.w3.org/2000/svg';
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
                '#17becf', '#7f7f00', '#555555'];
  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, s, attrs) {
    var t = el('text', Object.assign({x: x, y: y}, attrs || {}), parent);
    t.textContent = s;
    return t;
  }
  function trim(s) { return s.indexOf('.') < 0 ? s : s.replace(/\.?0+$/, ''); }
  // A figure with at most 3 significant digits and an SI suffix: 16272 -> 16.3k.
  function fmt(v) {
    var a = Math.abs(v);
    if (a === 0) return '0';
    var units = [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
    for (var i = 0; i < units.length; i++) {
      if (a >= units[i][0]) return trim((v / units[i][0]).toPrecision(3)) + units[i][1];
    }
    return a >= 1e-3 ? trim(v.toPrecision(3)) : v.toExponential(1);
  }
  // A tick: as many decimals as the step needs, with the suffix of the axis' largest tick.
  function fmtTick(v, step, top) {
    var div = 1, suffix = '';
    if (top >= 1e9) { div = 1e9; suffix = 'G'; } else if (top >= 1e6) { div = 1e6; suffix = 'M'; }
    else if (top >= 1e3) { div = 1e3; suffix = 'k'; }
    var d = Math.max(0, -Math.floor(Math.log10(step / div) + 1e-9));
    return v === 0 ? '0' : (v / div).toFixed(Math.min(d, 6)) + suffix;
  }
  function niceStep(raw) {
    var p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  // An axis over `values`: linear from 0 with round ticks, or log (decades) when they span
  // more than 30x. f(v) is 0..1 along the axis.
  function axis(values) {
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    if (!(hi > 0)) hi = 1;
    if (lo > 0 && hi / lo > 30) {
      var a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi) - 1e-9);
      if (b <= a) b = a + 1;
      var ticks = [];
      for (var e = a; e <= b; e++) {
        [1, 2, 5].forEach(function (m) {
          var t = m * Math.pow(10, e);
          if (t <= Math.pow(10, b) && (m === 1 || b - a <= 2)) ticks.push(t);
        });
      }
      return {log: true, d0: Math.pow(10, a), d1: Math.pow(10, b), ticks: ticks,
              label: function (t) {
                return t >= 1 ? fmt(t) : t.toFixed(-Math.floor(Math.log10(t) + 1e-9));
              },
              f: function (v) { return (Math.log10(v) - a) / (b - a); }};
    }
    var step = niceStep(hi * 1.05 / 5), top = Math.ceil(hi * 1.05 / step) * step, ts = [];
    for (var t = 0; t <= top + step / 2; t += step) ts.push(Math.round(t / step) * step);
    return {log: false, d0: 0, d1: top, ticks: ts,
            label: function (t) { return fmtTick(t, step, top); },
            f: function (v) { return v / top; }};
  }
  function overlaps(a, b) {
    return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height &&
           b.y < a.y + a.height;
  }
  // Places each label beside its point where it overlaps nothing placed so far and stays in
  // the plot; a label that fits nowhere is dropped (its point keeps the tooltip).
  function placeLabels(svg, items, taken, plot) {
    var offsets = [[7, 4], [-7, 4], [0, -9], [0, 16], [7, -8], [-7, -8], [7, 15], [-7, 15],
                   [12, 4], [-12, 4], [0, -20], [0, 27]];
    items.forEach(function (it) {
      var t = text(svg, 0, 0, it.label, {'class': 'point-label'});
      var placed = false;
      for (var i = 0; i < offsets.length && !placed; i++) {
        var dx = offsets[i][0], dy = offsets[i][1];
        t.setAttribute('text-anchor', dx > 0 ? 'start' : dx < 0 ? 'end' : 'middle');
        t.setAttribute('x', it.px + dx);
        t.setAttribute('y', it.py + dy);
        var b = t.getBBox();
        var inside = b.x >= plot.x && b.y >= plot.y && b.x + b.width <= plot.x + plot.w &&
                     b.y + b.height <= plot.y + plot.h;
        placed = inside && !taken.some(function (o) { return overlaps(b, o); });
        if (placed) taken.push(b);
      }
      if (!placed) {
        svg.removeChild(t);
        it.circle.setAttribute('data-label-hidden', '1');
      }
    });
  }
  // One XY chart: series of points (and a line each), a legend below.
  function chart(container, c) {
    var W = 960, plotH = 360, T = 16, R = 24, B = 46;
    var xs = [], ys = [];
    c.series.forEach(function (s) {
      s.points.forEach(function (p) { xs.push(p.x); ys.push(p.y); });
    });
    var ax = axis(xs), ay = axis(ys);
    var legendRows = c.series.length, H = T + plotH + B + 8 + 18 * legendRows;
    var svg = el('svg', {width: W, height: H, 'class': c.cls, role: 'img'}, container);
    svg.setAttribute('data-group', c.group);
    var probe = text(svg, 0, 0, '', {});
    var L = 0;
    ay.ticks.forEach(function (t) {
      probe.textContent = ay.label(t);
      L = Math.max(L, probe.getComputedTextLength());
    });
    svg.removeChild(probe);
    L = Math.ceil(L) + 34;
    var plot = {x: L, y: T, w: W - L - R, h: plotH};
    function sx(v) { return plot.x + plot.w * ax.f(v); }
    function sy(v) { return plot.y + plot.h * (1 - ay.f(v)); }
    svg.setAttribute('data-plot', [plot.x, plot.y, plot.w, plot.h].join(','));
    svg.setAttribute('data-x-scale', ax.log ? 'log' : 'linear');
    svg.setAttribute('data-x-domain', ax.d0 + ',' + ax.d1);
    svg.setAttribute('data-y-scale', ay.log ? 'log' : 'linear');
    svg.setAttribute('data-y-domain', ay.d0 + ',' + ay.d1);
    var grid = el('g', {'class': 'grid'}, svg), g = el('g', {'class': 'axis'}, svg);
    var taken = [];
    ax.ticks.forEach(function (t) {
      el('line', {x1: sx(t), y1: plot.y, x2: sx(t), y2: plot.y + plot.h}, grid);
      el('line', {x1: sx(t), y1: plot.y + plot.h, x2: sx(t), y2: plot.y + plot.h + 4}, g);
      text(g, sx(t), plot.y + plot.h + 16, ax.label(t), {'text-anchor': 'middle'});
    });
    ay.ticks.forEach(function (t) {
      el('line', {x1: plot.x, y1: sy(t), x2: plot.x + plot.w, y2: sy(t)}, grid);
      el('line', {x1: plot.x - 4, y1: sy(t), x2: plot.x, y2: sy(t)}, g);
      text(g, plot.x - 6, sy(t) + 4, ay.label(t), {'text-anchor': 'end'});
    });
    el('line', {x1: plot.x, y1: plot.y + plot.h, x2: plot.x + plot.w, y2: plot.y + plot.h}, g);
    el('line', {x1: plot.x, y1: plot.y, x2: plot.x, y2: plot.y + plot.h}, g);
    text(svg, plot.x + plot.w / 2, plot.y + plot.h + 36, c.xTitle,
         {'text-anchor': 'middle', 'class': 'axis-title'});
    var my = plot.y + plot.h / 2;
    text(svg, 14, my, c.yTitle, {'text-anchor': 'middle', 'class': 'axis-title',
                                 transform: 'rotate(-90 14 ' + my + ')'});
    var labels = [];
    c.series.forEach(function (s, i) {
      var color = COLORS[i % COLORS.length], modelled = s.how !== 'measured';
      if (s.line.length > 1) {
        var d = s.line.map(function (p, k) {
          return (k ? 'L' : 'M') + sx(p.x).toFixed(1) + ' ' + sy(p.y).toFixed(1);
        }).join(' ');
        el('path', {d: d, stroke: color, 'class': 'frontier-line' + (modelled ? ' modelled' : '')},
           svg);
      }
      s.points.forEach(function (p) {
        var px = sx(p.x), py = sy(p.y);
        var circle = el('circle', {cx: px, cy: py, r: 4.5, stroke: color, 'stroke-width': 2,
                                   fill: p.how === 'measured' ? color : '#fff',
                                   'class': 'point' + (p.on_frontier ? ' on-frontier' : ''),
                                   'data-x': p.x, 'data-y': p.y, 'data-series': s.name,
                                   'data-color': color, 'data-label': p.label}, svg);
        el('title', {}, circle).textContent = s.name + ' ' + p.label + ': ' + fmt(p.x) + ' ' +
            c.xUnit + ', ' + fmt(p.y) + ' ' + c.yUnit + ' (' + p.how + ', run ' + p.run_id + ')';
        taken.push({x: px - 5, y: py - 5, width: 10, height: 10});
        labels.push({px: px, py: py, label: p.label, circle: circle});
      });
      var ly = T + plotH + B + 8 + 18 * i + 6;
      el('rect', {x: plot.x, y: ly - 9, width: 14, height: 10, fill: modelled ? '#fff' : color,
                  stroke: color, 'stroke-width': 2}, svg);
      text(svg, plot.x + 20, ly, s.name + (modelled ? ' (' + s.how + ')' : ' (measured)'),
           {'class': 'legend'});
    });
    placeLabels(svg, labels, taken, plot);
  }
  function frontierCharts(data) {
    var fr = document.getElementById('frontiers'), cost = document.getElementById('cost-frontiers');
    if (data.frontiers.length === 0) {
      fr.appendChild(document.createTextNode('No ok run has both TPOT and throughput.'));
    }
    data.frontiers.forEach(function (f) {
      var h = document.createElement('h3');
      h.textContent = f.model;
      fr.appendChild(h);
      chart(fr, {cls: 'frontier-chart', group: f.model, series: f.series.map(function (s) {
        return {name: s.name, how: s.how, points: s.points, line: s.frontier};
      }), xTitle: 'interactivity: tokens/s per user (1 / TPOT)', xUnit: 'tok/s/user',
        yTitle: 'output tokens/s per device', yUnit: 'tok/s/device'});
      var costSeries = [];
      f.series.forEach(function (s) {
        var pts = s.points.filter(function (p) { return p.usd !== null; }).map(function (p) {
          return {x: p.x, y: p.usd, label: p.label, how: p.how, run_id: p.run_id,
                  on_frontier: p.on_frontier};
        });
        var line = pts.filter(function (p) { return p.on_frontier; })
                      .sort(function (a, b) { return a.x - b.x; });
        if (pts.length) costSeries.push({name: s.name, how: s.how, points: pts, line: line});
      });
      if (costSeries.length === 0) return;
      var h2 = document.createElement('h3');
      h2.textContent = f.model;
      cost.appendChild(h2);
      chart(cost, {cls: 'cost-chart', group: f.model, series: costSeries,
                   xTitle: 'interactivity: tokens/s per user (1 / TPOT)', xUnit: 'tok/s/user',
                   yTitle: 'USD per million output tokens', yUnit: 'USD/Mtok'});
    });
  }
  function bars(container, id, rows, unit) {
    var rowH = 22, T = 10, barW = 420;
    var H = T * 2 + rowH * Math.max(rows.length, 1);
    var svg = el('svg', {width: 200, height: H, id: id, 'class': 'bar-chart'}, container);
    if (rows.length === 0) {
      text(svg, 10, T + 14, 'no run recorded this figure');
      svg.setAttribute('width', 400);
      return;
    }
    var probe = text(svg, 0, 0, '', {}), L = 0, R = 0, max = 0;
    rows.forEach(function (r) {
      max = Math.max(max, r.value);
      probe.textContent = r.series;
      L = Math.max(L, probe.getComputedTextLength());
      probe.textContent = fmt(r.value) + ' ' + unit + ' (' + r.how + ')';
      R = Math.max(R, probe.getComputedTextLength());
    });
    svg.removeChild(probe);
    L = Math.ceil(L) + 16;
    R = Math.ceil(R) + 16;
    svg.setAttribute('width', L + barW + R);
    rows.forEach(function (r, i) {
      var y = T + i * rowH;
      text(svg, L - 6, y + 15, r.series, {'text-anchor': 'end'});
      var w = Math.max(1, barW * r.value / max);
      var bar = el('rect', {x: L, y: y + 3, width: w, height: rowH - 6,
                            'class': 'bar ' + r.how}, svg);
      el('title', {}, bar).textContent = r.series + ': ' + fmt(r.value) + ' ' + unit + ' (' +
          r.how + ')';
      text(svg, L + w + 4, y + 15, fmt(r.value) + ' ' + unit + ' (' + r.how + ')');
    });
  }
  // Boxes of what was drawn, in page coordinates, for the layout checks.
  function recordLayout() {
    function box(e) {
      var r = e.getBoundingClientRect();
      return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height]
          .map(function (v) { return v.toFixed(1); }).join(',');
    }
    var all = document.querySelectorAll('svg, svg text, svg circle');
    for (var i = 0; i < all.length; i++) all[i].setAttribute('data-bbox', box(all[i]));
    document.body.setAttribute('data-height', document.documentElement.scrollHeight);
    document.body.setAttribute('data-width', document.documentElement.scrollWidth);
  }
  try {
    var data = JSON.parse(document.getElementById('cb-data').textContent);
    frontierCharts(data);
    bars(document.getElementById('usd'), 'usd-bars', data.usd_bars, 'USD/Mtok');
    bars(document.getElementById('joules'), 'joules-bars', data.joules_bars, 'J/token');
    recordLayout();
    document.body.setAttribute('data-rendered', 'ok');
  } catch (e) {
    var div = document.createElement('div');
    div.id = 'cb-error';
    div.textContent = 'report script error: ' + (e && e.stack ? e.stack : e);
    document.body.insertBefore(div, document.body.firstChild);
  }
})();
)JS";

}  // namespace cb
