// DESIGN.md section 6: "Miss + store: <= 15% over the bare route". Every
// request asks for a URL never asked before (wrk Lua script), so every
// request on the tiercache scenario is a miss that runs the handler and
// stores the answer (L1 only). The baseline is the bare route, hit with the
// same distinct URLs. Each server runs in its own process on cpu 1, wrk on
// cpu 0; rounds alternate; medians of req/s.
//   node bench/http/miss.mjs [--rounds 3] [--duration 8]
import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
};
const rounds = arg('--rounds', 3);
const duration = arg('--duration', 8);
const lua = join(mkdtempSync(join(tmpdir(), 'tc-miss-')), 'distinct.lua');
// Distinct query values per request; each wrk thread gets its own prefix.
writeFileSync(lua, `local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format("GET", "/api/catalog?miss=" .. n)\nend\n`);

const scenarios = {
  'express-bare': 'express-bare.ts',
  'express-tiercache-miss': 'express-tiercache-app.ts',
};

async function round(name, file, port) {
  const server = spawn('taskset', ['-c', '1', process.execPath, '--import', 'tsx', join(here, 'scenarios', file)], {
    env: { ...process.env, PORT: String(port), NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    server.stdout.on('data', (d) => String(d).includes('ready') && resolve());
    server.once('exit', (code) => reject(new Error(`${name} exited ${code}`)));
  });
  try {
    // Warm-up on other distinct URLs, then the measured window.
    execFileSync('taskset', ['-c', '0', 'wrk', '-t1', '-c64', '-d2s', '-s', lua, `http://127.0.0.1:${port}`], { stdio: 'ignore' });
    const out = execFileSync('taskset', ['-c', '0', 'wrk', '-t1', '-c64', `-d${duration}s`, '-s', lua, `http://127.0.0.1:${port}`], { encoding: 'utf8' });
    return Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  } finally {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGKILL');
    await exited;
  }
}

const results = Object.fromEntries(Object.keys(scenarios).map((k) => [k, []]));
let port = 21000 + Math.floor(Math.random() * 1000);
for (let r = 0; r < rounds; r++) {
  for (const [name, file] of Object.entries(scenarios)) results[name].push(await round(name, file, port++));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const bare = median(results['express-bare']);
const miss = median(results['express-tiercache-miss']);
console.log(`date ${new Date().toISOString()}, node ${process.version}, ${rounds} rounds x ${duration} s`);
for (const [name, xs] of Object.entries(results)) console.log(`${name.padEnd(24)} median ${Math.round(median(xs))} req/s  (rounds ${xs.map(Math.round).join(', ')})`);
console.log(`miss + store costs ${(((bare / miss) - 1) * 100).toFixed(1)}% over the bare route (target <= 15%)`);
