/**
 * Fixtures for the classifier tests: the shared moderation model converted into a temp bundle, and
 * the README's golden probes (texts, input_ids, logits) parsed from the README itself.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertBert } from '../../agent/convert/bert.js';
import { sharedPath } from '../helpers/shared.js';

export const BERT_HF = (): string => sharedPath('models/moderation-bert-6L/hf');
export const DAVIDSON = (split: 'train' | 'val'): string => sharedPath(`data/davidson_hate_offensive/${split}.jsonl`);

export interface BertProbe {
  text: string;
  ids: number[];
  logits: number[];
  label: string;
}

/** The golden probes of moderation-bert-6L/README.md; fails loudly when the README changed shape. */
export function bertProbes(): BertProbe[] {
  const text = readFileSync(sharedPath('models/moderation-bert-6L/README.md'), 'utf8');
  const re = /^- `([^`]+)` → tokens .*\n\s+- input_ids `\[([\d, ]+)\]`\n\s+- logits \[[^\]]*\] = `\[([-\d., ]+)\]` → \*\*(\w+)\*\*/gm;
  const out: BertProbe[] = [];
  for (const m of text.matchAll(re)) {
    out.push({ text: m[1]!, ids: m[2]!.split(',').map(Number), logits: m[3]!.split(',').map(Number), label: m[4]! });
  }
  if (out.length < 3) throw new Error(`moderation-bert-6L/README.md: expected 3 golden probes, parsed ${out.length}`);
  return out;
}

/** Convert the shared model into a fresh temp bundle; returns its dir and a cleanup. */
export async function tempBertBundle(): Promise<{ dir: string; cleanup: () => void }> {
  const root = mkdtempSync(join(tmpdir(), 'sedac-classify-'));
  const dir = join(root, 'bundle');
  await convertBert(BERT_HF(), dir, { quiet: true });
  return { dir, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
