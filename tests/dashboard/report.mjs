// Opens `bitsweep report`'s HTML files in Debian's headless Chromium, offline, and checks what a
// reader sees against the results the coordinator stored. Run by report_test.cc; every failed
// check is printed and makes the exit status 1.
//
//   node report.mjs --node-modules DIR --report A.html --compare AB.html --sensitivity S.html \
//                   --expected FILE.json --out DIR
//
// FILE.json: {"a": {"sweep", "cells": [{"label", "column", "value", "text", "bits", "method"}],
// "skipped": [{"label", "column", "job_id"}], "best": {column: value}}, "b": {...}, "failed":
// {"label", "column", "reason"}, "code_versions": [...], "rows", "sensitivity": {"sweep",
// "column", "deltas": {unit: ppl - FP ppl}}}: QueryResults' numbers.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const require = createRequire(path.join(args['node-modules'], 'noop.js'));
const { chromium } = require('playwright-core');
const expected = JSON.parse(fs.readFileSync(args.expected, 'utf8'));
fs.mkdirSync(args.out, { recursive: true });

const failures = [];
function check(ok, what) {
  console.log((ok ? 'ok   ' : 'FAIL ') + what);
  if (!ok) failures.push(what);
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
                                        args: ['--no-sandbox'] });

async function open(file, name) {
  const context = await browser.newContext({ offline: true, viewport: { width: 1500, height: 1000 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => check(false, `${name}: no script error: ${e.message}`));
  let requests = 0;
  page.on('request', (r) => { if (!r.url().startsWith('file:')) requests++; });
  await page.goto('file://' + path.resolve(file));
  await page.waitForSelector('table.results', { timeout: 15000 });
  return { page, requests: () => requests };
}

// The paper's table of sweep `e.sweep` inside `scope`: every stored value in its cell (text and
// exact value), bold exactly where the model's best quantized value is, FP first, skipped cells.
async function checkPaperTable(page, scope, e, where) {
  const table = `${scope} table.paper[data-sweep="${e.sweep}"]`;
  const labels = await page.locator(`${table} tbody tr`).evaluateAll((trs) => trs.map((tr) => tr.dataset.label));
  check(labels[0] === 'FP (baseline)', `${where}: FP is the first row (${labels[0]})`);
  const heads = await page.locator(`${table} thead th`).evaluateAll((ths) => ths.map((th) => th.firstChild.textContent));
  const order = ['WikiText-2', 'C4', 'PIQA (%)', 'ARC-E (%)', 'ARC-C (%)', 'HellaSwag (%)', 'WinoGrande (%)', 'BoolQ (%)', 'MMLU (%)'];
  const shown = heads.slice(4);
  check(JSON.stringify(shown) === JSON.stringify(order.filter((h) => shown.includes(h))) && shown.length > 0,
        `${where}: columns in the paper's order (${shown.join(', ')})`);
  for (const c of e.cells) {
    const td = page.locator(`${table} tr[data-label="${c.label}"] td[data-column="${c.column}"]`);
    if (await td.count() !== 1) { check(false, `${where}: one cell for ${c.label} / ${c.column}`); continue; }
    const text = (await td.locator('.value').textContent()).trim();
    const value = Number(await td.getAttribute('data-value'));
    const bold = await td.locator('strong').count() === 1;
    const best = c.method !== 'fp' && e.best[c.column] === c.value;
    check(text === c.text && value === c.value && bold === best,
          `${where}: ${c.label} / ${c.column} shows ${c.text} (${c.value})${best ? ' in bold' : ''}; got ${text} (${value})${bold ? ' in bold' : ''}`);
  }
  const bolds = await page.locator(`${table} td.best`).count();
  check(bolds === Object.keys(e.best).length, `${where}: one bold value per column (${bolds})`);
  for (const s of e.skipped) {
    const td = page.locator(`${table} tr[data-label="${s.label}"] td[data-column="${s.column}"].skipped`);
    const title = await td.count() === 1 ? await td.getAttribute('title') : '';
    check(title.startsWith('early abort: wikitext2 ppl'), `${where}: ${s.label} / ${s.column} is skipped with the rule's reason (${title})`);
  }
}

// The charts: a log-scale perplexity chart per perplexity column whose points are the stored
// quantized perplexities, and an accuracy-drop chart whose points match the stored accuracies.
async function checkCharts(page, scope, e, where) {
  for (const column of ['wikitext2 ppl', 'c4 ppl']) {
    const want = e.cells.filter((c) => c.column === column && c.method !== 'fp').map((c) => c.value).sort((x, y) => x - y);
    if (want.length === 0) continue;
    const fig = page.locator(`${scope} figure.svg-chart[data-kind="ppl"][data-column="${column}"]`);
    check(await fig.count() === 1, `${where}: one perplexity chart for ${column}`);
    if (await fig.count() !== 1) continue;
    const got = (await fig.locator('.point').evaluateAll((ps) => ps.map((p) => Number(p.dataset.value)))).sort((x, y) => x - y);
    check(JSON.stringify(got) === JSON.stringify(want), `${where}: ${column} chart points are the stored values (${got} vs ${want})`);
    check(await fig.locator('svg[data-log="true"]').count() === 1, `${where}: ${column} chart has a log axis`);
    const fp = e.cells.find((c) => c.column === column && c.method === 'fp');
    const ref = Number(await fig.locator('.ref').getAttribute('data-value'));
    check(fp && ref === fp.value, `${where}: ${column} chart's FP line is at ${fp && fp.value} (${ref})`);
    const box = await fig.locator('svg').boundingBox();
    check(box && box.width > 300 && box.height > 200, `${where}: ${column} chart is drawn (${JSON.stringify(box)})`);
  }
  // Accuracy drop: for each quantized row, the mean over its accuracy columns of FP - value.
  const acc = e.cells.filter((c) => !c.column.endsWith(' ppl'));
  const fpOf = new Map(acc.filter((c) => c.method === 'fp').map((c) => [c.column, c.value]));
  const drops = new Map();
  for (const c of acc.filter((x) => x.method !== 'fp' && fpOf.has(x.column))) {
    if (!drops.has(c.label)) drops.set(c.label, []);
    drops.get(c.label).push(100 * (fpOf.get(c.column) - c.value));
  }
  const want = Array.from(drops.values()).map((d) => d.reduce((s, x) => s + x, 0) / d.length).sort((x, y) => x - y);
  const fig = page.locator(`${scope} figure.svg-chart[data-kind="acc-drop"]`);
  check(await fig.count() === 1, `${where}: one accuracy-drop chart`);
  const got = (await fig.locator('.point').evaluateAll((ps) => ps.map((p) => Number(p.dataset.value)))).sort((x, y) => x - y);
  check(got.length === want.length && got.every((g, i) => Math.abs(g - want[i]) < 1e-9),
        `${where}: accuracy-drop points are FP minus the stored accuracies (${got.map((x) => x.toFixed(3))} vs ${want.map((x) => x.toFixed(3))})`);
}

try {
  const { page, requests } = await open(args.report, 'report');
  const e = expected.a;
  await checkPaperTable(page, 'body', e, 'report');
  check(await page.locator('table.paper tbody tr').count() === expected.rows, `report: ${expected.rows} rows`);
  await checkCharts(page, 'body', e, 'report');
  // The failed job: its cell and its reason in the list.
  const f = expected.failed;
  const failedCell = page.locator(`table.paper tr[data-label="${f.label}"] td[data-column="${f.column}"].failed`);
  check(await failedCell.count() === 1 && (await failedCell.getAttribute('title')) === f.reason,
        `report: ${f.label} / ${f.column} shows as failed with its error`);
  const problems = await page.locator('table.problems tbody tr').evaluateAll((trs) => trs.map((tr) => [tr.dataset.state, tr.querySelector('.reason').textContent]));
  check(problems.filter(([s]) => s === 'SKIPPED').length === e.skipped.length,
        `report: the ${e.skipped.length} skipped jobs are listed (${problems.length} listed)`);
  check(problems.some(([s, r]) => s === 'FAILED' && r === f.reason), 'report: the failed job is listed with its error');
  // The appendix: what the jobs' stored provenance says.
  const fact = async (name) => (await page.locator(`.appendix table[data-fact="${name}"]`).textContent()) || '';
  check((await fact('code_versions')).includes('v-a'), 'report: the appendix names the code version');
  check((await fact('checkpoints')).includes('digest-qwen3-0.6b'), 'report: the appendix names the checkpoint digest');
  const data = await fact('data_files');
  check(data.includes('c4/data.jsonl') && data.includes('sha-c4'), 'report: the appendix lists data files with their hashes');
  const calibration = await fact('calibrations');
  check(calibration.includes('gptq') && calibration.includes('16'), `report: the appendix gives the calibration (${calibration})`);
  check((await fact('seeds')).includes('7'), 'report: the appendix gives the calibration seed');
  check(requests() === 0, `report: nothing is loaded from the network (${requests()} requests)`);
  // A sweep without sensitivity jobs has no sensitivity chart.
  check(await page.locator('figure.svg-chart[data-kind="sensitivity"]').count() === 0,
        'report: no sensitivity chart without sensitivity results');
  await page.screenshot({ path: path.join(args.out, 'report.png'), fullPage: true });

  // --compare: both sweeps side by side; B - A per matched cell.
  const cmp = await open(args.compare, 'compare');
  const a = new Map(expected.a.cells.map((c) => [c.label + '|' + c.column, c.value]));
  let compared = 0;
  for (const c of expected.b.cells) {
    const key = c.label + '|' + c.column;
    if (!a.has(key)) continue;
    const row = `table.compare tr[data-label="${c.label}"]`;
    const cell = async (side) => Number(await cmp.page.locator(`${row} td[data-column="${c.column}"][data-side="${side}"]`).getAttribute('data-value'));
    const [va, vb, d] = [await cell('a'), await cell('b'), await cell('delta')];
    check(va === a.get(key) && vb === c.value && Math.abs(d - (c.value - a.get(key))) < 1e-12,
          `compare: ${c.label} / ${c.column}: ${a.get(key)} vs ${c.value}, delta ${d}`);
    compared++;
  }
  check(compared >= 6, `compare: the rows of both sweeps are matched (${compared} cells)`);
  check(await cmp.page.locator(`section.sweep[data-sweep="${expected.a.sweep}"] table.paper`).count() === 1 &&
        await cmp.page.locator(`section.sweep[data-sweep="${expected.b.sweep}"] table.paper`).count() === 1,
        'compare: each sweep has its own table below');
  await checkPaperTable(cmp.page, `section.sweep[data-sweep="${expected.b.sweep}"]`, expected.b, 'compare B');
  // B is a tagged rerun (run_tag v-b): its rows name the tag with the model, and its jobs are its
  // own (every one completed by the v-b worker), not A's.
  const bModel = await cmp.page.locator(`section.sweep[data-sweep="${expected.b.sweep}"] table.paper td.model`).first().textContent();
  check(bModel === 'Qwen3-0.6B run=v-b', `compare: sweep B's table names its run tag (${bModel})`);
  const bHeading = await cmp.page.locator(`section.sweep[data-sweep="${expected.b.sweep}"] h2`).first().textContent();
  check(bHeading.endsWith('paper-b run=v-b'), `compare: sweep B's heading names its run tag (${bHeading})`);
  const bIds = await cmp.page.locator(`table.compare td[data-side="b"][data-job-id]`).evaluateAll((tds) => tds.map((td) => td.dataset.jobId));
  const aIds = new Set(await cmp.page.locator(`table.compare td[data-side="a"][data-job-id]`).evaluateAll((tds) => tds.map((td) => td.dataset.jobId)));
  check(bIds.length >= 6 && bIds.every((id) => !aIds.has(id)), `compare: no job of B is one of A's (${bIds})`);
  const versions = await cmp.page.locator('.appendix table[data-fact="code_versions"]').allTextContents();
  check(expected.code_versions.every((v, i) => versions[i] && versions[i].includes(v)),
        `compare: each sweep's appendix names its code version (${versions.length})`);
  check(cmp.requests() === 0, 'compare: nothing is loaded from the network');
  // The results table (render.js, the dashboard's) groups rows by model and run tag, as the CLI
  // does: a tagged rerun names the model again with its tag, and its deltas are to its own FP.
  const grouped = await cmp.page.evaluate(() => {
    const column = { name: 'wikitext2 ppl', task: 'wikitext2', metric: 'ppl', lower_is_better: true, settings: {} };
    const row = (tag, baseline, value) => Object.assign({
      model: '/m/a', model_name: 'a', method: baseline ? 'fp' : 'rtn', wbits: baseline ? 16 : 4, abits: 0,
      group: 128, label: baseline ? 'FP (baseline)' : 'rtn w4 g128', series: 'rtn g128', baseline, recipe: {},
      cells: { 'wikitext2 ppl': { value, stderr: 0, n: 1, job_id: 1, delta: null } } }, tag ? { run_tag: tag } : {});
    const table = { columns: [column], rows: [row('', true, 10), row('', false, 12), row('v2', true, 20), row('v2', false, 21)] };
    const box = window.BitsweepRender.resultsTable(table);
    return Array.from(box.querySelectorAll('tbody tr')).map((tr) => {
      const delta = tr.querySelector('.delta');
      return [tr.querySelector('td.model').textContent, delta ? delta.textContent : ''];
    });
  });
  check(JSON.stringify(grouped) === JSON.stringify([['a', ''], ['', '+2.000'], ['a run=v2', ''], ['', '+1.000']]),
        `results table: a tagged rerun is a model group with its own baseline (${JSON.stringify(grouped)})`);
  // A recipe run under two calibrations in one sweep is labelled with them ("... seed=8"): such
  // a row matches the other sweep's row of the same model, method, bits, group and options when
  // that is unique on both sides, and not when it is ambiguous.
  const matched = await cmp.page.evaluate(() => {
    const row = (label, seed, wbits) => ({ model: 'm', model_name: 'm', method: 'gptq', wbits: wbits || 4, abits: 0,
                                           group: 128, label, recipe: { act_order: 'true', seed: String(seed) }, cells: {} });
    const a = { table: { rows: [row('gptq w4 g128', 7), row('gptq w3 g128', 7, 3)] } };
    const b = { table: { rows: [row('gptq w4 g128 seed=8', 8), row('gptq w3 g128 seed=8', 8, 3),
                                row('gptq w3 g128 seed=9', 9, 3)] } };
    return window.BitsweepReport.matchRows(a, b).map(([x, y]) => [x && x.label, y && y.label]);
  });
  check(JSON.stringify(matched) === JSON.stringify([['gptq w4 g128', 'gptq w4 g128 seed=8'], ['gptq w3 g128', null],
                                                    [null, 'gptq w3 g128 seed=8'], [null, 'gptq w3 g128 seed=9']]),
        `compare: rows labelled by calibration match only when unambiguous (${JSON.stringify(matched)})`);
  await cmp.page.screenshot({ path: path.join(args.out, 'compare.png'), fullPage: true });

  // The sensitivity sweep: one chart of wikitext2, one bar per linear type in the model's order,
  // each at its stored perplexity minus FP's, the tallest the largest, red above FP; the bits
  // chart has no point of its rows.
  const sens = await open(args.sensitivity, 'sensitivity');
  const want = expected.sensitivity;
  const figs = sens.page.locator('figure.svg-chart[data-kind="sensitivity"]');
  check(await figs.count() === 1, `sensitivity: one sensitivity chart (${await figs.count()})`);
  const bars = await figs.first().locator('rect.bar').evaluateAll((rs) => rs.map((r) => ({
    unit: r.dataset.label, delta: Number(r.dataset.value), height: Number(r.getAttribute('height')),
    worse: r.classList.contains('worse') })));
  check(await figs.first().getAttribute('data-column') === want.column, `sensitivity: the chart is of ${want.column}`);
  const order = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  check(JSON.stringify(bars.map((b) => b.unit)) === JSON.stringify(order),
        `sensitivity: one bar per linear type in order (${bars.map((b) => b.unit)})`);
  check(bars.length === order.length && bars.every((b) => Math.abs(b.delta - want.deltas[b.unit]) < 1e-12),
        `sensitivity: each bar is the stored delta to FP (${bars.map((b) => b.delta)} vs ${JSON.stringify(want.deltas)})`);
  const tallest = bars.reduce((x, y) => (y.delta > x.delta ? y : x), bars[0] || {});
  check(tallest.unit === 'down_proj' && bars.every((b) => b.height <= tallest.height && b.height > 0 && b.worse),
        `sensitivity: bar heights follow the deltas, red above FP (${bars.map((b) => b.height.toFixed(1))})`);
  check(await sens.page.locator('figure.svg-chart[data-kind="ppl"] .point').count() === 0,
        'sensitivity: the perplexity-vs-bits chart draws none of the sensitivity rows');
  // Mixed rows name their stored average weight bits beside the recipe; FP does not.
  const avgs = await sens.page.locator('table.paper tbody tr').evaluateAll((trs) => trs.map((tr) => {
    const a = tr.querySelector('.avg-wbits');
    return a ? a.textContent.trim() : '';
  }));
  check(avgs.length === 8 && avgs[0] === '' && avgs.slice(1).every((a) => a === '(14.25 bits avg)'),
        `sensitivity: mixed rows show their average bits (${avgs})`);
  check(await sens.page.locator('table.paper td.best').count() === 0,
        'sensitivity: no sensitivity row is marked best');
  check(sens.requests() === 0, 'sensitivity: nothing is loaded from the network');
  await sens.page.screenshot({ path: path.join(args.out, 'sensitivity.png'), fullPage: true });
} finally {
  await browser.close();
}
console.log(failures.length === 0 ? 'report: all checks passed' : `report: ${failures.length} checks failed`);
process.exit(failures.length === 0 ? 0 : 1);
