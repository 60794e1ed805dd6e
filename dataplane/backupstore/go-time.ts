// Longhorn stamps its configs with util.Now(): time.Now().UTC().Format(time.RFC3339), whole seconds and
// a 'Z'. Writing the same shape keeps the files comparable and sortable alongside Longhorn's.

export function goNow(date: Date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Milliseconds since the epoch for an RFC 3339 time, or undefined when it is empty or unparsable. */
export function parseGoTime(text: string): number | undefined {
  if (text === '') return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}
