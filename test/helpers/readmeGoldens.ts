/**
 * Goldens read from the ../shared model READMEs themselves (never copied into the tests), for the
 * tokenizer, reference and engine tests. Each parser fails loudly when the README no longer has what
 * it looks for.
 */
import { readFileSync } from 'node:fs';
import { sharedPath } from './shared.js';

const ids = (s: string): number[] => s.split(',').map((x) => Number(x.trim()));

function readme(model: string): string {
  return readFileSync(sharedPath(`models/${model}/README.md`), 'utf8');
}

export interface CaptionGolden {
  prompt: string;
  /** prompt ids with BOS, or undefined when the README gives only the continuation */
  promptIds: number[] | undefined;
  generated: number[];
  fullText: string;
  /** the README's smallest top-1 minus top-2 logit margin along the greedy path (main prompts only) */
  margin: number | undefined;
}

/** Every prompt of a caption model's README: prompt ids, generated ids and the full text. */
export function captionGoldens(model: string): CaptionGolden[] {
  const text = readme(model);
  const out: CaptionGolden[] = [];
  const main = /- prompt `([^`]+)` → prompt ids `\[([\d, ]+)\]`\n\s+- generated ids: `\[([\d, ]+)\]`\n\s+- full text: `([^`]+)`\n\s+- smallest top-1 minus top-2 logit margin along the greedy path: ([\d.]+)/g;
  for (const m of text.matchAll(main)) {
    out.push({ prompt: m[1] as string, promptIds: ids(m[2] as string), generated: ids(m[3] as string), fullText: m[4] as string, margin: Number(m[5]) });
  }
  const more = /^- `([^`]+)` → ids `\[([\d, ]+)\]` → `([^`]+)`$/gm;
  for (const m of text.matchAll(more)) {
    out.push({ prompt: m[1] as string, promptIds: undefined, generated: ids(m[2] as string), fullText: m[3] as string, margin: undefined });
  }
  if (out.filter((g) => g.promptIds).length < 5) throw new Error(`${model}/README.md: expected at least 5 prompt goldens, found ${out.length}`);
  return out;
}

export type PromptGolden = CaptionGolden & { promptIds: number[]; margin: number };

/** The README prompts whose greedy path keeps a top-1/top-2 margin of at least `min`, widest first. */
export function highMarginGoldens(model: string, min: number): PromptGolden[] {
  return captionGoldens(model)
    .filter((g): g is PromptGolden => g.promptIds !== undefined && g.margin !== undefined && g.margin >= min)
    .sort((a, b) => b.margin - a.margin);
}

/** stories260K: the prompt ids and the llama.cpp continuation text. */
export function storiesGolden(): { prompt: string; promptIds: number[]; text: string } {
  const text = readme('stories260K');
  const p = /Prompt `([^`]+)` \(tokens with BOS: `\[([\d, ]+)\]`\)/.exec(text);
  const block = /llama\.cpp continues:\n\n```\n([\s\S]*?)\n```/.exec(text);
  if (!p || !block) throw new Error('stories260K/README.md: golden prompt or text block not found');
  return { prompt: p[1] as string, promptIds: ids(p[2] as string), text: block[1] as string };
}

/** moderation-bert-6L: the probe texts with their tokens and input_ids. */
export function bertGoldens(): { text: string; tokens: string[]; inputIds: number[] }[] {
  const text = readme('moderation-bert-6L');
  const re = /- `([^`]+)` → tokens `\[([^\]]*)\]`\n\s+- input_ids `\[([\d, ]+)\]`/g;
  const out = [...text.matchAll(re)].map((m) => ({
    text: m[1] as string,
    tokens: [...(m[2] as string).matchAll(/'([^']*)'/g)].map((t) => t[1] as string),
    inputIds: ids(m[3] as string),
  }));
  if (out.length < 3) throw new Error(`moderation-bert-6L/README.md: expected 3 probe goldens, found ${out.length}`);
  return out;
}

/** The `text` field of every line of a JSONL file under ../shared. */
export function jsonlTexts(rel: string): string[] {
  return readFileSync(sharedPath(rel), 'utf8')
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => (JSON.parse(l) as { text: string }).text);
}
