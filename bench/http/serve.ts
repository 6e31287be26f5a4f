// Starts one scenario's server: listens on 127.0.0.1:$PORT, prints "ready"
// once listening (the runner waits for that line), and on SIGTERM/SIGINT runs
// the scenario's cleanup and exits normally, so `node --cpu-prof` writes its profile.
// GET /__bench/handler-runs answers how often the scenario's handler ran, so
// the runner can prove that cached scenarios were measured on hits.
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';

export const HANDLER_RUNS_PATH = '/__bench/handler-runs';

let handlerRuns = 0;

/** Called by a scenario's route handler (the code a cache hit should skip). */
export function handlerRan(): void {
  handlerRuns++;
}

export function serve(name: string, handler: RequestListener, cleanup?: () => Promise<unknown> | void): void {
  const port = Number(process.env['PORT']);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`${name}: PORT must be set to a port number (got ${process.env['PORT']})`);
  // One string comparison per request, the same in every scenario.
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === HANDLER_RUNS_PATH) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ handlerRuns }));
      return;
    }
    handler(req, res);
  });
  // wrk holds its connections open for the whole run; never time them out mid-measure.
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`ready ${name} pid=${process.pid} port=${port}\n`);
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.closeAllConnections();
    server.close();
    Promise.resolve(cleanup?.())
      .catch((err: unknown) => process.stderr.write(`${name}: cleanup failed: ${String(err)}\n`))
      .finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
