// Durations in config are strings such as "250ms", "5s", "1m", "2h" (or a bare number of ms).
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
export const DURATION_PATTERN = '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$';
const DURATION_RE = new RegExp(DURATION_PATTERN);

export function parseDuration(value: string | number): number {
  if (typeof value === 'number') return value;
  const m = DURATION_RE.exec(value);
  if (m === null) throw new TypeError(`not a duration: ${value}`);
  const unit = m[2];
  return Math.round(parseFloat(value) * UNIT_MS[unit]);
}
