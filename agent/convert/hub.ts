/**
 * Fetching models from the Hugging Face hub into the cache: `hf://<owner>/<repo>[@<rev>]/<file>`
 * names one file (a GGUF), `hf://<owner>/<repo>[@<rev>]` a folder-style model (config.json,
 * safetensors, tokenizer). Files land in `<cacheDir>/hub/<owner>/<repo>/<rev>/`. Each is written to
 * a temp file beside its destination, checked against the hub's size and sha256, and renamed into
 * place, so the cache holds complete, verified files or nothing; a file already there is not fetched
 * again. The endpoint is `HF_ENDPOINT` (a mirror, or a test server), the token `HF_TOKEN`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { SedacError } from '../errors.js';
import { progressBar } from './progress.js';

export const HUB_PREFIX = 'hf://';
export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co';

export interface HubRef {
  /** `owner/name` */
  repo: string;
  /** branch, tag or commit sha; default `main` */
  revision: string;
  /** one file inside the repo, or undefined for a whole folder-style model */
  path: string | undefined;
}

export interface HubOptions {
  /** cache root; downloads go to `<cacheDir>/hub/...` */
  cacheDir: string;
  /** hub base URL; default $HF_ENDPOINT, else https://huggingface.co */
  endpoint?: string;
  /** bearer token, sent to the endpoint only (not to the CDN it redirects to); default $HF_TOKEN */
  token?: string;
  /** abort a request when no bytes arrive for this long, ms; default 30000 */
  idleTimeoutMs?: number;
  /** no progress bar on stderr */
  quiet?: boolean;
}

interface Ctx {
  endpoint: string;
  token: string | undefined;
  idleTimeoutMs: number;
  quiet: boolean;
}

const MAX_REDIRECTS = 10;
const MIB = 1 << 20;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** The folder-style files the readers use, besides config.json and the weights. */
const EXTRA_FILES = ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'generation_config.json'];
/** Written last into a folder download: the files it holds, so a later load needs no network. */
const MARKER = '.sedac-hub-complete.json';

export function isHubRef(source: string): boolean {
  return source.startsWith(HUB_PREFIX);
}

/** Parse `hf://<owner>/<repo>[@<revision>][/<path>]`; anything else → E_MODEL_NOT_FOUND saying why. */
export function parseHubRef(ref: string): HubRef {
  const bad = (why: string): SedacError =>
    new SedacError('E_MODEL_NOT_FOUND', `malformed hub reference ${ref} (${why}): expected hf://<owner>/<repo>[@<revision>][/<path>]`);
  if (!isHubRef(ref)) throw bad('no hf:// prefix');
  const [owner = '', repoRev = '', ...rest] = ref.slice(HUB_PREFIX.length).split('/');
  if (rest.length > 0 && rest.at(-1) === '') rest.pop();
  const at = repoRev.indexOf('@');
  const name = at < 0 ? repoRev : repoRev.slice(0, at);
  const revision = at < 0 ? 'main' : repoRev.slice(at + 1);
  if (!NAME.test(owner) || !NAME.test(name)) throw bad('owner or repo name');
  if (!NAME.test(revision)) throw bad('revision');
  if (rest.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\'))) throw bad('file path');
  return { repo: `${owner}/${name}`, revision, path: rest.length > 0 ? rest.join('/') : undefined };
}

/** Download what `source` names into the cache (or find it there) and return its local path. */
export async function fetchHubModel(source: string, opts: HubOptions): Promise<string> {
  const ref = parseHubRef(source);
  const ctx: Ctx = {
    endpoint: (opts.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_HF_ENDPOINT).replace(/\/+$/, ''),
    token: opts.token ?? (process.env.HF_TOKEN || undefined),
    idleTimeoutMs: opts.idleTimeoutMs ?? 30_000,
    quiet: opts.quiet ?? false,
  };
  if (!URL.canParse(ctx.endpoint)) throw new SedacError('E_MODEL_FETCH', `hub endpoint ${ctx.endpoint} (HF_ENDPOINT) is not a URL`);
  const root = join(resolve(opts.cacheDir), 'hub', ...ref.repo.split('/'), ref.revision);
  if (ref.path === undefined) return fetchFolder(ctx, ref, root);
  await fetchFile(ctx, ref.repo, ref.revision, ref.path, root, true);
  return join(root, ...ref.path.split('/'));
}

/** A folder-style model: list the repo (or probe the known names when the API is unavailable). */
async function fetchFolder(ctx: Ctx, ref: HubRef, root: string): Promise<string> {
  if (folderComplete(root)) return root;
  const listing = await listRepo(ctx, ref);
  const rev = listing?.sha ?? ref.revision; // pin one commit so a push mid-download cannot mix files
  const got: string[] = [];
  /** Fetch `file` if the listing has it (without a listing: if it exists); true when fetched. */
  const fetchIf = async (file: string): Promise<boolean> => {
    if (listing && !listing.files.has(file)) return false;
    const ok = await fetchFile(ctx, ref.repo, rev, file, root, listing !== undefined);
    if (ok) got.push(file);
    return ok;
  };
  const where = `${ref.repo}@${ref.revision}`;
  if (listing && !listing.files.has('config.json')) {
    throw new SedacError('E_MODEL_UNSUPPORTED', `${where} has no config.json at its top level; name one file instead (hf://${ref.repo}/<file>.gguf)`);
  }
  await fetchFile(ctx, ref.repo, rev, 'config.json', root, true);
  got.push('config.json');
  if (await fetchIf('model.safetensors.index.json')) {
    for (const shard of shardNames(join(root, 'model.safetensors.index.json'))) {
      await fetchFile(ctx, ref.repo, rev, shard, root, true);
      got.push(shard);
    }
  } else if (!(await fetchIf('model.safetensors'))) {
    throw new SedacError('E_MODEL_UNSUPPORTED', `${where} has no model.safetensors or model.safetensors.index.json (SEDAC reads safetensors weights only)`);
  }
  for (const file of EXTRA_FILES) await fetchIf(file);
  const tmp = join(root, `${MARKER}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify({ repo: ref.repo, revision: ref.revision, commit: listing?.sha, files: got }, null, 1));
  await rename(tmp, join(root, MARKER));
  return root;
}

function folderComplete(root: string): boolean {
  try {
    const m = JSON.parse(readFileSync(join(root, MARKER), 'utf8')) as { files?: unknown };
    return Array.isArray(m.files) && m.files.every((f) => typeof f === 'string' && existsSync(join(root, f)));
  } catch {
    return false;
  }
}

/** The shard files a sharded safetensors index names (plain file names only). */
function shardNames(indexPath: string): string[] {
  let map: unknown;
  try {
    map = (JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map?: unknown }).weight_map;
  } catch (err) {
    throw new SedacError('E_MODEL_FORMAT', `${indexPath}: ${(err as Error).message}`);
  }
  if (typeof map !== 'object' || map === null) throw new SedacError('E_MODEL_FORMAT', `${indexPath}: no weight_map`);
  const names = new Set(Object.values(map).filter((v): v is string => typeof v === 'string').map((v) => basename(v)));
  for (const n of names) if (!NAME.test(n)) throw new SedacError('E_MODEL_FORMAT', `${indexPath}: bad shard name ${n}`);
  return [...names].sort();
}

/** `GET {endpoint}/api/models/{repo}/revision/{rev}`; undefined when the API answers with an HTTP error or no JSON. */
async function listRepo(ctx: Ctx, ref: HubRef): Promise<{ files: Set<string>; sha: string | undefined } | undefined> {
  const url = `${ctx.endpoint}/api/models/${ref.repo}/revision/${encodeURIComponent(ref.revision)}`;
  const timer = idleTimer(ctx.idleTimeoutMs);
  try {
    const { res } = await request(ctx, url, timer.signal);
    const body = (await res.json()) as { siblings?: { rfilename?: unknown }[]; sha?: unknown };
    if (!Array.isArray(body.siblings)) return undefined;
    const files = new Set(body.siblings.map((s) => s.rfilename).filter((f): f is string => typeof f === 'string'));
    const sha = typeof body.sha === 'string' && /^[0-9a-f]{40}$/.test(body.sha) ? body.sha : undefined;
    return { files, sha };
  } catch (err) {
    if (err instanceof SedacError && err.details?.status !== undefined) return undefined; // the file fetches will say what is wrong
    if (err instanceof SyntaxError) return undefined;
    throw err;
  } finally {
    timer.stop();
  }
}

/** Fetch one file unless it is already in the cache; false when optional (`required` false) and 404. */
async function fetchFile(ctx: Ctx, repo: string, rev: string, path: string, root: string, required: boolean): Promise<boolean> {
  const dest = join(root, ...path.split('/'));
  if (existsSync(dest)) return true;
  const url = `${ctx.endpoint}/${repo}/resolve/${encodeURIComponent(rev)}/${path.split('/').map(encodeURIComponent).join('/')}`;
  try {
    await download(ctx, url, dest, `${repo}/${path}`);
    return true;
  } catch (err) {
    if (!required && err instanceof SedacError && err.code === 'E_MODEL_NOT_FOUND') return false;
    throw err;
  }
}

/** Stream `url` into a temp file beside `dest`, verify size and sha256, rename; no partial file survives. */
async function download(ctx: Ctx, url: string, dest: string, label: string): Promise<void> {
  const timer = idleTimer(ctx.idleTimeoutMs);
  const tmp = `${dest}.${process.pid}-${randomBytes(4).toString('hex')}.part`;
  try {
    const { res, sha256, linkedSize } = await request(ctx, url, timer.signal);
    const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
    const size = linkedSize ?? (encoded ? undefined : headerInt(res.headers.get('content-length')));
    const bar = size !== undefined && size >= MIB ? progressBar(`fetch ${label}`, Math.ceil(size / MIB), process.stderr, ctx.quiet) : undefined;
    await mkdir(dirname(dest), { recursive: true });
    const hash = createHash('sha256');
    let n = 0;
    let ticks = 0;
    const fh = await open(tmp, 'w');
    try {
      if (res.body) {
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          timer.touch();
          await fh.write(chunk);
          hash.update(chunk);
          n += chunk.length;
          while (ticks < Math.floor(n / MIB)) bar?.tick(`${++ticks} MiB`);
        }
      }
      await fh.sync();
    } catch (err) {
      throw new SedacError('E_MODEL_FETCH', `download of ${url} broke off after ${n} bytes: ${reason(err)}`, { url });
    } finally {
      await fh.close();
    }
    if (size !== undefined && n !== size) throw new SedacError('E_MODEL_FETCH', `${url}: received ${n} bytes, expected ${size}`, { url });
    const got = hash.digest('hex');
    if (sha256 !== undefined && got !== sha256) {
      throw new SedacError('E_MODEL_FETCH', `${url}: sha256 ${got} does not match the hub's ${sha256}`, { url });
    }
    await rename(tmp, dest);
    if (n % MIB !== 0) bar?.tick(`${(n / MIB).toFixed(1)} MiB`);
    bar?.done(`${(n / MIB).toFixed(1)} MiB, sha256 ${sha256 ? 'verified' : 'not published'}`);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    timer.stop();
  }
}

/**
 * GET following redirects by hand: the hub's 302 for an LFS file carries the file's sha256
 * (`X-Linked-Etag`) and size (`X-Linked-Size`), which the CDN's response does not; the token goes
 * to the endpoint's origin only. Errors name `url`, never a signed CDN address.
 */
async function request(ctx: Ctx, url: string, signal: AbortSignal): Promise<{ res: Response; sha256?: string; linkedSize?: number }> {
  let at = new URL(url);
  let sha256: string | undefined;
  let linkedSize: number | undefined;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'sedac' };
    if (ctx.token && at.origin === new URL(ctx.endpoint).origin) headers.authorization = `Bearer ${ctx.token}`;
    const named = hop === 0 ? url : `${url} (via ${at.host})`;
    let res: Response;
    try {
      res = await fetch(at, { headers, redirect: 'manual', signal });
    } catch (err) {
      throw new SedacError('E_MODEL_FETCH', `cannot reach ${named}: ${reason(err)}`, { url });
    }
    sha256 ??= sha256Tag(res.headers.get('x-linked-etag')) ?? (hop === 0 ? sha256Tag(res.headers.get('etag')) : undefined);
    linkedSize ??= headerInt(res.headers.get('x-linked-size'));
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      at = new URL(location, at);
      continue;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw statusError(res, named, url);
    }
    return { res, sha256, linkedSize };
  }
  throw new SedacError('E_MODEL_FETCH', `${url}: more than ${MAX_REDIRECTS} redirects`, { url });
}

function statusError(res: Response, named: string, url: string): SedacError {
  const details = { status: res.status, url };
  const hubCode = res.headers.get('x-error-code') ?? '';
  if (res.status === 404 || /^(Repo|Revision|Entry)NotFound$/.test(hubCode)) {
    const hint = res.status === 401 ? '; a private repo needs HF_TOKEN' : '';
    return new SedacError('E_MODEL_NOT_FOUND', `${named}: HTTP ${res.status}, no such repo, revision or file on the hub${hint}`, details);
  }
  const hint = res.status === 401 || res.status === 403 ? ' (private or gated repo: set HF_TOKEN)' : '';
  return new SedacError('E_MODEL_FETCH', `${named}: HTTP ${res.status} ${res.statusText}${hint}`, details);
}

/** A sha256 from an (E)Tag header such as `"abc…"` or `W/"abc…"`; git sha1 ETags of small files are not one. */
function sha256Tag(tag: string | null): string | undefined {
  const t = tag?.replace(/^W\//, '').replace(/"/g, '').trim().toLowerCase();
  return t !== undefined && /^[0-9a-f]{64}$/.test(t) ? t : undefined;
}

function headerInt(v: string | null): number | undefined {
  return v !== null && /^\d+$/.test(v.trim()) ? Number(v) : undefined;
}

function reason(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string; code?: string } };
  const cause = e.cause?.code ?? e.cause?.message;
  return `${e.message ?? String(err)}${cause ? ` (${cause})` : ''}`;
}

/** An abort signal that fires when `touch()` has not been called for `ms`. */
function idleTimer(ms: number): { signal: AbortSignal; touch(): void; stop(): void } {
  const ac = new AbortController();
  const arm = (): NodeJS.Timeout => setTimeout(() => ac.abort(new Error(`no data for ${ms} ms`)), ms);
  let t = arm();
  return {
    signal: ac.signal,
    touch() {
      clearTimeout(t);
      t = arm();
    },
    stop() {
      clearTimeout(t);
    },
  };
}
