/**
 * A progress bar on stderr for long conversions and calibrations. On a TTY it redraws one line;
 * otherwise (systemd journal, CI logs) it prints at most one line per 10 %.
 */
export interface Progress {
  tick(label: string): void;
  done(summary?: string): void;
}

export function progressBar(title: string, total: number, stream: NodeJS.WriteStream = process.stderr, quiet = false): Progress {
  let n = 0;
  let lastDecile = -1;
  const start = Date.now();
  const render = (label: string): void => {
    if (quiet) return;
    const frac = total > 0 ? n / total : 1;
    if (stream.isTTY) {
      const width = 24;
      const filled = Math.round(frac * width);
      stream.write(`\r${title} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${n}/${total} ${label}`.padEnd(78).slice(0, 120));
    } else {
      const decile = Math.floor(frac * 10);
      if (decile !== lastDecile) {
        lastDecile = decile;
        stream.write(`${title}: ${n}/${total} ${label}\n`);
      }
    }
  };
  return {
    tick(label: string) {
      n++;
      render(label);
    },
    done(summary?: string) {
      if (quiet) return;
      const secs = ((Date.now() - start) / 1000).toFixed(1);
      // the process's peak memory so far: on a Pi, what a conversion or calibration step needed
      const peak = Math.round(process.resourceUsage().maxRSS / 1024);
      stream.write(`${stream.isTTY ? '\r' : ''}${title}: done in ${secs}s, peak RSS ${peak} MB${summary ? ` — ${summary}` : ''}`.padEnd(stream.isTTY ? 78 : 0) + '\n');
    },
  };
}
