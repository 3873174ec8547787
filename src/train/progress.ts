/** Progress: a redrawn bar on a TTY (step, loss, images/s, ETA), plain lines otherwise. */
export class Progress {
  private readonly tty: boolean;
  private readonly t0 = performance.now();
  private startStep = -1;
  private last = 0;

  constructor(
    private readonly total: number,
    private readonly opts: { quiet?: boolean } = {},
  ) {
    this.tty = Boolean(process.stderr.isTTY) && !opts.quiet;
  }

  private eta(step: number): string {
    if (this.startStep < 0) return '?';
    const rate = (step - this.startStep) / ((performance.now() - this.t0) / 1000);
    if (!(rate > 0)) return '?';
    const s = Math.round((this.total - step) / rate);
    return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  }

  update(step: number, info: { loss: number; ips: number }): void {
    if (this.startStep < 0) this.startStep = step - 1;
    if (!this.tty) return;
    const now = performance.now();
    if (now - this.last < 200 && step !== this.total) return;
    this.last = now;
    const width = 24;
    const filled = Math.round((width * step) / this.total);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    process.stderr.write(
      `\r${bar} ${step}/${this.total} loss ${info.loss.toFixed(4)} ${info.ips.toFixed(0)} img/s ETA ${this.eta(step)}   `,
    );
  }

  line(step: number, text: string): void {
    if (this.opts.quiet) return;
    const prefix = this.tty ? '\r\x1b[K' : '';
    process.stderr.write(`${prefix}[step ${step}/${this.total}] ${text} (ETA ${this.eta(step)})\n`);
  }

  done(): void {
    if (this.tty) process.stderr.write('\n');
  }
}
