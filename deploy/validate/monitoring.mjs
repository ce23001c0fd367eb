// The alert rules and the Grafana dashboard against what the code exports: the PrometheusRule
// equals deploy/monitoring/bitsweep-alerts.yaml; `promtool check rules` and `promtool test rules`
// on it, with a test expecting each alert to fire; every metric and label name in alerts and in
// the dashboard is one that server/metrics.cc or worker/metrics.cc exports; every dashboard query
// parses (promtool checks it as a recording rule).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import YAML from "yaml";
import { DEPLOY, K8S, ROOT, loadDocs, rel, run } from "./common.mjs";

export const RULES_FILE = path.join(DEPLOY, "monitoring/bitsweep-alerts.yaml");
export const RULES_TEST = path.join(DEPLOY, "monitoring/bitsweep-alerts.test.yaml");
export const DASHBOARD = path.join(DEPLOY, "monitoring/grafana-dashboard.json");

export function exportedMetrics() {
  const series = new Set(["up"]);
  const labels = new Set(["job", "instance", "le", "__name__", "namespace", "pod", "service", "endpoint", "container"]);
  for (const file of ["server/metrics.cc", "worker/metrics.cc"]) {
    const src = fs.readFileSync(path.join(ROOT, file), "utf8");
    for (const m of src.matchAll(/Build(Counter|Gauge|Histogram|Summary)\(\)\s*\.Name\("(bitsweep_[a-z0-9_]+)"\)/g)) {
      const [, type, name] = m;
      series.add(name);
      if (type === "Histogram") for (const s of ["_bucket", "_sum", "_count"]) series.add(name + s);
      if (type === "Summary") for (const s of ["_sum", "_count"]) series.add(name + s);
    }
    for (const m of src.matchAll(/MetricFamily\s+\w+\{\s*"(bitsweep_[a-z0-9_]+)"/g)) series.add(m[1]);
    for (const m of src.matchAll(/\{\s*"([a-z_]+)",\s*[^{}]/g)) labels.add(m[1]);
    for (const m of src.matchAll(/label\.push_back\(\{"([a-z_]+)"/g)) labels.add(m[1]);
  }
  return { series, labels };
}

const PROMQL_WORDS = new Set([
  "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "group",
  "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
  "offset", "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile",
  "absent", "absent_over_time", "vector", "scalar", "time", "clamp_min", "clamp_max", "abs",
  "ceil", "floor", "round", "label_replace", "label_join", "sum_over_time", "avg_over_time",
  "max_over_time", "min_over_time", "count_over_time", "changes", "resets", "sort", "sort_desc",
  "predict_linear", "inf", "nan",
]);

// Metric and label names an expression uses that the code does not export.
export function unknownNames(expr, exported) {
  const bad = [];
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  for (const m of noStrings.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const l of m[1].split(",").map((s) => s.trim()).filter(Boolean)) if (!exported.labels.has(l)) bad.push(`label '${l}'`);
  }
  for (const m of noStrings.matchAll(/\{([^}]*)\}/g)) {
    for (const l of m[1].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) if (!exported.labels.has(l[1])) bad.push(`label '${l[1]}'`);
  }
  const stripped = noStrings
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  let any = false;
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    const after = stripped.slice(m.index + word.length).trimStart();
    if (PROMQL_WORDS.has(word) || after.startsWith("(")) continue;
    if (/^\d/.test(word)) continue;
    any = true;
    if (!exported.series.has(word)) bad.push(`metric '${word}'`);
  }
  if (!any) bad.push("no metric at all");
  return bad;
}

export function checkRuleNames(groups, exported, errors, where) {
  for (const g of groups ?? []) {
    for (const r of g.rules ?? []) {
      for (const b of unknownNames(String(r.expr), exported)) errors.push(`${where}: ${r.alert ?? r.record}: ${b} is not exported by server/metrics.cc or worker/metrics.cc`);
      if (r.alert && !r.labels?.severity) errors.push(`${where}: ${r.alert}: no severity label`);
      if (r.alert && !r.annotations?.summary) errors.push(`${where}: ${r.alert}: no summary annotation`);
    }
  }
}

export function checkPrometheusRuleMatches(objs, rules, errors, where) {
  const pr = objs.filter((o) => o.kind === "PrometheusRule");
  if (pr.length !== 1) { errors.push(`${where}: expected one PrometheusRule, found ${pr.length}`); return; }
  if (JSON.stringify(pr[0].spec?.groups) !== JSON.stringify(rules.groups)) {
    errors.push(`${where}: PrometheusRule/${pr[0].metadata.name} differs from deploy/monitoring/bitsweep-alerts.yaml ` +
                "(run `node deploy/validate/validate.mjs --write-prometheusrule`)");
  }
}

export function checkDashboard(dash, exported, errors) {
  const where = rel(DASHBOARD);
  const exprs = [];
  if (typeof dash !== "object" || !Array.isArray(dash.panels)) { errors.push(`${where}: no panels`); return exprs; }
  const ids = new Set();
  const all = dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  for (const p of all) {
    if (ids.has(p.id)) errors.push(`${where}: panel id ${p.id} used twice`);
    ids.add(p.id);
    if (!p.gridPos) errors.push(`${where}: panel '${p.title}' has no gridPos`);
    if (p.type === "row") continue;
    if (!(p.targets ?? []).length) errors.push(`${where}: panel '${p.title}' has no query`);
    for (const t of p.targets ?? []) {
      if (typeof t.expr !== "string" || !t.expr.trim()) { errors.push(`${where}: panel '${p.title}' ${t.refId}: empty expr`); continue; }
      for (const b of unknownNames(t.expr, exported)) errors.push(`${where}: panel '${p.title}' ${t.refId}: ${b} is not exported by server/metrics.cc or worker/metrics.cc`);
      exprs.push({ title: p.title, refId: t.refId, expr: t.expr });
    }
  }
  return exprs;
}

// promtool parses each dashboard query as a recording rule (Grafana's range variables become
// a fixed range).
export function checkDashboardSyntax(exprs, errors) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bitsweep-dash-"));
  const file = path.join(dir, "dashboard.rules.yaml");
  const rules = exprs.map((e, i) => ({
    record: `dashboard:panel_${i}`,
    expr: e.expr.replace(/\$__(rate_)?interval|\$__range/g, "5m"),
  }));
  fs.writeFileSync(file, YAML.stringify({ groups: [{ name: "dashboard", rules }] }));
  const r = run("promtool", ["check", "rules", file]);
  if (!r.ok) errors.push(`${rel(DASHBOARD)}: a query does not parse:\n${r.out}`);
  fs.rmSync(dir, { recursive: true, force: true });
}

// The rules file (already loaded as `rules`) and the dashboard; returns the alerts' names and
// the dashboard (null when it does not parse).
export function checkMonitoring(rules, exported, errors) {
  checkRuleNames(rules.groups, exported, errors, rel(RULES_FILE));
  const check = run("promtool", ["check", "rules", RULES_FILE]);
  if (!check.ok) errors.push(`promtool check rules:\n${check.out}`);
  const test = run("promtool", ["test", "rules", path.basename(RULES_TEST)], { cwd: path.dirname(RULES_TEST) });
  if (!test.ok) errors.push(`promtool test rules:\n${test.out}`);
  const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => r.alert);
  const testText = fs.readFileSync(RULES_TEST, "utf8");
  for (const a of alerts) {
    if (!new RegExp(`alertname: ${a}\\s*\\n\\s*exp_alerts:`).test(testText)) errors.push(`${rel(RULES_TEST)}: no test expects ${a} to fire`);
  }
  let dash = null;
  try { dash = JSON.parse(fs.readFileSync(DASHBOARD, "utf8")); } catch (e) { errors.push(`${rel(DASHBOARD)}: ${e.message}`); }
  if (dash) {
    const exprs = checkDashboard(dash, exported, errors);
    if (exprs.length) checkDashboardSyntax(exprs, errors);
  }
  return { alerts, dash };
}

export function writePrometheusRule() {
  const file = path.join(K8S, "base/monitoring.yaml");
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  const rules = loadDocs(RULES_FILE)[0];
  const doc = docs.find((d) => d.toJS()?.kind === "PrometheusRule");
  doc.setIn(["spec", "groups"], doc.createNode(rules.groups));
  fs.writeFileSync(file, docs.map((d) => d.toString({ lineWidth: 0, blockQuote: "literal" })).join(""));
  console.log(`wrote the groups of ${rel(RULES_FILE)} into ${rel(file)}`);
}
