// Ceiling: raw node:http sending the prebuilt body with prebuilt headers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BODY, CONTENT_TYPE } from '../body.mjs';
import { handlerRan, serve } from '../serve.js';

const HEADERS = ['content-type', CONTENT_TYPE, 'content-length', String(BODY.length)];
serve('node-raw', (_req: IncomingMessage, res: ServerResponse) => {
  handlerRan();
  res.writeHead(200, HEADERS);
  res.end(BODY);
});
