/**
 * Postfix 3.10+'s reading of an smtp_tls_policy_maps result, written from its source (3.11.6,
 * src/smtp/smtp_tls_policy.c tls_policy_lookup_one, src/util/mystrtok.c mystrtokq, src/util/extpar.c,
 * src/util/split_nameval.c) so unit tests can check every reply we write the way Postfix will: tokens
 * split at ", \t\r\n" outside braces, a `{...}` token unwrapped (braces balanced, nothing after the
 * closing one), blanks stripped and white space normalised, then `name = value`. The real Postfix 3.11
 * reads our replies in the Postfix 3.11 lab; this is for tables.
 */
const SEPARATORS = ', \t\r\n';
const SPACE = /[ \t\r\n\v\f]/;

/** The level and the attributes, or the error Postfix would log ("malformed attribute/value pair"). */
export function readPostfixPolicy(value: string): { level: string; attributes: Array<[string, string]> } | { error: string } {
  const tokens = tokensOf(value);
  const level = tokens.shift();
  if (level === undefined) return { error: 'invalid empty policy' };
  const attributes: Array<[string, string]> = [];
  for (let tok of tokens) {
    if (tok.startsWith('{')) {
      const len = balancedLength(tok);
      if (len === 0) return { error: `missing '}' in "${tok}"` };
      if (len !== tok.length) return { error: `syntax error after '}' in "${tok}"` };
      // EXTPAR_FLAG_STRIP | EXTPAR_FLAG_NORMAL_WS
      tok = tok.slice(1, -1).replace(/^[ \t\r\n\v\f]+|[ \t\r\n\v\f]+$/g, '').replace(/[ \t\r\n\v\f]/g, ' ');
    }
    const pair = splitNameValue(tok);
    if ('error' in pair) return { error: `malformed attribute/value pair "${tok}": ${pair.error}` };
    attributes.push([pair.name, pair.value]);
  }
  return { level, attributes };
}

/** mystrtokq(&policy, CHARS_COMMA_SP, CHARS_BRACE), repeated. */
function tokensOf(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    while (i < s.length && SEPARATORS.includes(s[i]!)) i++;
    if (i >= s.length) return out;
    const start = i;
    let level = 0;
    for (; i < s.length; i++) {
      const c = s[i]!;
      if (c === '{') level++;
      else if (level > 0 && c === '}') level--;
      else if (level === 0 && SEPARATORS.includes(c)) break;
    }
    out.push(s.slice(start, i));
  }
}

/** balpar(): the length of the leading balanced `{...}`, or 0. */
function balancedLength(s: string): number {
  let level = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '{') level++;
    else if (s[i] === '}' && --level === 0) return i + 1;
  }
  return 0;
}

function splitNameValue(s: string): { name: string; value: string } | { error: string } {
  let i = 0;
  while (i < s.length && SPACE.test(s[i]!)) i++;
  if (i === s.length || s[i] === '=') return { error: 'missing attribute name' };
  const start = i;
  while (i < s.length && !SPACE.test(s[i]!) && s[i] !== '=') i++;
  const name = s.slice(start, i);
  while (i < s.length && SPACE.test(s[i]!)) i++;
  if (s[i] !== '=') return { error: "missing '=' after attribute name" };
  return { name, value: s.slice(i + 1).replace(/^[ \t\r\n\v\f]+|[ \t\r\n\v\f]+$/g, '') };
}

/**
 * Postfix's `match=` (postconf(5) smtp_tls_secure_cert_match): a name matches itself, `.example.net`
 * every name below example.net (any depth). Does the list let `host` through?
 */
export function postfixMatchAllows(matches: string[], host: string): boolean {
  return matches.some((m) => (m.startsWith('.') ? host.endsWith(m) && host.length > m.length : host === m));
}
