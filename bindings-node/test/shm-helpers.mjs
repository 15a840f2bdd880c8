// Helpers of the shared-memory tests: line readers over child processes' stdout, the
// builds the cross-language test needs.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository's root. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A function giving the next line of `stream`, as a promise (null at its end). */
export function lines(stream) {
  const queue = [];
  const waiters = [];
  let buf = '';
  let ended = false;
  stream.setEncoding('utf8');
  stream.on('data', (c) => {
    buf += c;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (waiters.length) waiters.shift()(line);
      else queue.push(line);
    }
  });
  stream.on('end', () => {
    ended = true;
    while (waiters.length) waiters.shift()(null);
  });
  return () => {
    if (queue.length) return Promise.resolve(queue.shift());
    if (ended) return Promise.resolve(null);
    return new Promise((r) => waiters.push(r));
  };
}

/** Resolves with the exit code (or signal) of `child` once it has exited. */
export function exited(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode ?? child.signalCode);
    else child.once('exit', (code, signal) => resolve(code ?? signal));
  });
}

/** Spawns `cmd args` with stdout piped (stderr inherited) and its line reader. */
export function start(cmd, args, options = {}) {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'], ...options });
  return { child, next: lines(child.stdout) };
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  return { ok: !r.error && r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

/**
 * Builds what the cross-language test runs, when it can: the Python binding into
 * bindings-python/.venv (`make -C bindings-python build`, a no-op when fresh) and the C
 * static library (`cargo build --release -p aisoule-ratelimit-c`), then compiles the C
 * child. Returns the Python interpreter and the C program, or why one is missing (no
 * python3 venv, no C compiler). A build that fails with its tools present throws.
 */
export function buildCrossLanguage(tmp) {
  const out = { python: null, c: null, skip: [] };
  const make = process.env.MAKE || 'make';
  const cargo = process.env.CARGO || 'cargo';
  if (!run('python3', ['-m', 'venv', '--help']).ok) {
    out.skip.push('python3 or its venv module is missing (the Python binding cannot be built)');
  } else {
    const b = run(make, ['-C', join(ROOT, 'bindings-python'), 'build']);
    if (!b.ok) throw new Error(`make -C bindings-python build failed:\n${b.out}`);
    const py = join(ROOT, 'bindings-python', '.venv', 'bin', 'python');
    const probe = run(py, ['-c', 'import aisoule_ratelimit']);
    if (!probe.ok) throw new Error(`the Python binding does not import:\n${probe.out}`);
    out.python = py;
  }
  const cc = process.env.CC || 'cc';
  if (!run(cc, ['--version']).ok) {
    out.skip.push(`no C compiler (${cc})`);
  } else {
    const b = run(cargo, ['build', '--release', '--quiet', '-p', 'aisoule-ratelimit-c'], { cwd: ROOT });
    if (!b.ok) throw new Error(`cargo build --release -p aisoule-ratelimit-c failed:\n${b.out}`);
    const lib = join(ROOT, 'target', 'release', 'libaisoule_ratelimit.a');
    if (!existsSync(lib)) throw new Error(`${lib} was not built`);
    const exe = join(tmp, 'shm_count');
    const src = fileURLToPath(new URL('./fixtures/shm_count.c', import.meta.url));
    const c = run(cc, [
      '-std=c11', '-O2', '-Wall', '-Wextra', '-Werror',
      '-I', join(ROOT, 'bindings-c', 'include'),
      src, lib, '-lpthread', '-ldl', '-lm', '-o', exe,
    ]);
    if (!c.ok) throw new Error(`compiling ${src} failed:\n${c.out}`);
    out.c = exe;
  }
  return out;
}
