// Dockerfiles: syntax (dockerfile-utils), non-root USER, ENTRYPOINT the real binaries, CMake
// targets and output paths that exist in the tree; where the binaries are built, every shared
// library they load comes from a package the image installs (dpkg, apt-cache, ldd).
import fs from "node:fs";
import path from "node:path";
import { validate as lintDockerfile } from "dockerfile-utils";
import { DEPLOY, ROOT, rel, run } from "./common.mjs";

function executables() {
  const out = new Map();  // target -> folder
  for (const dir of ["server", "worker", "cli", "tools"]) {
    const f = path.join(ROOT, dir, "CMakeLists.txt");
    if (!fs.existsSync(f)) continue;
    for (const m of fs.readFileSync(f, "utf8").matchAll(/add_executable\(([\w-]+)/g)) out.set(m[1], dir);
  }
  return out;
}

export function checkDockerfile(name, text, errors) {
  const where = `deploy/docker/${name}`;
  // Syntax: instructions, their flags and arguments (dockerfile-utils, the linter of VS Code's
  // Docker extension); warnings count as problems too.
  for (const d of lintDockerfile(text)) errors.push(`${where}:${d.range.start.line + 1}: ${d.message}`);
  const exes = executables();
  const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const stages = [];
  for (const l of lines) {
    const [instr] = l.split(/\s+/);
    if (instr.toUpperCase() === "FROM") stages.push([]);
    if (stages.length) stages.at(-1).push(l);
  }
  if (!stages.length) { errors.push(`${where}: no FROM`); return; }
  const final = stages.at(-1);
  const user = final.filter((l) => /^USER\s/i.test(l)).at(-1);
  if (!user || /^USER\s+(0|root)\b/i.test(user)) errors.push(`${where}: the final stage must switch to a non-root USER`);
  const entry = final.filter((l) => /^ENTRYPOINT\s/i.test(l)).at(-1);
  let entryBin = null;
  try { entryBin = JSON.parse(entry.replace(/^ENTRYPOINT\s+/i, ""))[0]; } catch { /* reported below */ }
  const expected = name.startsWith("coordinator") ? "bitsweep-coordinator" : "bitsweep-worker";
  if (entryBin !== `/usr/local/bin/${expected}`) errors.push(`${where}: ENTRYPOINT must be ["/usr/local/bin/${expected}"] (exec form)`);
  for (const l of lines) {
    const t = l.match(/--target\s+([\w\- ]+?)(?:\s+-j|\s*&&|$)/);
    if (t) for (const target of t[1].trim().split(/\s+/)) if (!exes.has(target)) errors.push(`${where}: CMake target '${target}' does not exist`);
    for (const m of l.matchAll(/\/src\/build\/([\w-]+)\/([\w-]+)/g)) {
      if (exes.get(m[2]) !== m[1]) errors.push(`${where}: build/${m[1]}/${m[2]} is not where CMake puts '${m[2]}'`);
    }
  }
  if (!final.some((l) => l.includes(`/usr/local/bin/${expected}`) && /^COPY\s/i.test(l))) errors.push(`${where}: the final stage does not copy ${expected}`);
}

// Every deploy/docker/*.Dockerfile.
export function checkDockerfiles(errors) {
  for (const f of fs.readdirSync(path.join(DEPLOY, "docker")).filter((f) => f.endsWith(".Dockerfile"))) {
    checkDockerfile(f, fs.readFileSync(path.join(DEPLOY, "docker", f), "utf8"), errors);
  }
}

// ---- runtime packages of the images -------------------------------------------------------------

// Which Debian package ships each (x86_64) shared library installed here (dpkg's file lists).
function libraryPackages() {
  const dir = "/var/lib/dpkg/info";
  const out = new Map();
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".list"))) {
    const pkg = f.slice(0, -5).split(":")[0];
    for (const line of fs.readFileSync(path.join(dir, f), "utf8").split("\n")) {
      if (!/^\/(usr\/)?lib\//.test(line) || !/\.so(\.|$)/.test(line) || /\/(lib32|libx32)\/|i386/.test(line)) continue;
      const name = path.basename(line);
      if (!out.has(name) || line.includes("/x86_64-linux-gnu/")) out.set(name, pkg);
    }
  }
  return out;
}

// The packages apt would install for `pkgs` (and what debian:12 has already: the closure of apt).
function aptClosure(pkgs) {
  const r = run("apt-cache", ["depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
    "--no-breaks", "--no-replaces", "--no-enhances", "apt", ...pkgs]);
  if (!r.ok) return null;
  return new Set(r.out.split("\n").filter((l) => l && !l.startsWith(" ")).map((l) => l.replace(/:any$/, "")));
}

// With the binaries built (as scripts/test builds them) and dpkg/apt available: every shared
// library the image's binaries load belongs to a package its final stage installs (or to one
// they depend on, or to debian:12 itself). The CUDA image brings its own libtorch: not checked.
const RUNTIME_BINARIES = {
  "coordinator.Dockerfile": ["server/bitsweep-coordinator"],
  "worker.Dockerfile": ["worker/bitsweep-worker", "cli/bitsweep"],
};
export function checkRuntimePackages(errors, notes, texts = {}) {
  const build = process.env.BITSWEEP_BUILD_DIR || path.join(ROOT, "build");
  let libs = null;
  for (const [docker, bins] of Object.entries(RUNTIME_BINARIES)) {
    const where = `deploy/docker/${docker}`;
    const present = bins.filter((b) => fs.existsSync(path.join(build, b)));
    if (present.length !== bins.length) {
      notes.push(`${where}: runtime packages not checked (${bins.join(", ")} not built in ${rel(build)})`);
      continue;
    }
    const text = (texts[docker] ?? fs.readFileSync(path.join(DEPLOY, "docker", docker), "utf8")).replace(/\\\n/g, " ");
    const final = text.slice(text.lastIndexOf("\nFROM "));
    const install = final.match(/apt-get install ([^&]*)/);
    if (!install) { errors.push(`${where}: the final stage installs no packages`); continue; }
    const pkgs = install[1].split(/\s+/).filter((w) => w && !w.startsWith("-"));
    const closure = aptClosure(pkgs);
    if (!closure || !fs.existsSync("/var/lib/dpkg/info")) {
      notes.push(`${where}: runtime packages not checked (no apt-cache or dpkg here)`);
      continue;
    }
    libs ??= libraryPackages();
    // The local build links NCCL and the CUDA runtime when the toolkit is installed; an image
    // configured with -DBITSWEEP_WITH_NCCL=OFF does not, so those libraries are not its concern.
    const ncclOff = /-DBITSWEEP_WITH_NCCL=OFF\b/.test(text);
    const before = errors.length;
    for (const b of bins) {
      const ldd = run("ldd", [path.join(build, b)]);
      if (!ldd.ok) { errors.push(`${where}: ldd ${b} failed: ${ldd.out}`); continue; }
      for (const m of ldd.out.matchAll(/^\s*(\S+) => (\S+)/gm)) {
        if (ncclOff && /^lib(nccl|cudart)\.so/.test(m[1])) continue;
        const pkg = libs.get(m[1]) ?? libs.get(path.basename(fs.realpathSync(m[2])));
        if (!pkg) errors.push(`${where}: ${b} loads ${m[1]}, which no Debian package installed here ships`);
        else if (!closure.has(pkg)) errors.push(`${where}: ${b} loads ${m[1]} from '${pkg}', which the final stage does not install`);
      }
    }
    if (errors.length === before) notes.push(`${where}: every shared library of ${bins.join(", ")} comes from its packages`);
  }
}
