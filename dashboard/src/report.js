// The paper report (`bitsweep report`): the study's table, its charts (charts.js), the skipped
// and failed cells with their reasons and an appendix of the jobs' provenance, for one sweep or,
// with --compare, two sweeps side by side with the differences. Input: cli/report.h ReportJson.
// Needs render.js and charts.js; draws only DOM and SVG, so the file works offline.
(function () {
  'use strict';
  const R = window.BitsweepRender;
  const C = window.BitsweepCharts;
  const el = R.el;

  // The table's columns in the study's order (WikiText-2, C4, the zero-shot tasks, MMLU), then
  // any other task's, each with the title the paper gives it; the pivot's own name (with its
  // evaluation settings) is kept as a subtitle.
  function paperColumns(table, paperTasks) {
    const order = new Map(paperTasks.map((t, i) => [t.task, i]));
    const titles = new Map(paperTasks.map((t) => [t.task, t.title]));
    return table.columns.map((c, i) => ({ c, i })).sort((a, b) => {
      const oa = order.has(a.c.task) ? order.get(a.c.task) : paperTasks.length;
      const ob = order.has(b.c.task) ? order.get(b.c.task) : paperTasks.length;
      return oa !== ob ? oa - ob : a.i - b.i;
    }).map(({ c }) => ({ column: c, title: titles.get(c.task) || c.name }));
  }

  function hasValue(cell) {
    return cell && !cell.skipped && !cell.failed && cell.value !== null && cell.value !== undefined;
  }

  // The best quantized value of each model in each column: lowest perplexity, highest accuracy.
  // A sensitivity row (one unit quantized, the rest FP) is a probe, not a recipe, and never wins.
  function bestValues(table, columns) {
    const best = new Map();
    for (const r of table.rows) {
      if (r.baseline || r.sensitivity_unit) continue;
      for (const { column: c } of columns) {
        const cell = r.cells[c.name];
        if (!hasValue(cell)) continue;
        const key = R.groupOf(r) + '\n' + c.name;
        const cur = best.get(key);
        if (cur === undefined || (c.lower_is_better ? cell.value < cur : cell.value > cur)) {
          best.set(key, cell.value);
        }
      }
    }
    return best;
  }

  function waBits(row) {
    return row.baseline ? '16/16' : `${row.wbits}/${row.abits || 16}`;
  }

  // One cell of the paper's table: the value (bold when the model's best quantized one), or
  // "skipped" / "failed" with the reason on hover and a link to the list below, or "–".
  function valueCell(row, column, best, attrs) {
    const cell = row.cells[column.name];
    const base = Object.assign({ class: 'num', 'data-column': column.name }, attrs || {});
    if (!cell) return el('td', Object.assign(base, { class: 'num missing', text: '–' }));
    base['data-job-id'] = String(cell.job_id);
    if (cell.skipped || cell.failed) {
      const kind = cell.skipped ? 'skipped' : 'failed';
      return el('td', Object.assign(base, { class: 'num ' + kind, title: cell.skipped || cell.failed }),
                el('a', { href: '#problem-' + cell.job_id, text: kind }));
    }
    base['data-value'] = cell.value === null ? 'inf' : String(cell.value);
    const text = R.formatValue(column, cell.value);
    const isBest = !row.baseline && best && hasValue(cell) &&
                   best.get(R.groupOf(row) + '\n' + column.name) === cell.value;
    if (isBest) base.class += ' best';
    return el('td', base, isBest ? el('strong', { class: 'value', text }) : el('span', { class: 'value', text }));
  }

  // The Recipe cell: the row's label and, for a mixed recipe, its average weight bits.
  function recipeCell(row, label) {
    return el('td', {}, [label, row.avg_wbits
      ? el('span', { class: 'muted avg-wbits', text: ` (${row.avg_wbits.toFixed(2)} bits avg)` }) : null]);
  }

  function paperTable(sweep, paperTasks) {
    const table = sweep.table;
    const columns = paperColumns(table, paperTasks);
    const best = bestValues(table, columns);
    const head = el('tr', {}, ['Model', 'Method', 'W/A', 'Recipe'].map((t) => el('th', { text: t }))
      .concat(columns.map(({ column, title }) => el('th', {
        class: 'num', 'data-column': column.name, title: column.name },
        [title + (column.lower_is_better ? '' : ' (%)'), el('span', { class: 'subtitle', text: column.name })]))));
    const body = el('tbody');
    let last = null;
    for (const r of table.rows) {
      const group = R.groupOf(r);
      const tr = el('tr', { class: (r.baseline ? 'baseline' : '') + (group !== last ? ' model-start' : ''),
                            'data-model': r.model_name || r.model, 'data-label': r.label });
      tr.appendChild(el('td', { class: 'model', text: group !== last ? R.modelTitle(r) : '' }));
      last = group;
      tr.appendChild(el('td', { text: r.baseline ? 'FP' : r.method }));
      tr.appendChild(el('td', { class: 'num', text: waBits(r) }));
      tr.appendChild(recipeCell(r, r.label));
      for (const { column } of columns) tr.appendChild(valueCell(r, column, best));
      body.appendChild(tr);
    }
    return el('table', { class: 'results paper', 'data-sweep': String(sweep.id) }, [el('thead', {}, head), body]);
  }

  // The calibration fields of a row's recipe (common/labels.cc CalibrationFields).
  const kCalibrationFields = new Set(['calib', 'nsamples', 'calib_seqlen', 'seed', 'calib_dtype']);

  // Rows of two sweeps matched by model and label ("gptq w4 g128"): the same model and method
  // under, say, two code versions or calibrations. A row whose label names calibration settings
  // (its sweep has that recipe under several calibrations) is matched by model, method, bits,
  // group and options instead, where that is unique on both sides. Columns matched by name.
  function matchRows(a, b) {
    const key = (r) => (r.model_name || r.model) + '\n' + r.label;
    const recipe = (r) => [r.model_name || r.model, r.method, r.wbits, r.abits, r.group]
      .concat(Object.entries(r.recipe || {}).filter(([k]) => !kCalibrationFields.has(k)).map(([k, v]) => k + '=' + v))
      .join('\n');
    const bByKey = new Map(b.table.rows.map((r) => [key(r), r]));
    const pairs = a.table.rows.map((r) => [r, bByKey.get(key(r)) || null]);
    const used = new Set(pairs.filter(([, rb]) => rb).map(([, rb]) => rb));
    const count = (rows) => rows.reduce((m, r) => m.set(recipe(r), (m.get(recipe(r)) || 0) + 1), new Map());
    const aCount = count(pairs.filter(([, rb]) => !rb).map(([ra]) => ra));
    const bLeft = b.table.rows.filter((r) => !used.has(r));
    const bCount = count(bLeft);
    for (const pair of pairs) {
      if (pair[1]) continue;
      const k = recipe(pair[0]);
      if (aCount.get(k) !== 1 || bCount.get(k) !== 1) continue;
      pair[1] = bLeft.find((r) => recipe(r) === k);
      used.add(pair[1]);
    }
    return pairs.concat(b.table.rows.filter((r) => !used.has(r)).map((r) => [null, r]));
  }

  function compareTable(a, b, paperTasks) {
    const rows = matchRows(a, b);
    const names = new Set(a.table.columns.map((c) => c.name));
    const union = { columns: a.table.columns.concat(b.table.columns.filter((c) => !names.has(c.name))) };
    const columns = paperColumns(union, paperTasks);
    const top = el('tr', {}, ['Model', 'Method', 'W/A', 'Recipe'].map((t) => el('th', { rowspan: 2, text: t }))
      .concat(columns.map(({ column, title }) => el('th', { colspan: 3, class: 'num group', 'data-column': column.name,
                                                           title: column.name }, title + (column.lower_is_better ? '' : ' (%)')))));
    const sub = el('tr', {}, columns.flatMap(() => [
      el('th', { class: 'num', text: `#${a.id}` }), el('th', { class: 'num', text: `#${b.id}` }),
      el('th', { class: 'num', text: 'Δ' })]));
    const body = el('tbody');
    let last = null;
    for (const [ra, rb] of rows) {
      const r = ra || rb;
      const model = r.model_name || r.model;
      const tr = el('tr', { class: (r.baseline ? 'baseline' : '') + (model !== last ? ' model-start' : ''),
                            'data-model': model, 'data-label': r.label });
      tr.appendChild(el('td', { class: 'model', text: model !== last ? model : '' }));
      last = model;
      tr.appendChild(el('td', { text: r.baseline ? 'FP' : r.method }));
      tr.appendChild(el('td', { class: 'num', text: waBits(r) }));
      tr.appendChild(recipeCell(r, ra && rb && ra.label !== rb.label ? `${ra.label} | ${rb.label}` : r.label));
      for (const { column } of columns) {
        const none = (side) => el('td', { class: 'num missing', 'data-column': column.name, 'data-side': side, text: '–' });
        tr.appendChild(ra ? valueCell(ra, column, null, { 'data-side': 'a' }) : none('a'));
        tr.appendChild(rb ? valueCell(rb, column, null, { 'data-side': 'b' }) : none('b'));
        const ca = ra && ra.cells[column.name];
        const cb = rb && rb.cells[column.name];
        if (!hasValue(ca) || !hasValue(cb)) { tr.appendChild(none('delta')); continue; }
        const d = cb.value - ca.value;
        const bad = R.badness(column, cb.value, ca.value);
        const same = R.formatValue(column, cb.value) === R.formatValue(column, ca.value);
        tr.appendChild(el('td', { class: 'num delta ' + (same ? 'same' : bad > 0 ? 'worse' : 'better'),
                                  'data-column': column.name, 'data-side': 'delta', 'data-value': String(d),
                                  text: same ? '±0' : R.formatDelta(column, d) }));
      }
      body.appendChild(tr);
    }
    return el('table', { class: 'results compare' }, [el('thead', {}, [top, sub]), body]);
  }

  function problems(sweep) {
    if (sweep.problems.length === 0) {
      return el('p', { class: 'hint no-problems', text: 'Every job of this sweep succeeded.' });
    }
    return el('table', { class: 'problems', 'data-sweep': String(sweep.id) }, [
      el('thead', {}, el('tr', {}, ['job', 'state', 'model', 'quantization', 'task', 'reason']
        .map((h) => el('th', { text: h })))),
      el('tbody', {}, sweep.problems.map((p) => el('tr', {
        id: 'problem-' + p.job_id, 'data-job-id': String(p.job_id), 'data-state': p.state }, [
        el('td', { class: 'num', text: String(p.job_id) }), el('td', { text: p.state.toLowerCase() }),
        el('td', { text: p.model }), el('td', { text: p.quant }), el('td', { text: p.task }),
        el('td', { class: 'reason', text: p.reason })]))),
    ]);
  }

  // One provenance list: a table of its distinct values with the number of jobs of each.
  function factTable(name, items, fields) {
    if (!items || items.length === 0) return el('p', { class: 'hint', 'data-fact': name, text: 'not recorded' });
    return el('table', { class: 'provenance', 'data-fact': name }, [
      el('thead', {}, el('tr', {}, fields.map(([, title]) => el('th', { text: title }))
        .concat([el('th', { class: 'num', text: 'jobs' })]))),
      el('tbody', {}, items.map((it) => el('tr', {}, fields.map(([key]) => el('td', {
        'data-field': key, text: it[key] === undefined || it[key] === '' ? '–' : String(it[key]) }))
        .concat([el('td', { class: 'num', title: 'jobs ' + it.job_ids.join(', ') +
                                                  (it.jobs > it.job_ids.length ? ', …' : ''),
                            text: String(it.jobs) })])))),
    ]);
  }

  function provenance(sweep) {
    const p = sweep.provenance;
    const box = el('div', { class: 'appendix', 'data-sweep': String(sweep.id) });
    box.appendChild(el('p', { class: 'hint', text: `From the stored provenance of ${p.jobs} jobs with results.` }));
    const lists = [
      ['Code version', 'code_versions', [['value', 'code version']]],
      ['Checkpoints', 'checkpoints', [['model', 'model'], ['digest', 'digest']]],
      ['Data files', 'data_files', [['task', 'task'], ['file', 'file'], ['sha256', 'SHA-256']]],
      ['Calibration', 'calibrations', [['method', 'method'], ['source', 'source'], ['nsamples', 'samples'],
                                       ['seqlen', 'seqlen'], ['seed', 'seed'], ['dtype', 'dtype']]],
      ['Seeds', 'seeds', [['what', 'of'], ['seed', 'seed']]],
      ['Workers', 'workers', [['value', 'worker']]],
      ['Devices', 'devices', [['value', 'device']]],
    ];
    for (const [title, key, fields] of lists) {
      box.appendChild(el('h4', { text: title }));
      box.appendChild(factTable(key, p[key], fields));
    }
    return box;
  }

  function sweepSummary(s) {
    return `Sweep ${s.id} (${R.sweepName(s)}): ${s.total} jobs, ${s.succeeded} succeeded, ${s.failed} failed, ` +
           `${s.skipped} skipped, ${s.canceled} canceled` + (s.pending ? `, ${s.pending} not finished` : '') + '.';
  }

  function sweepSection(sweep, paperTasks, heading) {
    const sec = el('section', { class: 'sweep', id: 'sweep-' + sweep.id, 'data-sweep': String(sweep.id) });
    if (heading) sec.appendChild(el('h2', { text: `Sweep ${sweep.id}: ${R.sweepName(sweep)}` }));
    sec.appendChild(el('p', { class: 'summary', text: sweepSummary(sweep) }));
    sec.appendChild(el('h3', { text: 'Results' }));
    if (sweep.table.rows.length === 0) {
      sec.appendChild(el('p', { class: 'empty', text: 'No results yet.' }));
    } else {
      sec.appendChild(el('p', { class: 'hint', text:
        'A row per model, method and W/A bits, FP first; perplexity (lower is better) and accuracy ' +
        'in percent (higher is better). Bold: the best quantized value of the model in the column.' }));
      sec.appendChild(el('div', { class: 'table-wrap' }, paperTable(sweep, paperTasks)));
    }
    const charts = C.chartsView(sweep.table);
    if (charts) {
      sec.appendChild(el('h3', { text: 'Charts' }));
      sec.appendChild(charts);
    }
    sec.appendChild(el('h3', { text: 'Skipped and failed' }));
    sec.appendChild(problems(sweep));
    sec.appendChild(el('h3', { text: 'Appendix: provenance' }));
    sec.appendChild(provenance(sweep));
    return sec;
  }

  function render(container, report) {
    container.textContent = '';
    const [a, b] = report.sweeps;
    if (b) {
      container.appendChild(el('h2', { text: `Sweep ${a.id} (${a.name}) vs sweep ${b.id} (${b.name})` }));
      container.appendChild(el('p', { class: 'hint', text:
        `Rows matched by model and recipe label; Δ is #${b.id} minus #${a.id} (perplexity absolute, ` +
        'accuracy in points): red worse, green better.' }));
      container.appendChild(el('div', { class: 'table-wrap' }, compareTable(a, b, report.paper_tasks)));
    }
    for (const s of report.sweeps) container.appendChild(sweepSection(s, report.paper_tasks, !!b));
  }

  window.BitsweepReport = { render, paperColumns, bestValues, matchRows };
})();
