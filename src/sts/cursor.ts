/**
 * Helpers for the small sticky-regex parsers of DNS TXT records (RFC 8461 §3.1, RFC 8460 §3): each
 * grammar rule is a sticky RegExp tried at an offset.
 */

/** End offset of a match of the sticky `re` at `at`, or undefined. */
export function match(re: RegExp, text: string, at: number): number | undefined {
  re.lastIndex = at;
  return re.test(text) ? re.lastIndex : undefined;
}

/** The (possibly empty) run of characters the sticky `re` accepts at `at`. */
export function scan(re: RegExp, text: string, at: number): string {
  re.lastIndex = at;
  return re.exec(text)?.[0] ?? '';
}

/** A bounded, escaped rendering of untrusted input for error messages. */
export function show(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}
