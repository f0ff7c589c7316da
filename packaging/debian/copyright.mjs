// Writes debian/copyright (machine-readable format 1.0) for what the binary package ships: our code,
// and every npm package in the pruned production node_modules, each with the license text it ships.
// Run by debian/rules after `npm prune --omit=dev`; fails when a bundled package has no license file
// and no license that Debian's common-licenses covers, so nothing is shipped without its terms.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = process.cwd();
const nm = join(root, 'node_modules');
const COMMON = { 'Apache-2.0': 'Apache-2.0' };
const SHORT = { MIT: 'Expat' }; // DEP-5 short names
const spdx = (expr) =>
  expr.replace(/[()]/g, '').split(/\s+OR\s+/).map((s) => SHORT[s.trim()] ?? s.trim()).join(' or ');

const packages = [];
for (const name of readdirSync(nm).sort()) {
  if (name.startsWith('.')) continue;
  if (name.startsWith('@')) for (const sub of readdirSync(join(nm, name)).sort()) packages.push(`${name}/${sub}`);
  else packages.push(name);
}

const indent = (text) =>
  text.replace(/\r\n?/g, '\n').replace(/\s+$/, '').split('\n').map((l) => (l.trim() === '' ? ' .' : ` ${l.replace(/\s+$/, '')}`)).join('\n');

const out = [];
out.push(`Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mta-sts-sidecar
Comment: The package bundles the npm packages listed below (its production dependencies, as
 resolved by package-lock.json) under /usr/lib/mta-sts-sidecar/node_modules. better-sqlite3 is
 compiled with the SQLite amalgamation that it vendors.

Files: *
Copyright: mta-sts-sidecar maintainers
License: Expat
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
 THE SOFTWARE.`);

const missing = [];
for (const name of packages) {
  const dir = join(nm, name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const files = readdirSync(dir).filter((f) => /^(licen[cs]e|copying)/i.test(f)).sort();
  const texts = files.map((f) => readFileSync(join(dir, f), 'utf8'));
  // Some packages (pg-types, pgpass) ship their license only as the README's last section.
  if (texts.length === 0) {
    const readme = readdirSync(dir).find((f) => /^readme(\.md)?$/i.test(f));
    const m = readme ? /^#+\s*licen[cs]e\s*$([\s\S]*)/im.exec(readFileSync(join(dir, readme), 'utf8')) : null;
    if (m && /Permission is hereby granted/.test(m[1])) texts.push(m[1].trim());
  }
  const holders = [...new Set(texts.flatMap((t) => t.split('\n').filter((l) => /^\s*copyright\s*(\(c\)|©|\d)/i.test(l)).map((l) => l.trim())))];
  const author = typeof pkg.author === 'string' ? pkg.author : pkg.author?.name;
  const copyright = holders.length ? holders : [author ? `${author}` : `the ${name} authors`];
  const license = spdx(pkg.license ?? 'UNKNOWN');
  const stanza = [`Files: node_modules/${name}/*`, `Copyright: ${copyright.join('\n ')}`];
  if (COMMON[pkg.license]) {
    stanza.push(`License: ${license}`, ` On Debian systems the full text of the ${pkg.license} license is in`, ` /usr/share/common-licenses/${COMMON[pkg.license]}.`);
  } else if (texts.length) {
    stanza.push(`License: ${license}`, indent(texts.join('\n\n')));
  } else {
    missing.push(`${name} (${pkg.license})`);
    continue;
  }
  if (name === 'better-sqlite3') {
    stanza.push('', 'Files: node_modules/better-sqlite3/deps/sqlite3/*', 'Copyright: none (public domain)', 'License: public-domain',
      indent(readFileSync(join(root, 'debian/sqlite-blessing.txt'), 'utf8')));
  }
  out.push(stanza.join('\n'));
}
if (missing.length) {
  process.stderr.write(`copyright.mjs: no license text for: ${missing.join(', ')}\n`);
  process.exit(1);
}
process.stdout.write(out.join('\n\n') + '\n');
