// Rendering shared by the dashboard (app.js) and the self-contained HTML reports
// (`bitsweep results --format html`, and `bitsweep report` through report.js): the results table
// pivoted like the study's tables and the metric-vs-bit-width plots (uPlot); below them the
// study's SVG charts, which charts.js draws (perplexity against bits on a log scale, accuracy
// drop against FP, sensitivity bars), so every page draws each chart with the same code. Input:
// the JSON of common/results_table.h (ResultsTableToJson). Plain DOM + uPlot (window.uPlot).
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

  // x.toFixed(d), except that an exact tie rounds to even, as C's printf (the CLI's
  // absl::StrFormat) does: 12.3125 reads "12.312" in the CLI and here, where toFixed says
  // "12.313". toFixed(d + 60) is the exact decimal expansion of a double of this range.
  function fixed(x, d) {
    const s = x.toFixed(d);
    if (!isFinite(x) || Math.abs(x) >= 1e21) return s;
    const exact = Math.abs(x).toFixed(Math.min(100, d + 60));
    const point = exact.indexOf('.');
    if (!/^50*$/.test(exact.slice(point + 1 + d))) return s;  // not a tie
    const kept = d === 0 ? exact.slice(0, point) : exact.slice(0, point + 1 + d);
    if (Number(kept[kept.length - 1]) % 2 === 1) return s;  // odd: away from zero, as toFixed
    return (x < 0 ? '-' : '') + kept;
  }

  // As the CLI prints them with --percent (common/results_table.cc FormatResultValue):
  // perplexity with 3 decimals, accuracies in percent with 2, as the paper prints them.
  function formatValue(column, v) {
    if (v === null || v === undefined) return 'inf';  // JSON has no inf: a diverged model
    return column.lower_is_better ? fixed(v, 3) : fixed(100 * v, 2);
  }

  // The column's header: its name, and "(%)" for an accuracy.
  function columnTitle(column) {
    return column.name + (column.lower_is_better ? '' : ' (%)');
  }

  function formatDelta(column, d) {
    const s = column.lower_is_better ? fixed(d, 3) : fixed(100 * d, 2);
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

  // A row's model group: its model folder and run tag (common/results_table.h SameModelGroup).
  // Each group has its own FP baseline, its own rows in the tables and its own charts.
  function groupOf(row) { return row.run_tag ? row.model + '\n' + row.run_tag : row.model; }

  // What the model column shows (ModelColumnText): the name, then " run=TAG" for a tagged row.
  function modelTitle(row) {
    return (row.model_name || row.model) + (row.run_tag ? ' run=' + row.run_tag : '');
  }

  // A sweep's name, with " run=TAG" for a sweep with a run_tag (cli/output.h SweepName).
  function sweepName(s) { return s.run_tag ? `${s.name} run=${s.run_tag}` : s.name; }

  function baselineByModel(table) {
    const base = {};
    for (const r of table.rows) if (r.baseline) base[groupOf(r)] = r;
    return base;
  }

  function settingsText(fields) {
    return Object.entries(fields || {}).map(([k, v]) => k + '=' + v).join(', ');
  }

  // The pivoted table: a row per model and recipe (FP baseline first), a column per task and
  // evaluation settings; each quantized cell shows its delta to the model's baseline in the same
  // column (so under the same evaluation settings), coloured by how much worse it is.
  // `opts.rows`: the rows to show, in order (default: every row); `opts.sort` {key, dir} marks
  // the sorted header and `opts.onSort(key)` is called when a header is clicked.
  function resultsTable(table, opts) {
    opts = opts || {};
    const base = baselineByModel(table);
    const sortable = (key, attrs) => {
      const sorted = opts.sort && opts.sort.key === key;
      attrs['data-sort-key'] = key;
      if (sorted) attrs['aria-sort'] = opts.sort.dir > 0 ? 'ascending' : 'descending';
      if (opts.onSort) attrs.onclick = () => opts.onSort(key);
      attrs.class = (attrs.class || '') + ' sortable' + (sorted ? (opts.sort.dir > 0 ? ' asc' : ' desc') : '');
      return el('th', attrs);
    };
    const head = el('tr', {}, [
      sortable('model', { text: 'model' }), sortable('method', { text: 'method' }),
      sortable('bits', { text: 'bits' }), sortable('group', { text: 'group' }),
      sortable('quantization', { text: 'quantization' }),
    ].concat(table.columns.map((c) =>
      sortable('column:' + c.name, {
        class: 'num' + (c.subset ? ' subset' : ''), text: columnTitle(c), 'data-column': c.name,
        title: (c.lower_is_better ? 'lower is better' : 'higher is better') +
          (c.subset ? '; computed on a subset of the data (limit)' : '') +
          '\n' + settingsText(c.settings) + '\nclick to sort' }))));
    const body = el('tbody');
    let lastModel = null;
    for (const row of opts.rows || table.rows) {
      const tr = el('tr', {
        class: (row.baseline ? 'baseline' : '') + (groupOf(row) !== lastModel ? ' model-start' : ''),
        'data-model': row.model, 'data-label': row.label,
      });
      // The model is named once, on its first (baseline) row, as in the study's tables.
      tr.appendChild(el('td', { class: 'model', title: row.model,
                                text: groupOf(row) !== lastModel ? modelTitle(row) : '' }));
      lastModel = groupOf(row);
      tr.appendChild(el('td', { text: row.method }));
      tr.appendChild(el('td', { text: bitsLabel(row) }));
      tr.appendChild(el('td', { text: row.baseline ? '' : (row.group === -1 ? 'channel' : String(row.group)) }));
      // A mixed recipe's average weight bits (common/mixed_precision.h) after its label.
      const avg = row.avg_wbits ? el('span', { class: 'muted avg-wbits',
                                               text: ` (${row.avg_wbits.toFixed(2)} bits avg)` }) : null;
      tr.appendChild(el('td', { title: settingsText(row.recipe) }, [row.label, avg]));
      for (const c of table.columns) {
        const cell = row.cells[c.name];
        if (!cell) { tr.appendChild(el('td', { class: 'num missing', 'data-column': c.name, text: '–' })); continue; }
        if (cell.skipped) {  // the sweep's early_abort rule skipped it: the reason on hover
          tr.appendChild(el('td', { class: 'num skipped', 'data-column': c.name,
                                    'data-job-id': String(cell.job_id), title: cell.skipped,
                                    text: 'skipped' }));
          continue;
        }
        const td = el('td', {
          class: 'num', 'data-column': c.name, 'data-value': String(cell.value),
          'data-job-id': String(cell.job_id),
          title: 'stderr ' + (c.lower_is_better ? cell.stderr.toPrecision(3) : formatValue(c, cell.stderr)) +
            ', n ' + cell.n + ', job ' + cell.job_id,
        });
        const text = formatValue(c, cell.value);
        td.appendChild(opts.jobHref
          ? el('a', { class: 'value', href: opts.jobHref(cell.job_id), text: text })
          : el('span', { class: 'value', text: text }));
        const b = base[groupOf(row)] && base[groupOf(row)].cells[c.name];
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
  // quantization series (method with its group and options), the FP baseline as a dashed line
  // across the whole axis. Ticks sit at exactly the bit-widths present. Each series' points are
  // offset a little along x and drawn as open markers of decreasing size, so series with equal
  // values stay visible. Accuracy is plotted in percent on a 0-100 axis.
  function plot(table, model, column) {
    // Sensitivity rows (one unit quantized each) have their own bar charts (charts.js).
    const rows = table.rows.filter((r) => groupOf(r) === model && r.cells[column.name] &&
                                          !r.sensitivity_unit);
    const quant = rows.filter((r) => !r.baseline);
    const base = rows.find((r) => r.baseline);
    if (quant.length === 0) return null;
    const scale = column.lower_is_better ? 1 : 100;
    const y = (v) => (v === null || v === undefined ? null : scale * v);
    const bits = Array.from(new Set(quant.map((r) => r.wbits))).sort((a, b) => a - b);
    const lo = bits[0] - 0.5;
    const hi = bits[bits.length - 1] + 0.5;
    const names = Array.from(new Set(quant.map((r) => r.series))).sort();
    const step = names.length > 1 ? Math.min(0.08, 0.3 / (names.length - 1)) : 0;
    const offset = (i) => (i - (names.length - 1) / 2) * step;
    const key = (x) => x.toFixed(6);
    const xs = new Map([[key(lo), lo], [key(hi), hi]]);  // the FP line spans the whole axis
    names.forEach((name, i) => {
      for (const r of quant) if (r.series === name) xs.set(key(r.wbits + offset(i)), r.wbits + offset(i));
    });
    const xvals = Array.from(xs.values()).sort((a, b) => a - b);
    const data = [xvals];
    const series = [{ label: 'bits' }];
    names.forEach((name, i) => {
      data.push(xvals.map((x) => {
        const r = quant.find((q) => q.series === name && key(q.wbits + offset(i)) === key(x));
        return r ? y(r.cells[column.name].value) : null;
      }));
      const color = palette[i % palette.length];
      series.push({ label: name, stroke: color, width: 2, spanGaps: true,
                    dash: i % 2 === 1 ? [10, 3] : undefined,
                    points: { show: true, size: Math.max(6, 13 - 2 * i), width: 2, stroke: color,
                              fill: '#fff' } });
    });
    let fp = null;
    if (base && base.cells[column.name] && base.cells[column.name].value !== null) {
      fp = y(base.cells[column.name].value);
      data.push(xvals.map(() => fp));
      series.push({ label: 'FP', stroke: '#444', width: 1.5, dash: [6, 4], points: { show: false } });
    }
    const box = el('figure', { class: 'plot', 'data-model': model, 'data-column': column.name,
                               'data-points': String(quant.length), 'data-bits': bits.join(','),
                               'data-fp': fp === null ? '' : String(fp) },
                   [el('figcaption', { text: columnTitle(column) + ' vs bits — ' +
                                            modelTitle(base || quant[0]) })]);
    if (typeof uPlot === 'undefined') {
      box.appendChild(el('p', { class: 'error', text: 'uPlot did not load' }));
      return box;
    }
    const opts = {
      width: 440, height: 260, series: series,
      scales: { x: { time: false, range: () => [lo, hi] },
                y: column.lower_is_better ? { auto: true } : { auto: false, range: () => [0, 100] } },
      axes: [{ label: 'weight bits', splits: () => bits, values: (u, v) => v.map(String) },
             { label: column.lower_is_better ? column.metric : column.metric + ' (%)', size: 60 }],
      legend: { live: false },
    };
    const holder = el('div', { class: 'plot-canvas' });
    box.appendChild(holder);
    box.uplot = new uPlot(opts, data, holder);
    return box;
  }

  function plots(table) {
    const wrap = el('div', { class: 'plots' });
    const models = Array.from(new Set(table.rows.map(groupOf)));
    for (const m of models) {
      for (const c of table.columns) {
        const p = plot(table, m, c);
        if (p) wrap.appendChild(p);
      }
    }
    return wrap;
  }

  function csvField(text) {
    text = String(text);
    return /[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  // The rows as CSV, as `bitsweep results --format csv --percent` prints them: method, wbits,
  // abits and group in columns of their own, each column followed by its stderr (where the task
  // has one) and its difference to the model's baseline; a missing cell is empty.
  function tableCsv(table, rows) {
    const head = ['model', 'method', 'wbits', 'abits', 'group', 'quantization'];
    for (const c of table.columns) {
      const title = columnTitle(c);
      head.push(title);
      if (c.has_stderr) head.push(c.name + ' stderr');
      if (c.has_delta) head.push(c.name + ' vs FP');
    }
    const lines = [head];
    for (const r of rows || table.rows) {
      const line = [modelTitle(r), r.method, r.wbits, r.abits === 0 ? 16 : r.abits,
                    r.baseline ? '' : (r.group === -1 ? 'channel' : r.group), r.label];
      for (const c of table.columns) {
        const cell = r.cells[c.name];
        line.push(cell ? formatValue(c, cell.value) : '');
        if (c.has_stderr) line.push(cell ? formatValue(c, cell.stderr) : '');
        if (c.has_delta) {
          line.push(cell && cell.delta !== null && cell.delta !== undefined
            ? (c.lower_is_better ? fixed(cell.delta, 3) : fixed(100 * cell.delta, 2))
                .replace(/^(?=[0-9])/, '+').replace(/^-(?=0\.0*$)/, '+')
            : '');
        }
      }
      lines.push(line);
    }
    return lines.map((l) => l.map(csvField).join(',')).join('\n') + '\n';
  }

  // Sort keys of the results table's headers: a row's text or number under that key.
  function sortValue(row, key) {
    if (key === 'model') return modelTitle(row);
    if (key === 'method') return row.method;
    if (key === 'bits') return row.baseline ? 1000 : row.wbits * 100 + (row.abits || 16);
    if (key === 'group') return row.baseline ? -2 : row.group;
    if (key === 'quantization') return row.label;
    const cell = row.cells[key.slice('column:'.length)];
    return cell && cell.value !== null ? cell.value : null;
  }

  // The rows that pass the filters, in the chosen order (the pivot's order when unsorted).
  function visibleRows(table, state) {
    const text = (state.text || '').toLowerCase();
    let rows = table.rows.filter((r) =>
      (!state.model || groupOf(r) === state.model) && (!state.method || r.method === state.method) &&
      (!text || [r.model, r.model_name, r.method, r.label, r.series].join(' ').toLowerCase().includes(text)));
    if (state.sort) {
      const { key, dir } = state.sort;
      rows = rows.map((r, i) => [r, i]).sort(([a, i], [b, j]) => {
        const va = sortValue(a, key);
        const vb = sortValue(b, key);
        if (va === null && vb === null) return i - j;
        if (va === null) return 1;  // missing values last in either direction
        if (vb === null) return -1;
        const d = typeof va === 'number' ? va - vb : String(va).localeCompare(String(vb));
        return d !== 0 ? dir * d : i - j;
      }).map(([r]) => r);
    }
    return rows;
  }

  // Filters (text, model, method), sortable headers and a CSV download of the rows shown.
  // `state` keeps the choices across redraws (the dashboard redraws when results change).
  function filteredTable(table, opts, state) {
    const wrap = el('div', { class: 'results-view' });
    const tableBox = el('div', { class: 'table-wrap' });
    const count = el('span', { class: 'muted results-count' });
    const redraw = () => {
      const rows = visibleRows(table, state);
      count.textContent = `${rows.length} of ${table.rows.length} rows`;
      tableBox.textContent = '';
      tableBox.appendChild(resultsTable(table, Object.assign({}, opts, {
        rows, sort: state.sort,
        onSort: (key) => {
          // ascending, descending, then the pivot's order again
          if (!state.sort || state.sort.key !== key) state.sort = { key, dir: 1 };
          else if (state.sort.dir === 1) state.sort = { key, dir: -1 };
          else state.sort = null;
          redraw();
        },
      })));
    };
    const select = (name, values, label) => {
      const s = el('select', { class: 'results-filter-' + name, 'aria-label': label,
                               onchange: () => { state[name] = s.value; redraw(); } },
        [el('option', { value: '', text: 'every ' + name }) ].concat(values.map(([v, t]) => el('option', { value: v, text: t }))));
      s.value = state[name] || '';
      return s;
    };
    const models = new Map(table.rows.map((r) => [groupOf(r), modelTitle(r)]));
    const methods = Array.from(new Set(table.rows.map((r) => r.method))).sort();
    const search = el('input', { type: 'search', class: 'results-filter-text', placeholder: 'filter rows',
                                 'aria-label': 'filter rows', value: state.text || '',
                                 oninput: () => { state.text = search.value; redraw(); } });
    const download = el('button', { type: 'button', class: 'results-csv', text: 'Download CSV',
      onclick: () => {
        const blob = new Blob([tableCsv(table, visibleRows(table, state))], { type: 'text/csv' });
        const a = el('a', { href: URL.createObjectURL(blob), download: 'bitsweep-results.csv' });
        document.body.appendChild(a);
        a.click();
        a.remove();
      } });
    wrap.appendChild(el('div', { class: 'results-controls' }, [
      search, select('model', Array.from(models.entries()), 'model'),
      select('method', methods.map((m) => [m, m]), 'method'), download, count]));
    wrap.appendChild(tableBox);
    redraw();
    return wrap;
  }

  // The whole results view: table then plots, into `container` (its content is replaced).
  // `opts.state`: the filters and sorting, kept by the caller across redraws.
  function renderResults(container, table, opts) {
    opts = opts || {};
    container.textContent = '';
    if (!table || table.rows.length === 0) {
      container.appendChild(el('p', { class: 'empty', text: 'No results yet.' }));
      return;
    }
    container.appendChild(el('h2', { text: 'Results' }));
    container.appendChild(el('p', { class: 'hint', text:
      'A row per model and recipe (FP baseline first, then by method and bits descending), a ' +
      'column per task and evaluation settings; labels name the settings that tell otherwise-equal ' +
      'rows or columns apart, and "(subset)" marks results computed on part of the data. ' +
      'Accuracies are in percent. Quantized cells show the difference to the baseline under the ' +
      'same settings (perplexity absolute, accuracy in points): red worse, green better. Click a ' +
      'header to sort.' }));
    if (table.columns.some((c) => c.subset)) {
      container.appendChild(el('p', { class: 'hint subset-note', text:
        '(subset): computed on the first windows (perplexity) or examples (other tasks) only; not ' +
        'comparable with results on the whole data.' }));
    }
    container.appendChild(filteredTable(table, opts, opts.state || {}));
    container.appendChild(el('h2', { text: 'Metric vs bit-width' }));
    container.appendChild(plots(table));
    // The paper report's charts (charts.js), so the dashboard and `bitsweep report` agree: among
    // them a sensitivity sweep's per-unit bars.
    const charts = window.BitsweepCharts && window.BitsweepCharts.chartsView(table);
    if (charts) {
      container.appendChild(el('h2', { text: 'Study charts' }));
      container.appendChild(charts);
    }
  }

  window.BitsweepRender = { el, groupOf, modelTitle, sweepName, fixed, formatValue, formatDelta, columnTitle, badness, resultsTable, plots,
                            renderResults, tableCsv, visibleRows };
})();
