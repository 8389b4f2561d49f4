/**
 * Small SVG scatter plots for the benches: side-by-side panels of labelled points, coloured by kind,
 * with the `line` kind (static truncation) joined in x order. No dependencies; the output is a
 * plain SVG the results Markdown can embed.
 */

export interface Point {
  /** full name (hover title) */
  name: string;
  /** short label drawn beside the point */
  label: string;
  kind: string;
  x: number;
  y: number;
}

export interface Panel {
  title: string;
  xLabel: string;
  points: Point[];
  /** digits of the tick labels; default 2 (x) and 3 (y) */
  xDigits?: number;
  yDigits?: number;
  /** start the x axis at 0 (latency axes); default: fit the data */
  xFromZero?: boolean;
  /** never extend the x axis above 1 (agreement axes) */
  xMax1?: boolean;
  /** never extend the y axis above 1 (agreement axes) */
  yMax1?: boolean;
  /** a dashed horizontal reference line (e.g. speedup 1) */
  yRef?: number;
}

export interface PlotStyle {
  /** kind → colour */
  colors: Record<string, string>;
  /** kinds joined by a polyline in x order */
  lineKinds?: string[];
  /** kinds drawn with a bigger marker */
  bigKinds?: string[];
  /** caption under the panels, one string per line */
  legend: string | string[];
}

const W = 420, H = 300, M = { l: 56, r: 16, t: 28, b: 44 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function range(vs: number[], fromZero: boolean, max1: boolean): [number, number] {
  let lo = fromZero ? 0 : Math.min(...vs);
  let hi = Math.max(...vs);
  const pad = Math.max((hi - lo) * 0.06, Math.abs(hi) * 0.01, 1e-3);
  lo = fromZero ? 0 : lo - pad;
  hi = max1 ? Math.min(1, hi + pad) : hi + pad;
  return hi > lo ? [lo, hi] : [lo - 1, hi + 1];
}

function panel(p: Panel, style: PlotStyle, dx: number): string {
  const pts = p.points.filter((q) => Number.isFinite(q.x) && Number.isFinite(q.y));
  if (pts.length === 0) return `<text x="${dx + W / 2}" y="${H / 2}" text-anchor="middle">${esc(p.title)}: no data</text>`;
  const [xmin, xmax] = range(pts.map((q) => q.x), p.xFromZero ?? false, p.xMax1 ?? false);
  const [ymin, ymax] = range([...pts.map((q) => q.y), ...(p.yRef !== undefined ? [p.yRef] : [])], false, p.yMax1 ?? false);
  const r1 = (v: number): number => Math.round(v * 10) / 10;
  const sx = (x: number): number => r1(dx + M.l + ((x - xmin) / (xmax - xmin)) * (W - M.l - M.r));
  const sy = (y: number): number => r1(M.t + (1 - (y - ymin) / (ymax - ymin)) * (H - M.t - M.b));
  const color = (k: string): string => style.colors[k] ?? '#444';
  const out: string[] = [];
  out.push(`<text x="${dx + W / 2}" y="16" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
  out.push(`<line x1="${sx(xmin)}" y1="${sy(ymin)}" x2="${sx(xmax)}" y2="${sy(ymin)}" stroke="#000"/><line x1="${sx(xmin)}" y1="${sy(ymin)}" x2="${sx(xmin)}" y2="${sy(ymax)}" stroke="#000"/>`);
  for (let i = 0; i <= 4; i++) {
    const x = xmin + ((xmax - xmin) * i) / 4, y = ymin + ((ymax - ymin) * i) / 4;
    out.push(`<text x="${sx(x)}" y="${sy(ymin) + 16}" text-anchor="middle">${x.toFixed(p.xDigits ?? 2)}</text>`);
    out.push(`<text x="${sx(xmin) - 6}" y="${sy(y) + 4}" text-anchor="end">${y.toFixed(p.yDigits ?? 3)}</text>`);
  }
  out.push(`<text x="${dx + W / 2}" y="${H - 6}" text-anchor="middle">${esc(p.xLabel)}</text>`);
  if (p.yRef !== undefined) out.push(`<line x1="${sx(xmin)}" y1="${sy(p.yRef)}" x2="${sx(xmax)}" y2="${sy(p.yRef)}" stroke="#999" stroke-dasharray="4 3"/>`);
  for (const k of style.lineKinds ?? []) {
    const line = pts.filter((q) => q.kind === k).sort((a, b) => a.x - b.x);
    if (line.length > 1) out.push(`<polyline fill="none" stroke="${color(k)}" points="${line.map((q) => `${sx(q.x)},${sy(q.y)}`).join(' ')}"/>`);
  }
  // points drawn on top of each other share one label (e.g. levels that run at full depth)
  const labels: { x: number; y: number; text: string[]; color: string }[] = [];
  for (const q of pts) {
    const [x, y] = [sx(q.x), sy(q.y)];
    out.push(`<circle cx="${x}" cy="${y}" r="${style.bigKinds?.includes(q.kind) ? 4 : 3}" fill="${color(q.kind)}"><title>${esc(q.name)}</title></circle>`);
    const near = labels.find((l) => Math.abs(l.x - x) < 6 && Math.abs(l.y - y) < 6);
    if (near) near.text.push(q.label);
    else labels.push({ x, y, text: [q.label], color: color(q.kind) });
  }
  for (const l of labels) {
    const right = l.x > dx + W * 0.7;
    out.push(`<text x="${right ? l.x - 5 : l.x + 5}" y="${l.y - 5}" fill="${l.text.length > 1 ? '#444' : l.color}"${right ? ' text-anchor="end"' : ''}>${esc(l.text.join(', '))}</text>`);
  }
  return out.join('\n');
}

/** Panels side by side (at most `perRow` per row), with a legend line at the bottom. */
export function scatterPlot(panels: Panel[], style: PlotStyle, perRow = 3): string {
  const cols = Math.min(perRow, Math.max(1, panels.length));
  const rows = Math.ceil(panels.length / cols);
  const legend = typeof style.legend === 'string' ? [style.legend] : style.legend;
  const width = cols * W;
  const height = rows * H + 14 * legend.length + 10;
  const body = panels.map((p, i) => `<g transform="translate(0 ${Math.floor(i / cols) * H})">\n${panel(p, style, (i % cols) * W)}\n</g>`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="10">`,
    '<rect width="100%" height="100%" fill="#fff"/>',
    ...body,
    ...legend.map((line, i) => `<text x="${width / 2}" y="${rows * H + 14 * (i + 1)}" text-anchor="middle" fill="#555">${esc(line)}</text>`),
    '</svg>',
  ].join('\n');
}

/** The classify bench's points: agreement and macro-F1 against mean latency. */
export interface PlotPoint {
  name: string;
  kind: 'full' | 'split' | 'static' | 'level';
  /** mean latency per text, ms */
  ms: number;
  agreement: number;
  macroF1: number;
}

/** The classify bench's plot: agreement and macro-F1 (y) against mean latency per text (x). */
export function classifyPlot(points: PlotPoint[]): string {
  const short = (n: string): string => n.replace('static depth ', 'd').replace('level ', '').replace(/full \((.*)\)/, 'full $1');
  const of = (key: 'agreement' | 'macroF1'): Point[] => points.map((p) => ({ name: p.name, label: short(p.name), kind: p.kind, x: p.ms, y: p[key] }));
  const axis = { xLabel: 'mean latency per text (ms)', xFromZero: true, yMax1: true };
  return scatterPlot(
    [
      { title: 'agreement with full depth (val)', points: of('agreement'), ...axis },
      { title: 'macro-F1 (val)', points: of('macroF1'), ...axis },
    ],
    {
      colors: { full: '#222', split: '#888', static: '#1f77b4', level: '#d62728' },
      lineKinds: ['static'],
      bigKinds: ['level'],
      legend: 'blue: static truncation at depth 0…L-1 · red: calibrated levels · black: full depth',
    },
  );
}
