// What every module of deploy/validate shares: the tree's paths, YAML loading, running a tool,
// and the names of the objects that carry pods.
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, "../..");
export const DEPLOY = path.join(ROOT, "deploy");
export const K8S = path.join(DEPLOY, "k8s");
export const RENDERS = ["base", "postgres", "overlays/cpu", "overlays/gpu", "overlays/production"];
// Renders that are complete deployments (the base and postgres are parts of them).
export const COMPLETE = ["overlays/cpu", "overlays/gpu", "overlays/production"];
export const SHARED_MOUNT = "/shared";

export const rel = (p) => path.relative(ROOT, p);
export const clone = (o) => JSON.parse(JSON.stringify(o));
export const id = (o) => `${o?.kind}/${o?.metadata?.name}`;

export const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]);

export function loadDocs(file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  const out = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${rel(file)}: ${d.errors[0].message}`);
    const v = d.toJS();
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...opts });
  if (r.error) return { ok: false, out: `${cmd}: ${r.error.message}` };
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}
