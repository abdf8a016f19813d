import { promises as fs } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'web');
const tfjsBundle = createRequire(import.meta.url).resolve('@tensorflow/tfjs/dist/tf.min.js');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.bin': 'application/octet-stream',
  '.map': 'application/json',
};

export interface ServeSiteOptions {
  /** The folder `buildSite` wrote (model/ and digits.json). */
  siteDir: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
}

export interface SiteServer {
  /** `http://127.0.0.1:<port>/` */
  readonly url: string;
  /** Resolves with the first report the page POSTs to /results (pages opened with `?report=1`). */
  readonly report: Promise<unknown>;
  close(): Promise<void>;
}

/**
 * Serves the page (web/), the exported model and digits (siteDir) and tfjs's browser bundle from
 * node_modules, on 127.0.0.1 only: nothing comes from a CDN.
 */
export async function serveSite(options: ServeSiteOptions): Promise<SiteServer> {
  let deliver: (value: unknown) => void = () => undefined;
  const report = new Promise<unknown>((resolve) => (deliver = resolve));
  const server = createServer((req, res) => {
    handle(req, res, options.siteDir, deliver).catch((error: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(error));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    report,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, siteDir: string, deliver: (value: unknown) => void): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  if (req.method === 'POST' && url.pathname === '/results') {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    deliver(JSON.parse(body));
    res.writeHead(204).end();
    return;
  }
  let file: string | undefined;
  if (url.pathname === '/') file = path.join(webDir, 'index.html');
  else if (url.pathname === '/app.js') file = path.join(webDir, 'app.js');
  else if (url.pathname === '/tfjs/tf.min.js') file = tfjsBundle;
  else if (url.pathname === '/digits.json' || url.pathname.startsWith('/model/')) {
    const resolved = path.resolve(siteDir, `.${decodeURIComponent(url.pathname)}`);
    if (resolved.startsWith(path.resolve(siteDir) + path.sep)) file = resolved;
  }
  const body = file === undefined ? undefined : await fs.readFile(file).catch(() => undefined);
  if (body === undefined) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${url.pathname}`);
    return;
  }
  res.writeHead(200, { 'content-type': TYPES[path.extname(file!)] ?? 'application/octet-stream', 'cache-control': 'no-store' }).end(body);
}
