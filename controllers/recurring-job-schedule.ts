// When a RecurringJob runs: its cron (5 fields, or 6 with seconds first) evaluated in UTC with
// cron-parser. The schedule is derived from status alone — the next run is the first tick after the
// last run (or after the job was created) — so a changed cron takes effect at once, and a job whose
// ticks passed while the manager was down runs once when it is back, not once per missed tick.
import { CronExpressionParser } from 'cron-parser';

export interface CronSchedule {
  expression: string;
  /** The first tick strictly after `after`. Throws if the expression never fires (e.g. 30 February). */
  nextAfter(after: Date): Date;
}

export class CronError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CronError';
  }
}

/**
 * Parses a cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds
 * first, or one of cron-parser's `@hourly`-style names. cron-parser itself takes fewer fields (and the
 * empty string) by filling in defaults; a typo there would quietly mean "every minute", so the field
 * count is checked here.
 */
export function parseCron(expression: string): CronSchedule {
  const expr = expression.trim();
  const fields = expr === '' ? [] : expr.split(/\s+/);
  if (!expr.startsWith('@') && fields.length !== 5 && fields.length !== 6) {
    throw new CronError(
      `invalid cron ${JSON.stringify(expression)}: expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got ${fields.length}`,
    );
  }
  try {
    // Parsed once to report errors now rather than at the first tick.
    CronExpressionParser.parse(expr, { tz: 'UTC', currentDate: new Date(0) });
  } catch (err) {
    throw new CronError(`invalid cron ${JSON.stringify(expression)}: ${(err as Error).message}`, { cause: err });
  }
  return {
    expression: expr,
    nextAfter(after: Date): Date {
      try {
        return CronExpressionParser.parse(expr, { tz: 'UTC', currentDate: after }).next().toDate();
      } catch (err) {
        throw new CronError(`cron ${JSON.stringify(expression)} has no next run: ${(err as Error).message}`, {
          cause: err,
        });
      }
    },
  };
}

export interface SchedulePlan {
  /** A tick has passed since the last run (or since the job was created): run now. */
  due: boolean;
  /** The run after this one if `due`, else the coming one. */
  next: Date;
}

/**
 * `lastRunAt` and `createdAt` are ISO times ('' when unknown). Every missed tick collapses into the one
 * run `due` asks for: after it, lastRunAt is `now` and the next tick is counted from there.
 */
export function planSchedule(cron: CronSchedule, lastRunAt: string, createdAt: string, now: Date): SchedulePlan {
  const basis = Date.parse(lastRunAt || createdAt);
  if (!Number.isFinite(basis) || basis > now.getTime()) return { due: false, next: cron.nextAfter(now) };
  const first = cron.nextAfter(new Date(basis));
  if (first.getTime() <= now.getTime()) return { due: true, next: cron.nextAfter(now) };
  return { due: false, next: first };
}
