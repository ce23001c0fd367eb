// The kustomize subset deploy/k8s uses (resources, namespace, images, replicas, inline JSON 6902
// patches), rendered here so that validation needs no cluster tools; any other kustomization key
// is an error, never silently ignored. Where a real kustomize is on the PATH (`kubectl
// kustomize`), compareWithKustomize compares a render with its output.
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import jsonpatch from "fast-json-patch";
import { WORKLOADS, clone, id, loadDocs, rel, run } from "./common.mjs";

const KUSTOMIZATION_KEYS = new Set([
  "apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches",
]);
const CLUSTER_SCOPED = new Set([
  "Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
  "CustomResourceDefinition", "PriorityClass",
]);

// An image reference's name and tag (null when it has none).
export function splitImage(image) {
  const at = image.indexOf("@");
  const base = at >= 0 ? image.slice(0, at) : image;
  const colon = base.lastIndexOf(":");
  if (colon > base.lastIndexOf("/")) return { name: base.slice(0, colon), tag: base.slice(colon + 1) };
  return { name: base, tag: null };
}

function podSpecs(obj) {
  if (WORKLOADS.has(obj.kind)) return [obj.spec?.template?.spec].filter(Boolean);
  if (obj.kind === "Pod") return [obj.spec].filter(Boolean);
  return [];
}

function containersOf(obj) {
  return podSpecs(obj).flatMap((s) => [...(s.initContainers ?? []), ...(s.containers ?? [])]);
}

// Renders the kustomization in `dir` (absolute) to a list of objects.
export function render(dir) {
  const file = path.join(dir, "kustomization.yaml");
  const where = rel(file);
  const [k] = loadDocs(file);
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_KEYS.has(key)) {
      throw new Error(`${where}: '${key}' is not supported by deploy/validate's renderer ` +
                      `(supported: ${[...KUSTOMIZATION_KEYS].join(", ")})`);
    }
  }
  if (k.kind !== "Kustomization") throw new Error(`${where}: kind must be Kustomization`);
  let objs = [];
  for (const r of k.resources ?? []) {
    const p = path.resolve(dir, r);
    if (!fs.existsSync(p)) throw new Error(`${where}: resource '${r}' does not exist`);
    objs.push(...(fs.statSync(p).isDirectory() ? render(p) : loadDocs(p)));
  }
  const seen = new Set();
  for (const o of objs) {
    const key = `${o.apiVersion} ${id(o)}`;
    if (seen.has(key)) throw new Error(`${where}: ${id(o)} is defined twice`);
    seen.add(key);
  }
  for (const [i, p] of (k.patches ?? []).entries()) {
    const t = p.target ?? {};
    for (const key of Object.keys(p)) {
      if (key !== "target" && key !== "patch") {
        throw new Error(`${where}: patches[${i}].${key} is not supported (inline JSON 6902 'patch' with a 'target' only)`);
      }
    }
    for (const key of Object.keys(t)) {
      if (key !== "kind" && key !== "name") throw new Error(`${where}: patches[${i}].target.${key} is not supported`);
    }
    const ops = YAML.parse(p.patch ?? "");
    if (!Array.isArray(ops)) throw new Error(`${where}: patches[${i}].patch is not a JSON 6902 operation list`);
    const matched = objs.filter((o) => (!t.kind || o.kind === t.kind) && (!t.name || o.metadata?.name === t.name));
    if (!matched.length) throw new Error(`${where}: patches[${i}] matches no object (${t.kind}/${t.name})`);
    objs = objs.map((o) => {
      if (!matched.includes(o)) return o;
      try {
        return jsonpatch.applyPatch(clone(o), ops, true).newDocument;
      } catch (e) {
        throw new Error(`${where}: patches[${i}] on ${id(o)}: ${e.message.split("\n")[0]}`);
      }
    });
  }
  if (k.namespace) {
    for (const o of objs) if (!CLUSTER_SCOPED.has(o.kind)) (o.metadata ??= {}).namespace = k.namespace;
  }
  for (const img of k.images ?? []) {
    let used = false;
    for (const c of objs.flatMap(containersOf)) {
      const cur = splitImage(c.image);
      if (cur.name !== img.name) continue;
      used = true;
      const tag = img.newTag ?? cur.tag;
      c.image = (img.newName ?? cur.name) + (tag ? `:${tag}` : "");
    }
    if (!used) throw new Error(`${where}: images entry '${img.name}' matches no container`);
  }
  for (const r of k.replicas ?? []) {
    const w = objs.filter((o) => WORKLOADS.has(o.kind) && o.metadata?.name === r.name);
    if (!w.length) throw new Error(`${where}: replicas entry '${r.name}' matches no workload`);
    for (const o of w) o.spec.replicas = r.count;
  }
  return objs;
}

// A kustomize of version 4 or later inside kubectl (older ones lack inline `patches`); a
// standalone `kustomize` is not looked for.
export function kustomizeAvailable() {
  const r = run("kubectl", ["version", "--client", "-o", "json"]);
  if (!r.ok) return false;
  try {
    const v = JSON.parse(r.out.slice(r.out.indexOf("{"))).kustomizeVersion ?? "";
    return Number(v.replace(/^v/, "").split(".")[0]) >= 4;
  } catch {
    return false;
  }
}

function canonical(objs) {
  return objs.map((o) => JSON.stringify(o, Object.keys(flattenKeys(o)).sort())).sort();
}
function flattenKeys(o, acc = {}) {
  if (o && typeof o === "object") for (const [k, v] of Object.entries(o)) { acc[k] = 1; flattenKeys(v, acc); }
  return acc;
}

// Renders `dir` with `kubectl kustomize` and reports where it disagrees with `objs`, our render.
export function compareWithKustomize(r, dir, objs, errors) {
  const k = run("kubectl", ["kustomize", dir]);
  if (!k.ok) errors.push(`${r}: kubectl kustomize failed:\n${k.out}`);
  else {
    const theirs = YAML.parseAllDocuments(k.out).map((d) => d.toJS()).filter(Boolean);
    const a = canonical(objs), b = canonical(theirs);
    if (JSON.stringify(a) !== JSON.stringify(b)) errors.push(`${r}: the renderer and kubectl kustomize disagree`);
  }
}
