/**
 * Fetching from the Hugging Face hub, against a local stand-in for the hub: a node:http server that
 * answers like huggingface.co (repo listing API; `resolve` URLs that 302 LFS files to a separate
 * CDN origin with `X-Linked-Etag`/`X-Linked-Size`, and serve small files with a git-sha1 ETag),
 * serving the shared model files. Faults (truncated body, flipped byte, HTTP 500, stalled body)
 * are injected per file.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureBundle } from '../../agent/convert/cache.js';
import { fetchHubModel, parseHubRef } from '../../agent/convert/hub.js';
import { loadModel, type LoadedModel } from '../../agent/engine/index.js';
import { SedacError } from '../../agent/errors.js';
import { rejectsWith, tempDir } from '../helpers/fixtures.js';
import { sharedPath } from '../helpers/shared.js';

/** short: the hub states only the size (no sha256) and the CDN ends a chunked body early but cleanly */
type Fault = 'truncate' | 'corrupt' | '500' | 'stall' | 'short';
interface Blob {
  body: Buffer;
  sha256: string;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

/** Files of a shared folder, by name. */
function folder(rel: string): Map<string, Buffer> {
  const dir = sharedPath(rel);
  return new Map(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
}

class FakeHub {
  readonly repos = new Map<string, Map<string, Buffer>>();
  /** fault per `<repo>/<file>` */
  readonly faults = new Map<string, Fault>();
  /** every request: `hub <path>` or `cdn <path>`, with the Authorization header it carried */
  readonly log: { line: string; auth: string | undefined }[] = [];
  /** false: the listing API answers 404, like a plain file mirror */
  api = true;
  private readonly blobs = new Map<string, { blob: Blob; key: string }>();
  private readonly stalled: ServerResponse[] = [];
  private hub!: Server;
  private cdn!: Server;
  endpoint = '';
  private cdnBase = '';

  commit(repo: string): string {
    return createHash('sha1').update(repo).digest('hex');
  }

  async start(): Promise<void> {
    this.hub = createServer((req, res) => this.onHub(req, res));
    this.cdn = createServer((req, res) => this.onCdn(req, res));
    this.endpoint = `http://127.0.0.1:${await listen(this.hub)}`;
    this.cdnBase = `http://127.0.0.1:${await listen(this.cdn)}`; // another origin, like cdn-lfs.hf.co
  }

  async stop(): Promise<void> {
    for (const r of this.stalled) r.destroy();
    for (const s of [this.hub, this.cdn]) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  }

  count(): number {
    return this.log.length;
  }

  private onHub(req: IncomingMessage, res: ServerResponse): void {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    this.log.push({ line: `hub ${path}`, auth: req.headers.authorization });
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(path);
    if (api) {
      const files = this.repos.get(api[1]!);
      if (!this.api) return void res.writeHead(404).end('Not Found');
      if (!files) return void res.writeHead(401, { 'x-error-code': 'RepoNotFound' }).end('{"error":"Repository not found"}');
      if (api[2] !== 'main' && api[2] !== this.commit(api[1]!)) return void res.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end();
      const body = { id: api[1], sha: this.commit(api[1]!), siblings: [...files.keys(), 'README.md'].map((rfilename) => ({ rfilename })) };
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    }
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const files = m ? this.repos.get(m[1]!) : undefined;
    if (!m || !files) return void res.writeHead(401, { 'x-error-code': 'RepoNotFound' }).end('Repository not found');
    if (m[2] !== 'main' && m[2] !== this.commit(m[1]!)) return void res.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end();
    const body = files.get(m[3]!);
    if (!body) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('Entry not found');
    const key = `${m[1]}/${m[3]}`;
    const blob = { body, sha256: sha256(body) };
    if (/\.(gguf|safetensors)$/.test(m[3]!)) {
      // an LFS file: the hub redirects to a signed CDN URL and states sha256 and size itself
      this.blobs.set(blob.sha256, { blob, key });
      const location = `${this.cdnBase}/repos/ab/${blob.sha256}?X-Amz-Signature=secret&Expires=1`;
      const sums = this.faults.get(key) === 'short' ? {} : { etag: `"${blob.sha256}"`, 'x-linked-etag': `"${blob.sha256}"` };
      return void res.writeHead(302, { location, ...sums, 'x-linked-size': String(body.length) }).end(`Found. Redirecting to ${location}`);
    }
    this.serve(res, key, blob, `"${gitSha1(body)}"`);
  }

  private onCdn(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    this.log.push({ line: `cdn ${path}`, auth: req.headers.authorization });
    const hit = this.blobs.get(path.split('/').at(-1) ?? '');
    if (!hit) return void res.writeHead(403).end('AccessDenied');
    this.serve(res, hit.key, hit.blob, `"${createHash('md5').update(hit.blob.body).digest('hex')}"`);
  }

  private serve(res: ServerResponse, key: string, blob: Blob, etag: string): void {
    const fault = this.faults.get(key);
    if (fault === '500') return void res.writeHead(500).end('Internal Error');
    if (fault === 'short') return void res.writeHead(200, { etag }).end(blob.body.subarray(0, blob.body.length >> 1));
    res.writeHead(200, { 'content-length': blob.body.length, etag, 'content-type': 'application/octet-stream' });
    const half = blob.body.subarray(0, blob.body.length >> 1);
    if (fault === 'truncate') return void res.write(half, () => res.destroy());
    if (fault === 'stall') {
      this.stalled.push(res);
      return void res.write(half);
    }
    if (fault === 'corrupt') {
      const bad = Buffer.from(blob.body);
      const i = bad.length >> 1;
      bad.writeUInt8(bad.readUInt8(i) ^ 0x01, i);
      return void res.end(bad);
    }
    res.end(blob.body);
  }
}

function listen(s: Server): Promise<number> {
  return new Promise((ok) => s.listen(0, '127.0.0.1', () => ok((s.address() as AddressInfo).port)));
}

/** Every file under `dir`, relative. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(dir, f)).isFile());
}


/** loadModel has no endpoint field: point HF_ENDPOINT at the fake hub for the call only. */
async function loadFromHub(hub: FakeHub, source: string, cacheDir: string): Promise<LoadedModel> {
  const saved = process.env.HF_ENDPOINT;
  process.env.HF_ENDPOINT = hub.endpoint;
  try {
    return await loadModel({ name: source, source, cacheDir, quiet: true });
  } finally {
    if (saved === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = saved;
  }
}

/** The README's greedy golden for a caption prompt (parsed, not copied). */
function captionGolden(prompt: string): number[] {
  const text = readFileSync(sharedPath('models/caption-lm-8L/README.md'), 'utf8');
  const m = new RegExp(`- prompt \`${prompt}\` → prompt ids \`\\[[\\d, ]+\\]\`\\n\\s+- generated ids: \`\\[([\\d, ]+)\\]\``).exec(text);
  assert.ok(m, `caption-lm-8L README has no golden for "${prompt}"`);
  return m[1]!.split(',').map(Number);
}

describe('Hugging Face hub fetch (local stand-in hub)', () => {
  const hub = new FakeHub();
  const temps: (() => void)[] = [];
  const cache = (): string => {
    const t = tempDir('sedac-hub-');
    temps.push(t.cleanup);
    return t.dir;
  };
  const storiesReadme = (): string => readFileSync(sharedPath('models/stories260K/README.md'), 'utf8');

  before(async () => {
    hub.repos.set('sedac/stories260K', new Map([['stories260K.gguf', readFileSync(sharedPath('models/stories260K/stories260K.gguf'))]]));
    hub.repos.set('sedac/caption-lm-8L', folder('models/caption-lm-8L/hf'));
    hub.repos.set('sedac/caption-lm-8L-ee', folder('models/caption-lm-8L-ee/hf'));
    hub.repos.set('sedac/moderation-bert-6L', folder('models/moderation-bert-6L/hf'));
    await hub.start();
  });
  after(async () => {
    await hub.stop();
    for (const c of temps) c();
  });

  it('parses references and refuses malformed ones', () => {
    assert.deepEqual(parseHubRef('hf://sedac/stories260K/stories260K.gguf'), { repo: 'sedac/stories260K', revision: 'main', path: 'stories260K.gguf' });
    assert.deepEqual(parseHubRef('hf://a/b@v1.0/sub/dir/m.gguf'), { repo: 'a/b', revision: 'v1.0', path: 'sub/dir/m.gguf' });
    assert.deepEqual(parseHubRef('hf://a/b@0123abc'), { repo: 'a/b', revision: '0123abc', path: undefined });
    assert.deepEqual(parseHubRef('hf://a/b/'), { repo: 'a/b', revision: 'main', path: undefined });
    for (const bad of ['hf://a', 'hf://a/', 'hf://../b/x.gguf', 'hf://a/b/../../x', 'hf://a/b@/x', 'hf://a/b//x', 'https://a/b']) {
      assert.throws(() => parseHubRef(bad), (e: unknown) => e instanceof SedacError && e.code === 'E_MODEL_NOT_FOUND' && e.message.includes(bad), bad);
    }
  });

  it('loadModel(hf://…/stories260K.gguf) downloads, verifies and generates the README golden; a second load makes no request', async () => {
    const cacheDir = cache();
    const n0 = hub.count();
    const m = await loadFromHub(hub, 'hf://sedac/stories260K/stories260K.gguf', cacheDir);
    try {
      assert.deepEqual(
        hub.log.slice(n0).map((l) => l.line.replace(/[0-9a-f]{64}/, '<sha>')),
        ['hub /sedac/stories260K/resolve/main/stories260K.gguf', 'cdn /repos/ab/<sha>'],
      );
      const file = join(cacheDir, 'hub', 'sedac', 'stories260K', 'main', 'stories260K.gguf');
      const readmeSha = /\| sha256 \| `([0-9a-f]{64})` \|/.exec(storiesReadme())?.[1];
      assert.ok(readmeSha, 'stories260K README lists the sha256');
      assert.equal(sha256(readFileSync(file)), readmeSha);
      assert.deepEqual(filesUnder(join(cacheDir, 'hub')), [join('sedac', 'stories260K', 'main', 'stories260K.gguf')], 'no temp files left');
      const r = await m.generate!('Once upon a time', { maxTokens: 12 });
      assert.ok(r.text.startsWith(', there was a little girl named Lily.'), r.text);
    } finally {
      await m.dispose();
    }
    const n1 = hub.count();
    const again = await loadFromHub(hub, 'hf://sedac/stories260K/stories260K.gguf', cacheDir);
    try {
      assert.equal(hub.count(), n1, 'the cached download is re-used without asking the hub');
      assert.equal(again.bundleHash, m.bundleHash);
    } finally {
      await again.dispose();
    }
  });

  it('loadModel(hf://sedac/caption-lm-8L) fetches a folder-style model by its listing and reproduces the README golden', async () => {
    const cacheDir = cache();
    const n0 = hub.count();
    const m = await loadFromHub(hub, 'hf://sedac/caption-lm-8L', cacheDir);
    try {
      const lines = hub.log.slice(n0).map((l) => l.line);
      assert.equal(lines[0], 'hub /api/models/sedac/caption-lm-8L/revision/main');
      const commit = hub.commit('sedac/caption-lm-8L');
      assert.ok(lines.includes(`hub /sedac/caption-lm-8L/resolve/${commit}/model.safetensors`), 'files are fetched at the listed commit');
      assert.ok(!lines.some((l) => l.endsWith('README.md') || l.endsWith('.index.json')), 'only listed files the readers use are fetched');
      const dir = join(cacheDir, 'hub', 'sedac', 'caption-lm-8L', 'main');
      for (const [f, body] of folder('models/caption-lm-8L/hf')) assert.equal(sha256(readFileSync(join(dir, f))), sha256(body), f);
      const r = await m.generate!('a black dog', { maxTokens: 20 });
      assert.deepEqual(r.tokens, captionGolden('a black dog').slice(0, -1)); // the README's ids end with EOS
      assert.equal(r.stop, 'eos');
    } finally {
      await m.dispose();
    }
    const n1 = hub.count();
    const again = await loadFromHub(hub, 'hf://sedac/caption-lm-8L', cacheDir);
    await again.dispose();
    assert.equal(hub.count(), n1, 'a complete folder download is re-used without asking the hub');
  });

  it('without the listing API, probes the known file names (BERT folder with vocab.txt), byte-exact', async () => {
    const cacheDir = cache();
    hub.api = false;
    try {
      const dir = await fetchHubModel('hf://sedac/moderation-bert-6L', { cacheDir, endpoint: hub.endpoint, quiet: true });
      const want = folder('models/moderation-bert-6L/hf');
      assert.deepEqual(filesUnder(dir).filter((f) => !f.startsWith('.')).sort(), [...want.keys()].sort());
      for (const [f, body] of want) assert.equal(sha256(readFileSync(join(dir, f))), sha256(body), f);
    } finally {
      hub.api = true;
    }
  });

  it('a folder fetch that fails part-way leaves only complete files; the retry fetches just the missing ones', async () => {
    const cacheDir = cache();
    const source = 'hf://sedac/caption-lm-8L-ee';
    hub.faults.set('sedac/caption-lm-8L-ee/tokenizer.json', '500');
    try {
      await rejectsWith(fetchHubModel(source, { cacheDir, endpoint: hub.endpoint, quiet: true }), 'E_MODEL_FETCH', /tokenizer\.json: HTTP 500/);
    } finally {
      hub.faults.clear();
    }
    const dir = join(cacheDir, 'hub', 'sedac', 'caption-lm-8L-ee', 'main');
    assert.deepEqual(filesUnder(dir).sort(), ['config.json', 'model.safetensors']);
    const n0 = hub.count();
    await fetchHubModel(source, { cacheDir, endpoint: hub.endpoint, quiet: true });
    const lines = hub.log.slice(n0).map((l) => l.line);
    assert.ok(!lines.some((l) => l.includes('model.safetensors') || l.startsWith('cdn ')), lines.join('\n'));
    assert.ok(lines.some((l) => l.endsWith('/tokenizer.json')));
  });

  it('the token goes to the hub only, never to the CDN origin it redirects to', async () => {
    const n0 = hub.count();
    await fetchHubModel('hf://sedac/stories260K/stories260K.gguf', { cacheDir: cache(), endpoint: hub.endpoint, token: 'hf_test', quiet: true });
    const reqs = hub.log.slice(n0);
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0]!.auth, 'Bearer hf_test');
    assert.ok(reqs[1]!.line.startsWith('cdn '));
    assert.equal(reqs[1]!.auth, undefined);
  });

  it('a pinned revision is fetched and cached under its own name; an unknown one is E_MODEL_NOT_FOUND', async () => {
    const cacheDir = cache();
    const commit = hub.commit('sedac/stories260K');
    const p = await fetchHubModel(`hf://sedac/stories260K@${commit}/stories260K.gguf`, { cacheDir, endpoint: hub.endpoint, quiet: true });
    assert.equal(p, join(cacheDir, 'hub', 'sedac', 'stories260K', commit, 'stories260K.gguf'));
    await rejectsWith(
      fetchHubModel('hf://sedac/stories260K@nope/stories260K.gguf', { cacheDir, endpoint: hub.endpoint, quiet: true }),
      'E_MODEL_NOT_FOUND',
      /resolve\/nope\/stories260K\.gguf: HTTP 404/,
    );
  });

  it('a missing file (404) or repo (401 RepoNotFound) is E_MODEL_NOT_FOUND naming the URL, through ensureBundle too', async () => {
    const cacheDir = cache();
    const opts = { cacheDir, hubEndpoint: hub.endpoint, quiet: true };
    await rejectsWith(ensureBundle('hf://sedac/stories260K/missing.gguf', opts), 'E_MODEL_NOT_FOUND', new RegExp(`${hub.endpoint}/sedac/stories260K/resolve/main/missing\\.gguf: HTTP 404`));
    await rejectsWith(ensureBundle('hf://sedac/nope/m.gguf', opts), 'E_MODEL_NOT_FOUND', /sedac\/nope\/resolve\/main\/m\.gguf: HTTP 401/);
    await rejectsWith(ensureBundle('hf://sedac/nope', opts), 'E_MODEL_NOT_FOUND', /sedac\/nope\/resolve\/main\/config\.json: HTTP 401/);
    assert.deepEqual(filesUnder(cacheDir), []);
  });

  for (const [fault, mention] of [
    ['truncate', /broke off after \d+ bytes/],
    ['corrupt', /sha256 [0-9a-f]{64} does not match the hub's [0-9a-f]{64}/],
    ['500', /stories260K\.gguf \(via 127\.0\.0\.1:\d+\): HTTP 500/],
    ['stall', /no data for 300 ms/],
    ['short', /received 592688 bytes, expected 1185376/],
  ] as const) {
    it(`a ${fault} download is E_MODEL_FETCH and leaves nothing in the cache`, async () => {
      const cacheDir = cache();
      hub.faults.set('sedac/stories260K/stories260K.gguf', fault);
      try {
        const p = fetchHubModel('hf://sedac/stories260K/stories260K.gguf', { cacheDir, endpoint: hub.endpoint, quiet: true, idleTimeoutMs: 300 });
        await rejectsWith(p, 'E_MODEL_FETCH', mention);
      } finally {
        hub.faults.clear();
      }
      assert.deepEqual(filesUnder(cacheDir), []);
    });
  }

  it('an unreachable endpoint is E_MODEL_FETCH', async () => {
    const s = createServer();
    const port = await listen(s);
    await new Promise((r) => s.close(r));
    const cacheDir = cache();
    await rejectsWith(
      fetchHubModel('hf://sedac/stories260K/stories260K.gguf', { cacheDir, endpoint: `http://127.0.0.1:${port}/`, quiet: true }),
      'E_MODEL_FETCH',
      /cannot reach http:\/\/127\.0\.0\.1:\d+\/sedac\/stories260K\/resolve\/main\/stories260K\.gguf: .*ECONNREFUSED/,
    );
    assert.deepEqual(filesUnder(cacheDir), []);
    await rejectsWith(fetchHubModel('hf://a/b/m.gguf', { cacheDir, endpoint: 'not a url' }), 'E_MODEL_FETCH', /not a URL/);
  });
});
