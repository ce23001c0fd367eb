// Drives the bitsweep dashboard and the HTML report in Debian's headless Chromium and checks
// what a person would see. Run by dashboard_test.cc, which prepared a real coordinator with real
// results; every check failure is printed and makes the exit status 1.
//
//   node dashboard.mjs --node-modules DIR --url http://127.0.0.1:PORT/ --token T --sweep N
//        --canceled M --job J --expected FILE.json --report FILE.html --out DIR
//   node dashboard.mjs --live 1 --node-modules DIR --url ... --token T --sweep N --out DIR
//        (started before the worker: the open page must follow the sweep to its end)
//
// FILE.json: {"cells": [{"label", "column", "value", "text"}], "columns": [...]}, the numbers
// the coordinator returned over gRPC (QueryResults), with the text the table must show.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const require = createRequire(path.join(args['node-modules'], 'noop.js'));
const { chromium } = require('playwright-core');
const expected = args.expected ? JSON.parse(fs.readFileSync(args.expected, 'utf8')) : null;
fs.mkdirSync(args.out, { recursive: true });

const failures = [];
function check(ok, what) {
  console.log((ok ? 'ok   ' : 'FAIL ') + what);
  if (!ok) failures.push(what);
}

async function shot(page, name) {
  const file = path.join(args.out, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log('screenshot ' + file);
}

// Every expected cell shows the stored number (as the CLI formats it) and carries it exactly.
async function checkCells(page, where) {
  for (const c of expected.cells) {
    const sel = `table.results tr[data-label="${c.label}"] td[data-column="${c.column}"]`;
    const td = page.locator(sel);
    const n = await td.count();
    if (n !== 1) { check(false, `${where}: one cell for ${c.label} / ${c.column} (found ${n})`); continue; }
    const text = (await td.locator('.value').textContent()).trim();
    const value = Number(await td.getAttribute('data-value'));
    check(text === c.text && value === c.value,
          `${where}: ${c.label} / ${c.column} shows ${c.text} (${c.value}); got ${text} (${value})`);
  }
  const baseline = page.locator('table.results tr.baseline').first();
  check(await baseline.count() === 1 && (await baseline.getAttribute('data-label')) === 'FP (baseline)',
        `${where}: the FP baseline is a row`);
  const first = await page.locator('table.results tbody tr').first().getAttribute('data-label');
  check(first === 'FP (baseline)', `${where}: the FP baseline is on top (first row ${first})`);
  const worse = await page.locator('table.results td.worse').count();
  check(worse > 0, `${where}: quantized cells worse than the baseline are colour-coded (${worse})`);
}

// Each plot is a uPlot canvas with drawn pixels and one legend entry per line.
async function checkPlots(page, where) {
  const plots = page.locator('figure.plot');
  const n = await plots.count();
  check(n >= expected.columns.length, `${where}: one plot per metric (${n} for ${expected.columns.length} columns)`);
  for (let i = 0; i < n; i++) {
    const stats = await plots.nth(i).evaluate((fig) => {
      const canvas = fig.querySelector('canvas');
      if (!canvas) return null;
      const ctx = canvas.getContext('2d');
      const img = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let drawn = 0;
      for (let p = 3; p < img.length; p += 4) if (img[p] !== 0) drawn++;
      return { w: canvas.width, h: canvas.height, drawn,
               series: fig.querySelectorAll('.u-legend .u-series').length,
               column: fig.dataset.column, points: Number(fig.dataset.points) };
    });
    check(stats && stats.w > 100 && stats.h > 100 && stats.drawn > 500,
          `${where}: plot ${i} (${stats && stats.column}) has a drawn canvas (${JSON.stringify(stats)})`);
    // one line per method series and the FP line (uPlot may list the x series too)
    check(stats && stats.series >= expected.series + 1,
          `${where}: plot ${i} has a line per method and the FP baseline (${stats && stats.series} legend entries)`);
  }
}

// The plots' axes and lines: ticks at exactly the bit-widths present, an accuracy axis of
// 0-100 %, each series' points at x positions of their own (overlapping values stay visible),
// and the FP line across the whole x range.
async function checkPlotAxes(page, where) {
  const plots = await page.locator('figure.plot').evaluateAll((figs) => figs.map((fig) => {
    const u = fig.uplot;
    if (!u) return null;
    const xs = u.data[0];
    const quant = u.series.slice(1).map((s, i) => [s.label, u.data[i + 1]]).filter(([l]) => l !== 'FP');
    const fp = u.series.findIndex((s) => s.label === 'FP');
    return { column: fig.dataset.column, bits: fig.dataset.bits, xmin: u.scales.x.min, xmax: u.scales.x.max,
             ymin: u.scales.y.min, ymax: u.scales.y.max,
             splits: u.axes[0]._splits, quantXs: quant.map(([, d]) => xs.filter((x, i) => d[i] !== null)),
             fpEnds: fp > 0 ? [u.data[fp][0], u.data[fp][xs.length - 1]] : null };
  }));
  for (const p of plots) {
    if (!p) { check(false, `${where}: a plot has its uPlot`); continue; }
    check(p.bits === expected.bits.join(',') && p.xmin < expected.bits[0] &&
          p.xmax > expected.bits[expected.bits.length - 1],
          `${where}: ${p.column}: the x-axis covers the bits present (${p.bits}; ${p.xmin}..${p.xmax})`);
    check(JSON.stringify(p.splits) === JSON.stringify(expected.bits),
          `${where}: ${p.column}: ticks at exactly the bits present (${JSON.stringify(p.splits)})`);
    check(p.fpEnds !== null && p.fpEnds[0] !== null && p.fpEnds[1] !== null,
          `${where}: ${p.column}: the FP line runs across the whole axis (${JSON.stringify(p.fpEnds)})`);
    const all = p.quantXs.flat();
    check(p.quantXs.length >= 2 && new Set(all).size === all.length,
          `${where}: ${p.column}: no two series' points share an x position (${JSON.stringify(p.quantXs)})`);
    if (p.column.endsWith(' acc')) {
      check(p.ymin === 0 && p.ymax === 100, `${where}: ${p.column}: the accuracy axis runs 0-100 % (${p.ymin}..${p.ymax})`);
    }
  }
}

// The study's SVG charts (charts.js, shared with `bitsweep report`): a log-scale perplexity chart
// whose points are the stored quantized perplexities, and an accuracy-drop chart.
async function checkSvgCharts(page, where) {
  for (const column of expected.columns.filter((c) => c.includes(' ppl'))) {
    const fig = page.locator(`figure.svg-chart[data-kind="ppl"][data-column="${column}"]`);
    check(await fig.count() === 1, `${where}: a log-scale SVG perplexity chart for ${column}`);
    if (await fig.count() !== 1) continue;
    const want = expected.cells.filter((c) => c.column === column && c.label !== 'FP (baseline)')
      .map((c) => c.value).sort((x, y) => x - y);
    const got = (await fig.locator('.point').evaluateAll((ps) => ps.map((p) => Number(p.dataset.value))))
      .sort((x, y) => x - y);
    check(JSON.stringify(got) === JSON.stringify(want) && await fig.locator('svg[data-log="true"]').count() === 1,
          `${where}: its points are the stored perplexities on a log axis (${got})`);
  }
  check(await page.locator('figure.svg-chart[data-kind="acc-drop"]').count() === 1,
        `${where}: an SVG accuracy-drop chart`);
}

// Filters, sorting by a header and the CSV download of the rows shown.
async function checkTableControls(page, where) {
  const rows = () => page.locator('table.results tbody tr');
  check(await rows().count() === expected.rows, `${where}: every row is shown unfiltered (${await rows().count()})`);
  await page.fill('input.results-filter-text', 'w3');
  const filtered = await rows().evaluateAll((trs) => trs.map((tr) => tr.dataset.label));
  check(filtered.length === 1 && filtered[0] === 'rtn w3 g64', `${where}: the text filter keeps matching rows (${filtered})`);
  await page.fill('input.results-filter-text', '');
  await page.selectOption('select.results-filter-method', 'fp');
  check(await rows().count() === 1, `${where}: the method filter keeps that method's rows`);
  await page.selectOption('select.results-filter-method', '');
  const column = expected.columns[1];
  const values = async () => (await page.locator(`table.results tbody td[data-column="${column}"]`)
    .evaluateAll((tds) => tds.map((td) => td.dataset.value))).filter((v) => v !== undefined).map(Number);
  const header = page.locator(`table.results th[data-sort-key="column:${column}"]`);
  await header.click();
  const up = await values();
  check(up.length > 1 && up.every((v, i) => i === 0 || up[i - 1] <= v), `${where}: a header click sorts ascending (${up})`);
  await page.locator(`table.results th[data-sort-key="column:${column}"]`).click();
  const down = await values();
  check(down.length > 1 && down.every((v, i) => i === 0 || down[i - 1] >= v), `${where}: a second click sorts descending (${down})`);
  await page.locator(`table.results th[data-sort-key="column:${column}"]`).click();
  const first = await rows().first().getAttribute('data-label');
  check(first === 'FP (baseline)', `${where}: a third click restores the table's order (${first})`);
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 10000 }),
                                        page.click('button.results-csv')]);
  const csv = fs.readFileSync(await download.path(), 'utf8');
  const lines = csv.trim().split('\n');
  check(lines[0].startsWith('model,method,wbits,abits,group,quantization,') && lines.length === expected.rows + 1,
        `${where}: the CSV download holds the header and every row shown (${lines.length} lines: ${lines[0]})`);
}

const browser = await chromium.launch({ executablePath: args.chromium || '/usr/bin/chromium',
                                        headless: true, args: ['--no-sandbox'] });

async function login(page, base) {
  await page.goto(base + '/');
  await page.waitForSelector('form.token input', { timeout: 15000 });
  await page.fill('form.token input', args.token);
  await page.click('form.token button');
  await page.waitForSelector('table#sweeps', { timeout: 15000 });
}

// --live 1: opened before any worker runs, the sweep's page must follow it to the end by
// itself (polling), without a reload.
if (args.live) {
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const base = args.url.replace(/\/$/, '');
    await login(page, base);
    await page.goto(`${base}/#/sweep/${args.sweep}`);
    await page.waitForSelector('#sweep-status', { timeout: 15000 });
    const done = async () => (await page.locator('#sweep-top td.num').first().textContent()).trim();
    const before = await done();
    await shot(page, 'live-0-before.png');
    console.log('live: watching sweep ' + args.sweep + ' at ' + before);
    await page.waitForFunction(() => {
      const s = document.getElementById('sweep-status');
      return s && s.textContent === 'finished';
    }, null, { timeout: 600000, polling: 200 });
    const after = await done();
    await shot(page, 'live-1-finished.png');
    const [n, total] = after.split('/').map(Number);
    check(before.startsWith('0/'), `live: the page first showed the sweep not started (${before})`);
    check(n === total && total > 0, `live: the page followed the sweep to ${after} without a reload`);
    check(await page.locator('table.results tbody tr').count() > 0, 'live: the results table appeared');
  } finally {
    await browser.close();
  }
  console.log(failures.length === 0 ? 'live: all checks passed' : `live: ${failures.length} checks failed`);
  process.exit(failures.length === 0 ? 0 : 1);
}

try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  page.on('pageerror', (e) => check(false, 'no script error on the page: ' + e.message));
  const base = args.url.replace(/\/$/, '');

  // The API needs the token: the page asks for it once and keeps it for the session.
  await page.goto(base + '/');
  await page.waitForSelector('form.token input', { timeout: 15000 });
  check(await page.locator('table#sweeps').count() === 0, 'nothing is shown before the token is given');
  await shot(page, '0-token.png');
  await page.fill('form.token input', args.token);
  await page.click('form.token button');
  await page.waitForSelector('table#sweeps', { timeout: 15000 });
  const status = async (id) => (await page.locator(`#sweeps tr[data-sweep-id="${id}"] .sweep-status`).textContent()).trim();
  check(await status(args.sweep) === 'finished', `sweep ${args.sweep} shows as finished`);
  check(await status(args.canceled) === 'canceled', `sweep ${args.canceled} shows as canceled`);
  await shot(page, '1-sweeps.png');

  await page.goto(`${base}/#/sweep/${args.sweep}`);
  await page.waitForSelector('table.results', { timeout: 15000 });
  await page.waitForSelector('figure.plot canvas', { timeout: 15000 });
  await checkCells(page, 'dashboard');
  await checkPlots(page, 'dashboard');
  await checkPlotAxes(page, 'dashboard');
  await checkSvgCharts(page, 'dashboard');
  await checkTableControls(page, 'dashboard');
  const jobs = await page.locator('table#jobs tbody tr').count();
  check(jobs === expected.jobs, `dashboard: the sweep lists its ${expected.jobs} jobs (${jobs})`);
  await shot(page, '2-sweep-results.png');

  await page.goto(`${base}/#/sweep/${args.canceled}`);
  await page.waitForSelector('#sweep-status', { timeout: 15000 });
  check((await page.locator('#sweep-status').textContent()).trim() === 'canceled',
        `the page of sweep ${args.canceled} shows it canceled`);
  check(await page.locator('table#jobs .badge.CANCELED').count() >= 1, 'its canceled job shows as canceled');
  await shot(page, '3-canceled-sweep.png');

  await page.goto(`${base}/#/job/${args.job}`);
  await page.waitForSelector('table#events', { timeout: 15000 });
  const events = await page.locator('table#events tbody tr').allTextContents();
  check(events.length >= 3, `job ${args.job}: its events are listed (${events.length})`);
  check(events.some((e) => e.includes('LEASE')) && events.some((e) => e.includes('SUCCEEDED')),
        `job ${args.job}: lease and success events are shown`);
  check(events.some((e) => e.includes('dash-worker')), `job ${args.job}: the worker is named in its events`);
  const provenance = await page.locator('#provenance').textContent();
  check(provenance.includes('code_version'), `job ${args.job}: its provenance is shown`);
  check(/"sha256": "[0-9a-f]{64}"/.test(provenance), `job ${args.job}: its provenance hashes the data file it read`);
  const facts = await page.locator('dl.facts').textContent();
  check(facts.includes('ran') && facts.includes('waited'), `job ${args.job}: its timings are shown`);
  await shot(page, '4-job.png');

  // The self-contained report: no network at all, the same table and plots.
  const offline = await browser.newContext({ offline: true, viewport: { width: 1400, height: 900 } });
  const report = await offline.newPage();
  report.on('pageerror', (e) => check(false, 'no script error in the report: ' + e.message));
  let requests = 0;
  report.on('request', (r) => { if (!r.url().startsWith('file:')) requests++; });
  await report.goto('file://' + path.resolve(args.report));
  await report.waitForSelector('figure.plot canvas', { timeout: 15000 });
  await checkCells(report, 'report');
  await checkPlots(report, 'report');
  await checkPlotAxes(report, 'report');
  await checkSvgCharts(report, 'report');
  check(requests === 0, `the report loads nothing from the network (${requests} requests)`);
  await shot(report, '5-report.png');
} finally {
  await browser.close();
}
console.log(failures.length === 0 ? 'dashboard: all checks passed' : `dashboard: ${failures.length} checks failed`);
process.exit(failures.length === 0 ? 0 : 1);
