// HTTP exchanges on raw sockets, for what clients hide: repeated header fields
// (folded by every client library), odd request targets (absolute form,
// fragments) and answers cut short.
import type { Server } from 'node:http';
import { connect } from 'node:net';

export interface WireAnswer {
  /** 0 when no status line arrived. */
  readonly status: number;
  /** The reason phrase of the status line ('' when none arrived). */
  readonly reason: string;
  /** Header fields in wire order, names lower-cased. */
  readonly fields: ReadonlyArray<readonly [string, string]>;
  /** Everything after the head, as latin1 text. */
  readonly body: string;
}

export function portOf(server: Server): number {
  return (server.address() as { port: number }).port;
}

/**
 * Sends `GET target` (or another method) with `headers` (Host defaults to
 * 127.0.0.1, Connection: close) and resolves with what came back once the
 * server closed the connection or `ms` passed.
 */
export function wireRequest(server: Server, target: string, headers: Record<string, string> = {}, options: { method?: string; ms?: number } = {}): Promise<WireAnswer> {
  return wireText(server, target, headers, options).then(parseAnswer);
}

/** What wireRequest reads, unparsed: every byte that came back, as latin1 text (an answer with no head too). */
export function wireText(server: Server, target: string, headers: Record<string, string> = {}, options: { method?: string; ms?: number } = {}): Promise<string> {
  const all: Record<string, string> = { Host: '127.0.0.1', Connection: 'close', ...headers };
  const head = Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return wireRaw(server, `${options.method ?? 'GET'} ${target} HTTP/1.1\r\n${head}\r\n`, options.ms);
}

/**
 * Sends `raw` as it is (requests pipelined on one connection, HTTP/1.0 ones)
 * and resolves with every byte that came back, as latin1 text, once the
 * server closed the connection or `ms` passed. `end`: half-close after `raw`,
 * so node closes once it has answered what came, kept alive or not.
 */
export function wireRaw(server: Server, raw: string, ms = 5_000, end = false): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect(portOf(server), '127.0.0.1', () => (end ? socket.end(raw) : socket.write(raw)));
    const timer = setTimeout(() => socket.destroy(), ms);
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

function parseAnswer(text: string): WireAnswer {
  const split = text.indexOf('\r\n\r\n');
  if (split === -1) return { status: 0, reason: '', fields: [], body: '' };
  const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
  const fields = lines.map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
  });
  const [, code, ...reason] = statusLine!.split(' ');
  return { status: Number(code), reason: reason.join(' '), fields, body: text.slice(split + 4) };
}

/** Every value of field `name`, in wire order. */
export function valuesOf(answer: WireAnswer, name: string): string[] {
  return answer.fields.filter(([n]) => n === name).map(([, v]) => v);
}
