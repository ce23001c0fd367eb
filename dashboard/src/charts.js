// The study's charts as SVG, shared by the dashboard (render.js's results view) and the paper
// report (`bitsweep report`, report.js): perplexity against weight bits on a log scale, the
// accuracy drop against FP, and per-unit sensitivity bars. SVG rather than uPlot's canvas: the
// report stays one small file that prints and scales, and every drawn point carries its stored
// value (data-value) and its job (data-job-id), so a test reads back what the chart shows.
// Input: the JSON of common/results_table.h (ResultsTableToJson). Needs render.js (el,
// formatValue).
(function () {
  'use strict';
  const R = window.BitsweepRender;
  const kSvg = 'http://www.w3.org/2000/svg';
  const palette = ['#268bd2', '#dc322f', '#859900', '#d33682', '#b58900', '#2aa198', '#6c71c4',
                   '#cb4b16', '#586e75', '#8b5a2b'];

  function svg(tag, attrs, children) {
    const e = document.createElementNS(kSvg, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    for (const c of [].concat(children || [])) {
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function unique(values) { return Array.from(new Set(values)); }

  // 1, 2 or 5 times a power of ten, the step nearest above `raw`.
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const r = raw / p;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * p;
  }

  function tickText(v) {
    if (Math.abs(v) >= 1e6) return v.toExponential(0).replace('+', '');
    return String(+v.toFixed(6));
  }

  // A line chart of series over bit-widths. spec: {kind, caption, xLabel, yLabel, log, zero,
  // bits (the x ticks), series: [{name, points: [{x, y, text, job}]}], ref: {y, label} (a dashed
  // horizontal line: the FP baseline), data (data-* of the figure)}. A point whose y cannot be
  // drawn (null: a diverged model's inf; on a log axis also <= 0) is marked at the top edge.
  function lineChart(spec) {
    const W = 560, H = 300, m = { l: 66, r: 170, t: 14, b: 44 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const drawable = (y) => typeof y === 'number' && isFinite(y) && (!spec.log || y > 0);
    const ys = [];
    for (const s of spec.series) for (const p of s.points) if (drawable(p.y)) ys.push(p.y);
    if (spec.ref && drawable(spec.ref.y)) ys.push(spec.ref.y);
    if (ys.length === 0) return null;
    let lo = Math.min(...ys);
    let hi = Math.max(...ys);
    let ticks = [];
    if (spec.log) {
      lo = Math.pow(10, Math.floor(Math.log10(lo)));
      hi = Math.pow(10, Math.ceil(Math.log10(hi)));
      if (hi <= lo) hi = lo * 10;
      for (let v = lo; v <= hi * 1.0001; v *= 10) ticks.push(v);
      if (ticks.length <= 2) ticks = [lo, 2 * lo, 5 * lo, hi];
    } else {
      if (spec.zero) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
      if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
      const step = niceStep((hi - lo) / 5);
      lo = Math.floor(lo / step) * step;
      hi = Math.ceil(hi / step) * step;
      for (let v = lo; v <= hi + step / 2; v += step) ticks.push(+v.toFixed(10));
    }
    const bits = spec.bits;
    const xlo = bits[0] - 0.5;
    const xhi = bits[bits.length - 1] + 0.5;
    const X = (x) => m.l + ((x - xlo) / (xhi - xlo)) * pw;
    const Y = (y) => m.t + ph - (spec.log
      ? (Math.log10(y) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))
      : (y - lo) / (hi - lo)) * ph;
    const root = svg('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img',
                              class: 'chart', 'data-log': spec.log ? 'true' : 'false' });
    root.appendChild(svg('title', {}, spec.caption));
    const axes = svg('g', { class: 'axes' });
    for (const t of ticks) {
      axes.appendChild(svg('line', { x1: m.l, x2: m.l + pw, y1: Y(t), y2: Y(t), class: 'grid' }));
      axes.appendChild(svg('text', { x: m.l - 6, y: Y(t) + 4, 'text-anchor': 'end', class: 'ytick',
                                     'data-value': t }, tickText(t)));
    }
    for (const b of bits) {
      axes.appendChild(svg('text', { x: X(b), y: m.t + ph + 16, 'text-anchor': 'middle',
                                     class: 'xtick', 'data-value': b }, String(b)));
    }
    axes.appendChild(svg('rect', { x: m.l, y: m.t, width: pw, height: ph, class: 'frame' }));
    axes.appendChild(svg('text', { x: m.l + pw / 2, y: H - 6, 'text-anchor': 'middle',
                                   class: 'label' }, spec.xLabel));
    axes.appendChild(svg('text', { x: 14, y: m.t + ph / 2, 'text-anchor': 'middle', class: 'label',
                                   transform: `rotate(-90 14 ${m.t + ph / 2})` }, spec.yLabel));
    root.appendChild(axes);
    const legend = svg('g', { class: 'legend' });
    let row = 0;
    const legendEntry = (name, color, dash) => {
      const y = m.t + 8 + 16 * row++;
      legend.appendChild(svg('line', { x1: W - m.r + 12, x2: W - m.r + 32, y1: y, y2: y,
                                       stroke: color, 'stroke-width': 2, 'stroke-dasharray': dash }));
      legend.appendChild(svg('text', { x: W - m.r + 38, y: y + 4, class: 'legend-name' }, name));
    };
    if (spec.ref && drawable(spec.ref.y)) {
      root.appendChild(svg('line', { x1: m.l, x2: m.l + pw, y1: Y(spec.ref.y), y2: Y(spec.ref.y),
                                     class: 'ref', 'data-value': spec.ref.y, stroke: '#444',
                                     'stroke-dasharray': '6 4' },
                           svg('title', {}, `${spec.ref.label}: ${spec.ref.text || spec.ref.y}`)));
      legendEntry(spec.ref.label, '#444', '6 4');
    }
    const n = spec.series.length;
    const step = n > 1 ? Math.min(0.08, 0.3 / (n - 1)) : 0;
    spec.series.forEach((s, i) => {
      const color = palette[i % palette.length];
      const dx = (i - (n - 1) / 2) * step;  // series with equal values stay visible
      const g = svg('g', { class: 'series', 'data-series': s.name });
      const pts = s.points.slice().sort((a, b) => a.x - b.x);
      const line = pts.filter((p) => drawable(p.y)).map((p) => `${X(p.x + dx).toFixed(1)},${Y(p.y).toFixed(1)}`);
      if (line.length > 1) {
        g.appendChild(svg('polyline', { points: line.join(' '), fill: 'none', stroke: color,
                                        'stroke-width': 2 }));
      }
      for (const p of pts) {
        const ok = drawable(p.y);
        g.appendChild(svg(ok ? 'circle' : 'path', ok
          ? { cx: X(p.x + dx), cy: Y(p.y), r: 4, fill: '#fff', stroke: color, 'stroke-width': 2 }
          : { d: `M${X(p.x + dx) - 5},${m.t + 8} l5,-8 l5,8 z`, fill: color },
        svg('title', {}, p.text)));
        const mark = g.lastChild;
        mark.setAttribute('class', ok ? 'point' : 'point off-scale');
        mark.setAttribute('data-x', String(p.x));
        mark.setAttribute('data-value', p.y === null || p.y === undefined ? '' : String(p.y));
        if (p.job) mark.setAttribute('data-job-id', String(p.job));
      }
      root.appendChild(g);
      legendEntry(s.name, color, undefined);
    });
    root.appendChild(legend);
    const attrs = { class: 'svg-chart', 'data-kind': spec.kind };
    for (const [k, v] of Object.entries(spec.data || {})) attrs['data-' + k] = v;
    return R.el('figure', attrs, [R.el('figcaption', { text: spec.caption }), root]);
  }

  // A bar chart: spec {kind, caption, yLabel, xLabel, bars: [{label, value, text, job, worse,
  // data}], data}. A bar is red when `worse` (default: above zero), green otherwise; its data-*
  // carry `data` besides its label and value.
  function barChart(spec) {
    const bars = spec.bars.filter((b) => typeof b.value === 'number' && isFinite(b.value));
    if (bars.length === 0) return null;
    const W = Math.max(360, 90 + 28 * bars.length), H = 280, m = { l: 66, r: 16, t: 14, b: 60 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    let lo = Math.min(0, ...bars.map((b) => b.value));
    let hi = Math.max(0, ...bars.map((b) => b.value));
    if (hi - lo < 1e-9) hi = lo + 1;
    const step = niceStep((hi - lo) / 5);
    lo = Math.floor(lo / step) * step;
    hi = Math.ceil(hi / step) * step;
    const Y = (y) => m.t + ph - ((y - lo) / (hi - lo)) * ph;
    const root = svg('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart' });
    root.appendChild(svg('title', {}, spec.caption));
    for (let v = lo; v <= hi + step / 2; v += step) {
      root.appendChild(svg('line', { x1: m.l, x2: m.l + pw, y1: Y(v), y2: Y(v), class: 'grid' }));
      root.appendChild(svg('text', { x: m.l - 6, y: Y(v) + 4, 'text-anchor': 'end', class: 'ytick' },
                           tickText(+v.toFixed(10))));
    }
    root.appendChild(svg('text', { x: 14, y: m.t + ph / 2, 'text-anchor': 'middle', class: 'label',
                                   transform: `rotate(-90 14 ${m.t + ph / 2})` }, spec.yLabel));
    if (spec.xLabel) {
      root.appendChild(svg('text', { x: m.l + pw / 2, y: H - 6, 'text-anchor': 'middle', class: 'label' },
                           spec.xLabel));
    }
    const slot = pw / bars.length;
    bars.forEach((b, i) => {
      const x = m.l + i * slot + slot * 0.15;
      const top = Y(Math.max(0, b.value));
      const worse = b.worse === undefined ? b.value > 0 : b.worse;
      const attrs = { x, y: top, width: slot * 0.7, height: Math.max(1, Math.abs(Y(b.value) - Y(0))),
                      fill: worse ? '#dc322f' : '#859900', class: 'bar ' + (worse ? 'worse' : 'better'),
                      'data-label': b.label, 'data-value': b.value, 'data-job-id': b.job };
      for (const [k, v] of Object.entries(b.data || {})) attrs['data-' + k] = v;
      root.appendChild(svg('rect', attrs, svg('title', {}, b.text || `${b.label}: ${b.value}`)));
      const lx = x + slot * 0.35;
      root.appendChild(svg('text', { x: lx, y: m.t + ph + 14, 'text-anchor': 'end', class: 'xtick',
                                     transform: `rotate(-40 ${lx} ${m.t + ph + 14})` }, b.short || b.label));
    });
    root.appendChild(svg('line', { x1: m.l, x2: m.l + pw, y1: Y(0), y2: Y(0), stroke: '#444' }));
    const attrs = { class: 'svg-chart', 'data-kind': spec.kind };
    for (const [k, v] of Object.entries(spec.data || {})) attrs['data-' + k] = v;
    return R.el('figure', attrs, [R.el('figcaption', { text: spec.caption }), root]);
  }

  // A quantized row's cell that holds a result (not skipped, failed or missing).
  function resultCell(row, column) {
    const cell = row.cells[column.name];
    return cell && !cell.skipped && !cell.failed ? cell : null;
  }

  // Model groups (render.js groupOf: model and run tag), each with its own baseline and charts.
  function modelsOf(table) { return unique(table.rows.map(R.groupOf)); }

  // The rows the line charts draw: a sensitivity sweep's rows (one unit quantized, the rest FP)
  // are not points of a bits curve; they have their own bar charts.
  function curveRows(table, model) {
    return table.rows.filter((r) => R.groupOf(r) === model && !r.sensitivity_unit);
  }

  function modelName(table, model) {
    const row = table.rows.find((r) => R.groupOf(r) === model);
    return row ? R.modelTitle(row) : model;
  }

  // Perplexity against weight bits, log scale: one chart per model and perplexity column, a
  // line per quantization series (method with its group and options), FP dashed.
  function pplCharts(table) {
    const out = [];
    for (const model of modelsOf(table)) {
      for (const c of table.columns.filter((col) => col.lower_is_better)) {
        const rows = curveRows(table, model);
        const quant = rows.filter((r) => !r.baseline && resultCell(r, c));
        if (quant.length === 0) continue;
        const base = rows.find((r) => r.baseline && resultCell(r, c));
        const series = unique(quant.map((r) => r.series)).sort().map((name) => ({
          name,
          points: quant.filter((r) => r.series === name).map((r) => {
            const cell = r.cells[c.name];
            return { x: r.wbits, y: cell.value, job: cell.job_id,
                     text: `${r.label}: ${c.metric} ${R.formatValue(c, cell.value)}` };
          }),
        }));
        const fp = base ? base.cells[c.name].value : null;
        const chart = lineChart({
          kind: 'ppl', caption: `${c.name} vs bits (log scale) — ${modelName(table, model)}`,
          xLabel: 'weight bits', yLabel: `${c.metric} (log scale)`, log: true,
          bits: unique(quant.map((r) => r.wbits)).sort((a, b) => a - b), series,
          ref: fp === null ? null : { y: fp, label: 'FP', text: R.formatValue(c, fp) },
          data: { model, column: c.name },
        });
        if (chart) out.push(chart);
      }
    }
    return out;
  }

  // The accuracy drop against FP in points (FP minus quantized; higher is worse), averaged over
  // the accuracy columns where both have a result: one chart per model, a line per series.
  function accuracyDropCharts(table) {
    const out = [];
    const accuracy = table.columns.filter((c) => !c.lower_is_better);
    for (const model of modelsOf(table)) {
      const rows = curveRows(table, model);
      const base = rows.find((r) => r.baseline);
      if (!base) continue;
      const points = [];
      for (const r of rows.filter((row) => !row.baseline)) {
        const drops = [];
        for (const c of accuracy) {
          const cell = resultCell(r, c);
          const b = resultCell(base, c);
          if (cell && b && cell.value !== null && b.value !== null) {
            drops.push([c.name, 100 * (b.value - cell.value)]);
          }
        }
        if (drops.length === 0) continue;
        const mean = drops.reduce((s, [, d]) => s + d, 0) / drops.length;
        points.push({ series: r.series, x: r.wbits, y: mean,
                      text: `${r.label}: mean drop ${mean.toFixed(2)} pt over ${drops.length} ` +
                            `task${drops.length === 1 ? '' : 's'} (` +
                            drops.map(([n, d]) => `${n} ${d.toFixed(2)}`).join(', ') + ')' });
      }
      if (points.length === 0) continue;
      const series = unique(points.map((p) => p.series)).sort()
        .map((name) => ({ name, points: points.filter((p) => p.series === name) }));
      const chart = lineChart({
        kind: 'acc-drop', caption: `Accuracy drop vs FP (mean over tasks, points) — ${modelName(table, model)}`,
        xLabel: 'weight bits', yLabel: 'accuracy drop (pt)', log: false, zero: true,
        bits: unique(points.map((p) => p.x)).sort((a, b) => a - b), series,
        ref: { y: 0, label: 'FP', text: 'no drop' }, data: { model },
      });
      if (chart) out.push(chart);
    }
    return out;
  }

  // Sensitivity sweeps (common/sweep.h `sensitivity:`): one bar per unit (a decoder layer, or a
  // linear type in the model's order) with only that unit at low precision and everything else
  // FP, at its stored delta to the model's FP baseline; one chart per model, recipe (the row's
  // label without its unit) and perplexity column. Red where worse than FP. The rows are the
  // table's (ResultsTableToJson `sensitivity_unit`): the dashboard, `results --format html` and
  // `bitsweep report` draw the same bars from the same stored results.
  const kLinearOrder = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  function unitOrder(unit) {
    const m = /^layer (\d+)$/.exec(unit);
    return m ? Number(m[1]) : 10000 + kLinearOrder.indexOf(unit);
  }

  function sensitivityCharts(table) {
    const groups = new Map();
    for (const r of table.rows.filter((row) => row.sensitivity_unit)) {
      const recipe = r.label.split(' fp ')[0];  // "rtn w2 g64 fp L0:w2g64" -> "rtn w2 g64"
      const k = R.groupOf(r) + '\n' + recipe;
      if (!groups.has(k)) groups.set(k, { model: R.groupOf(r), recipe, rows: [] });
      groups.get(k).rows.push(r);
    }
    const out = [];
    for (const g of groups.values()) {
      const rows = g.rows.slice().sort((a, b) => unitOrder(a.sensitivity_unit) - unitOrder(b.sensitivity_unit));
      const byLayer = rows[0].sensitivity_unit.startsWith('layer ');
      for (const c of table.columns.filter((col) => col.lower_is_better)) {
        const bars = [];
        for (const r of rows) {
          const cell = resultCell(r, c);
          if (!cell || cell.delta === null || cell.delta === undefined) continue;
          const unit = r.sensitivity_unit;
          bars.push({ label: unit, short: byLayer ? unit.slice(6) : unit.replace('_proj', ''),
                      value: cell.delta, job: cell.job_id, data: { 'stored-value': cell.value },
                      text: `${unit}: ${R.formatValue(c, cell.value)} (${R.formatDelta(c, cell.delta)} vs FP)` });
        }
        const chart = barChart({
          kind: 'sensitivity',
          caption: `Sensitivity: ${c.name} vs FP per ${byLayer ? 'layer' : 'linear type'} — ` +
                   `${g.recipe} — ${modelName(table, g.model)}`,
          yLabel: `${c.metric} - FP ${c.metric}`,
          xLabel: (byLayer ? 'decoder layer' : 'linear type') + ' quantized alone (everything else FP)',
          bars, data: { model: g.model, column: c.name, recipe: g.recipe, bars: bars.length },
        });
        if (chart) out.push(chart);
      }
    }
    return out;
  }

  // Every chart of a table, in sections; null when there is nothing to draw.
  function chartsView(table) {
    const groups = [['Perplexity vs bits (log scale)', pplCharts(table)],
                    ['Accuracy drop vs FP', accuracyDropCharts(table)],
                    ['Sensitivity (one unit quantized, the rest FP)', sensitivityCharts(table)]].filter(([, c]) => c.length > 0);
    if (groups.length === 0) return null;
    const wrap = R.el('div', { class: 'svg-charts' });
    for (const [title, charts] of groups) {
      wrap.appendChild(R.el('h3', { text: title }));
      wrap.appendChild(R.el('div', { class: 'plots' }, charts));
    }
    return wrap;
  }

  window.BitsweepCharts = { lineChart, barChart, pplCharts, accuracyDropCharts, sensitivityCharts,
                            chartsView };
})();
