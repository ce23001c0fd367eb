// Rendering shared by the dashboard (app.js) and the self-contained HTML report
// (`bitsweep results --format html`): the results table pivoted like the study's tables and the
// metric-vs-bit-width plots. Input: the JSON of common/results_table.h (ResultsTableToJson).
// Plain DOM + uPlot (window.uPlot); no other dependency.
(function () {
  'use strict';

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of [].concat(children || [])) {
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  // As the CLI prints them (common/results_table.cc FormatResultValue).
  function formatValue(column, v) {
    return column.lower_is_better ? v.toFixed(3) : v.toFixed(4);
  }

  function formatDelta(column, d) {
    const s = column.lower_is_better ? d.toFixed(3) : (100 * d).toFixed(2);
    return (d > 0 ? '+' : d < 0 ? '' : '±') + s + (column.lower_is_better ? '' : ' pt');
  }

  // How much worse than the baseline, in [0, 1]: perplexity by its relative increase (x2 = full
  // scale), accuracy by points lost (20 points = full scale). Negative when better.
  function badness(column, value, base) {
    if (column.lower_is_better) {
      if (!(base > 0)) return 0;
      return Math.max(-1, Math.min(1, (value - base) / base));
    }
    return Math.max(-1, Math.min(1, (base - value) / 0.2));
  }

  function bitsLabel(row) {
    if (row.baseline) return 'FP';
    return 'W' + row.wbits + (row.abits ? 'A' + row.abits : '');
  }

  function baselineByModel(table) {
    const base = {};
    for (const r of table.rows) if (r.baseline) base[r.model] = r;
    return base;
  }

  function settingsText(fields) {
    return Object.entries(fields || {}).map(([k, v]) => k + '=' + v).join(', ');
  }

  // The pivoted table: a row per model and recipe (FP baseline first), a column per task and
  // evaluation settings; each quantized cell shows its delta to the model's baseline in the same
  // column (so under the same evaluation settings), coloured by how much worse it is.
  function resultsTable(table, opts) {
    opts = opts || {};
    const base = baselineByModel(table);
    const head = el('tr', {}, [
      el('th', { text: 'model' }), el('th', { text: 'method' }), el('th', { text: 'bits' }),
      el('th', { text: 'group' }), el('th', { text: 'quantization' }),
    ].concat(table.columns.map((c) =>
      el('th', { class: 'num' + (c.subset ? ' subset' : ''), text: c.name, 'data-column': c.name,
                 title: (c.lower_is_better ? 'lower is better' : 'higher is better') +
                   (c.subset ? '; computed on a subset of the data (limit)' : '') +
                   '\n' + settingsText(c.settings) }))));
    const body = el('tbody');
    let lastModel = null;
    for (const row of table.rows) {
      const tr = el('tr', {
        class: (row.baseline ? 'baseline' : '') + (row.model !== lastModel ? ' model-start' : ''),
        'data-model': row.model, 'data-label': row.label,
      });
      // The model is named once, on its first (baseline) row, as in the study's tables.
      tr.appendChild(el('td', { class: 'model', text: row.model !== lastModel ? row.model : '' }));
      lastModel = row.model;
      tr.appendChild(el('td', { text: row.method }));
      tr.appendChild(el('td', { text: bitsLabel(row) }));
      tr.appendChild(el('td', { text: row.baseline ? '' : (row.group === -1 ? 'channel' : String(row.group)) }));
      tr.appendChild(el('td', { text: row.label, title: settingsText(row.recipe) }));
      for (const c of table.columns) {
        const cell = row.cells[c.name];
        if (!cell) { tr.appendChild(el('td', { class: 'num missing', 'data-column': c.name, text: '–' })); continue; }
        const td = el('td', {
          class: 'num', 'data-column': c.name, 'data-value': String(cell.value),
          'data-job-id': String(cell.job_id),
          title: 'stderr ' + cell.stderr.toPrecision(3) + ', n ' + cell.n + ', job ' + cell.job_id,
        });
        const text = formatValue(c, cell.value);
        td.appendChild(opts.jobHref
          ? el('a', { class: 'value', href: opts.jobHref(cell.job_id), text: text })
          : el('span', { class: 'value', text: text }));
        const b = base[row.model] && base[row.model].cells[c.name];
        // A difference that rounds to nothing at the shown precision is neither worse nor better.
        const same = b && formatValue(c, cell.value) === formatValue(c, b.value);
        if (!row.baseline && b && same) {
          td.classList.add('same');
          td.appendChild(el('span', { class: 'delta', text: '±0' }));
        } else if (!row.baseline && b) {
          const bad = badness(c, cell.value, b.value);
          const alpha = (0.12 + 0.55 * Math.abs(bad)).toFixed(2);
          td.style.background = bad > 0 ? `rgba(220, 50, 47, ${alpha})` : `rgba(40, 160, 70, ${alpha})`;
          td.classList.add(bad > 0 ? 'worse' : 'better');
          td.appendChild(el('span', { class: 'delta', text: formatDelta(c, cell.value - b.value) }));
        }
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    return el('table', { class: 'results' }, [el('thead', {}, head), body]);
  }

  const palette = ['#268bd2', '#dc322f', '#859900', '#d33682', '#b58900', '#2aa198', '#6c71c4',
                   '#cb4b16', '#586e75', '#8b5a2b'];

  // One chart per (model, column): the metric against the weight bit-width, one line per
  // quantization series (method with its group and options), the FP baseline as a dashed line.
  function plot(table, model, column) {
    const rows = table.rows.filter((r) => r.model === model && r.cells[column.name]);
    const quant = rows.filter((r) => !r.baseline);
    const base = rows.find((r) => r.baseline);
    if (quant.length === 0) return null;
    const xs = Array.from(new Set(quant.map((r) => r.wbits))).sort((a, b) => a - b);
    const names = Array.from(new Set(quant.map((r) => r.series))).sort();
    const data = [xs];
    const series = [{ label: 'bits' }];
    names.forEach((name, i) => {
      data.push(xs.map((x) => {
        const r = quant.find((q) => q.series === name && q.wbits === x);
        return r ? r.cells[column.name].value : null;
      }));
      series.push({ label: name, stroke: palette[i % palette.length], width: 2, spanGaps: true,
                    points: { show: true, size: 7 } });
    });
    if (base) {
      data.push(xs.map(() => base.cells[column.name].value));
      series.push({ label: 'FP', stroke: '#444', width: 1, dash: [6, 4], points: { show: false } });
    }
    const box = el('figure', { class: 'plot', 'data-model': model, 'data-column': column.name,
                               'data-points': String(quant.length) },
                   [el('figcaption', { text: column.name + ' vs bits — ' + model })]);
    if (typeof uPlot === 'undefined') {
      box.appendChild(el('p', { class: 'error', text: 'uPlot did not load' }));
      return box;
    }
    const opts = {
      width: 440, height: 260, series: series,
      scales: { x: { time: false, range: (u, lo, hi) => [lo - 0.5, hi + 0.5] },
                y: { auto: true } },
      axes: [{ label: 'weight bits', values: (u, v) => v.map((x) => Number.isInteger(x) ? String(x) : '') },
             { label: column.metric, size: 60 }],
      legend: { live: false },
    };
    const holder = el('div', { class: 'plot-canvas' });
    box.appendChild(holder);
    new uPlot(opts, data, holder);
    return box;
  }

  function plots(table) {
    const wrap = el('div', { class: 'plots' });
    const models = Array.from(new Set(table.rows.map((r) => r.model)));
    for (const m of models) {
      for (const c of table.columns) {
        const p = plot(table, m, c);
        if (p) wrap.appendChild(p);
      }
    }
    return wrap;
  }

  // The whole results view: table then plots, into `container` (its content is replaced).
  function renderResults(container, table, opts) {
    container.textContent = '';
    if (!table || table.rows.length === 0) {
      container.appendChild(el('p', { class: 'empty', text: 'No results yet.' }));
      return;
    }
    container.appendChild(el('h2', { text: 'Results' }));
    container.appendChild(el('p', { class: 'hint', text:
      'A row per model and recipe (FP baseline first), a column per task and evaluation settings; ' +
      'labels name the settings that tell otherwise-equal rows or columns apart, and "(subset)" marks ' +
      'results computed on part of the data. Quantized cells show the difference to the baseline ' +
      'under the same settings (perplexity absolute, accuracy in points): red worse, green better.' }));
    if (table.columns.some((c) => c.subset)) {
      container.appendChild(el('p', { class: 'hint subset-note', text:
        '(subset): computed on the first windows (perplexity) or examples (other tasks) only; not ' +
        'comparable with results on the whole data.' }));
    }
    container.appendChild(el('div', { class: 'table-wrap' }, resultsTable(table, opts)));
    container.appendChild(el('h2', { text: 'Metric vs bit-width' }));
    container.appendChild(plots(table));
  }

  window.BitsweepRender = { el, formatValue, resultsTable, plots, renderResults };
})();
