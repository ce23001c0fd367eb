// The sensitivity bar chart of charts.js (shared by the dashboard, `results --format html` and
// `bitsweep report`) in
// Debian's headless Chromium: the report file that sensitivity_test.cc wrote from a pivoted
// sensitivity sweep shows one bar per unit, in unit order, carrying the stored delta to FP,
// drawn up (red) for a perplexity increase. Exit status 1 on any failed check.
//
//   node sensitivity.mjs --node-modules DIR --report FILE.html --expected FILE.json --out DIR
//
// FILE.json: {"units": ["layer 0", ...], "deltas": [..], "column": "wikitext2 ppl", "skipped":
// {"unit", "column", "job_id", "reason"}}.
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

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto('file://' + path.resolve(args.report));
  const chartSel = 'figure.svg-chart[data-kind="sensitivity"]';
  await page.waitForSelector(chartSel, { timeout: 20000 });
  const charts = await page.locator(chartSel).evaluateAll((figs) => figs.map((f) => ({
    column: f.dataset.column, recipe: f.dataset.recipe,
    bars: Array.from(f.querySelectorAll('rect.bar')).map((r) => ({
      unit: r.dataset.label, delta: Number(r.dataset.value), height: Number(r.getAttribute('height')),
      y: Number(r.getAttribute('y')), worse: r.classList.contains('worse') })),
  })));
  check(charts.length === 1, `one sensitivity chart (${charts.length})`);
  const c = charts[0] || { bars: [] };
  check(c.column === expected.column, `the chart is of ${expected.column} (${c.column})`);
  check(JSON.stringify(c.bars.map((b) => b.unit)) === JSON.stringify(expected.units),
        `one bar per unit in unit order (${c.bars.map((b) => b.unit)})`);
  check(JSON.stringify(c.bars.map((b) => b.delta)) === JSON.stringify(expected.deltas),
        `each bar carries the stored delta to FP (${c.bars.map((b) => b.delta)})`);
  const big = c.bars.reduce((a, b) => (b.delta > a.delta ? b : a), c.bars[0] || {});
  check(c.bars.every((b) => b.height >= 1 && b.height <= big.height + 1e-9),
        'bar heights follow the deltas (the largest is the tallest)');
  check(c.bars.every((b) => (b.delta > 0) === b.worse),
        'a perplexity increase is red, a decrease green');
  // The per-bits plots leave the sensitivity rows out: only the mixed recipe's point remains.
  const points = await page.locator('figure.plot').evaluateAll((figs) => figs.map((f) => f.dataset.points));
  check(JSON.stringify(points) === JSON.stringify(['1', '1']), `the bits plots have only the non-sensitivity row (${points})`);
  // A job skipped by early abort: its cell reads "skipped", names its job and gives the reason.
  const sk = expected.skipped;
  const skippedCells = await page.locator('table.results td.skipped').evaluateAll((tds) => tds.map((td) => ({
    label: td.closest('tr').dataset.label, column: td.dataset.column, job: Number(td.dataset.jobId),
    title: td.getAttribute('title'), text: td.textContent.trim() })));
  check(skippedCells.length === 1 && skippedCells[0].label.endsWith('L0:w2g64') &&
        skippedCells[0].column === sk.column && skippedCells[0].job === sk.job_id &&
        skippedCells[0].title === sk.reason && skippedCells[0].text === 'skipped',
        `the skipped job's cell reads skipped with the rule's reason (${JSON.stringify(skippedCells)})`);
  // Mixed rows name their average weight bits beside the label; the FP baseline does not.
  const avgs = await page.locator('table.results tbody tr').evaluateAll((trs) => trs.map((tr) => {
    const s = tr.querySelector('.avg-wbits');
    return s ? s.textContent.trim() : '';
  }));
  check(avgs.length === 6 && avgs.filter((a) => a === '(12.50 bits avg)').length === 5 &&
        avgs.includes(''), `mixed rows show their average bits (${avgs})`);
  // The perplexity chart against bits leaves them out as well: one point, the mixed recipe's.
  const svgPoints = await page.locator('figure.svg-chart[data-kind="ppl"] .point').count();
  check(svgPoints === 1, `the SVG perplexity chart has only the non-sensitivity row (${svgPoints})`);
  check(errors.length === 0, `no page errors (${errors})`);
  await page.screenshot({ path: path.join(args.out, 'sensitivity.png'), fullPage: true });
} finally {
  await browser.close();
}
if (failures.length) {
  console.log(`${failures.length} check(s) failed`);
  process.exit(1);
}
