/** The classify bench's plot: agreement and macro-F1 against mean latency, as a small SVG. */

export interface PlotPoint {
  name: string;
  kind: 'full' | 'split' | 'static' | 'level';
  /** mean latency per text, ms */
  ms: number;
  agreement: number;
  macroF1: number;
}

const W = 420, H = 300, M = { l: 56, r: 16, t: 28, b: 44 };
const COLOR = { full: '#222', split: '#888', static: '#1f77b4', level: '#d62728' } as const;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function panel(points: PlotPoint[], key: 'agreement' | 'macroF1', title: string, dx: number): string {
  const xmax = Math.max(...points.map((p) => p.ms)) * 1.08;
  const ys = points.map((p) => p[key]);
  const ymin = Math.floor(Math.min(...ys) * 50) / 50, ymax = Math.min(1, Math.ceil(Math.max(...ys) * 50) / 50 + 0.01);
  const r1 = (v: number): number => Math.round(v * 10) / 10;
  const sx = (x: number): number => r1(dx + M.l + (x / xmax) * (W - M.l - M.r));
  const sy = (y: number): number => r1(M.t + (1 - (y - ymin) / (ymax - ymin)) * (H - M.t - M.b));
  const out: string[] = [];
  out.push(`<text x="${dx + W / 2}" y="16" text-anchor="middle" font-weight="bold">${esc(title)}</text>`);
  out.push(`<line x1="${sx(0)}" y1="${sy(ymin)}" x2="${sx(xmax)}" y2="${sy(ymin)}" stroke="#000"/><line x1="${sx(0)}" y1="${sy(ymin)}" x2="${sx(0)}" y2="${sy(ymax)}" stroke="#000"/>`);
  for (let i = 0; i <= 4; i++) {
    const x = (xmax * i) / 4, y = ymin + ((ymax - ymin) * i) / 4;
    out.push(`<text x="${sx(x)}" y="${sy(ymin) + 16}" text-anchor="middle">${x.toFixed(2)}</text>`);
    out.push(`<text x="${sx(0) - 6}" y="${sy(y) + 4}" text-anchor="end">${y.toFixed(3)}</text>`);
  }
  out.push(`<text x="${dx + W / 2}" y="${H - 6}" text-anchor="middle">mean latency per text (ms)</text>`);
  const st = points.filter((p) => p.kind === 'static').sort((a, b) => a.ms - b.ms);
  out.push(`<polyline fill="none" stroke="${COLOR.static}" points="${st.map((p) => `${sx(p.ms)},${sy(p[key])}`).join(' ')}"/>`);
  for (const p of points) {
    const [x, y] = [sx(p.ms), sy(p[key])];
    const short = p.name.replace('static depth ', 'd').replace('level ', '').replace(/full \((.*)\)/, 'full $1');
    out.push(`<circle cx="${x}" cy="${y}" r="${p.kind === 'level' ? 4 : 3}" fill="${COLOR[p.kind]}"><title>${esc(p.name)}</title></circle>`);
    out.push(`<text x="${x + 5}" y="${y - 5}" fill="${COLOR[p.kind]}">${esc(short)}</text>`);
  }
  return out.join('\n');
}

export function classifyPlot(points: PlotPoint[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H}" font-family="sans-serif" font-size="10">`,
    '<rect width="100%" height="100%" fill="#fff"/>',
    panel(points, 'agreement', 'agreement with full depth (val)', 0),
    panel(points, 'macroF1', 'macro-F1 (val)', W),
    `<text x="${W}" y="${H - 20}" text-anchor="middle" fill="#555">blue: static truncation at depth 0…L-1 · red: calibrated levels · black: full depth</text>`,
    '</svg>',
  ].join('\n');
}
