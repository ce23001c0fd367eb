// Unknown-field detection ("strict" field validation, as `kubectl apply` does by default since
// Kubernetes 1.27): the JSON schemas that kubernetes-models compiles accept unknown properties,
// so a misspelt field (`imagePullPolicyy`, `readinesProbe`) would pass them and be silently
// dropped by a real API server. The same packages ship TypeScript declarations that list every
// field of every type; this module walks an object against them with the TypeScript parser.
// Only field names are checked here (types, formats and required fields are the schemas' job).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const NODE_MODULES = path.join(path.dirname(fileURLToPath(import.meta.url)), "node_modules");
const files = new Map();

function parse(file) {
  if (files.has(file)) return files.get(file);
  const src = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const info = { file, decls: new Map(), imports: new Map(), aliases: new Map() };
  for (const st of src.statements) {
    if (ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st)) info.decls.set(st.name.text, st);
    if (ts.isImportDeclaration(st) && st.importClause?.namedBindings && ts.isNamedImports(st.importClause.namedBindings)) {
      const spec = st.moduleSpecifier.text;
      for (const el of st.importClause.namedBindings.elements) {
        info.imports.set(el.name.text, { spec, name: (el.propertyName ?? el.name).text });
      }
    }
    if (ts.isExportDeclaration(st) && st.exportClause && ts.isNamedExports(st.exportClause) && !st.moduleSpecifier) {
      for (const el of st.exportClause.elements) info.aliases.set(el.name.text, (el.propertyName ?? el.name).text);
    }
  }
  files.set(file, info);
  return info;
}

function resolveModule(fromFile, spec) {
  const base = spec.startsWith(".") ? path.resolve(path.dirname(fromFile), spec) : path.join(NODE_MODULES, spec);
  for (const f of [`${base}.d.ts`, path.join(base, "index.d.ts")]) if (fs.existsSync(f)) return f;
  return null;
}

// The declaration (interface or type alias) `name` means in `file`, with the file it is in.
function lookup(file, name, depth = 0) {
  if (depth > 20) return null;
  const info = parse(file);
  const local = info.aliases.get(name) ?? name;
  if (info.decls.has(local)) return { file, decl: info.decls.get(local) };
  const imp = info.imports.get(local);
  if (!imp) return null;
  const target = resolveModule(file, imp.spec);
  return target ? lookup(target, imp.name, depth + 1) : null;
}

const propName = (n) => (ts.isStringLiteral(n) || ts.isIdentifier(n) ? n.text : null);

// Members of an interface (with what it extends) or a type literal: {fields, index}.
function members(file, node) {
  const fields = new Map();
  let index = null;
  let open = false;
  for (const m of node.members) {
    if (ts.isPropertySignature(m) && propName(m.name) !== null) fields.set(propName(m.name), { file, type: m.type });
    if (ts.isIndexSignatureDeclaration(m)) index = { file, type: m.type };
  }
  for (const h of node.heritageClauses ?? []) {
    for (const t of h.types) {
      const found = ts.isIdentifier(t.expression) ? lookup(file, t.expression.text) : null;
      if (!found || !ts.isInterfaceDeclaration(found.decl)) { open = true; continue; }
      const inherited = members(found.file, found.decl);
      for (const [k, v] of inherited.fields) if (!fields.has(k)) fields.set(k, v);
      index ??= inherited.index;
      open ||= inherited.open;
    }
  }
  return { fields, index, open };
}

// Unknown-field errors of `value` against `type` (a TypeNode in `file`); [] when it fits.
function check(value, file, type, where, depth = 0) {
  if (!type || depth > 60 || value === null || value === undefined) return [];
  switch (type.kind) {
    case ts.SyntaxKind.ParenthesizedType:
      return check(value, file, type.type, where, depth + 1);
    case ts.SyntaxKind.ArrayType:
      return Array.isArray(value) ? value.flatMap((v, i) => check(v, file, type.elementType, `${where}/${i}`, depth + 1)) : [];
    case ts.SyntaxKind.UnionType: {
      let first = null;
      for (const t of type.types) {
        const errs = check(value, file, t, where, depth + 1);
        if (!errs.length) return [];
        first ??= errs;
      }
      return first ?? [];
    }
    case ts.SyntaxKind.TypeLiteral:
      return checkObject(value, file, type, where, depth);
    case ts.SyntaxKind.TypeReference: {
      const name = ts.isIdentifier(type.typeName) ? type.typeName.text : null;
      if (name === "Array" && type.typeArguments?.length === 1) {
        return Array.isArray(value) ? value.flatMap((v, i) => check(v, file, type.typeArguments[0], `${where}/${i}`, depth + 1)) : [];
      }
      const found = name ? lookup(file, name) : null;
      if (!found) return [];
      if (ts.isTypeAliasDeclaration(found.decl)) return check(value, found.file, found.decl.type, where, depth + 1);
      return checkObject(value, found.file, found.decl, where, depth);
    }
    default:
      return [];  // keywords, literals: the schemas check them
  }
}

function checkObject(value, file, node, where, depth) {
  if (typeof value !== "object" || Array.isArray(value)) return [];
  const { fields, index, open } = members(file, node);
  const errs = [];
  for (const [k, v] of Object.entries(value)) {
    const f = fields.get(k);
    if (f) errs.push(...check(v, f.file, f.type, `${where}/${k}`, depth + 1));
    else if (index) errs.push(...check(v, index.file, index.type, `${where}/${k}`, depth + 1));
    else if (!open) errs.push(`${where}/${k}: unknown field '${k}'`);
  }
  return errs;
}

// Unknown fields of a whole object; null when no declaration is known for its kind.
export function unknownFields(obj) {
  const [group, version] = String(obj.apiVersion).includes("/") ? String(obj.apiVersion).split("/") : ["", obj.apiVersion];
  const spec = group === "monitoring.coreos.com"
    ? `@kubernetes-models/prometheus-operator/${group}/${version}/${obj.kind}`
    : `kubernetes-models/${group ? `${group}/` : ""}${version}/${obj.kind}`;
  const file = resolveModule(NODE_MODULES, spec);
  if (!file) return null;
  const found = lookup(file, `I${obj.kind}`);
  if (!found) return null;
  return checkObject(obj, found.file, found.decl, "", 0);
}
