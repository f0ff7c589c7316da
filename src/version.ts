/**
 * The version, from package.json alone: the CLI's --version, the fetch User-Agent and the Debian
 * package (whose build checks debian/changelog against the same file) never disagree.
 */
import { readFileSync } from 'node:fs';

/** dist/version.js and src/version.ts both sit one folder below package.json (the .deb installs it there too). */
const PACKAGE_JSON = new URL('../package.json', import.meta.url);

/** Replaced by package.json's version in the bundle (scripts/bundle.mjs), which sits elsewhere. */
declare const __PACKAGE_VERSION__: string | undefined;

export const VERSION: string =
  typeof __PACKAGE_VERSION__ === 'string' ? __PACKAGE_VERSION__ : (JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }).version;
