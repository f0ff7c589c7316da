// The real-Postfix delivery cases (delivery-cases.ts) with Debian 13's own Postfix (3.10.13 in trixie),
// run in scripts/trixie-lab.sh's tree (trixie-postfix.ts). The daemon finds that Postfix's postconf first
// on its PATH, so the default zone's `tlsrpt: auto` turns the TLSRPT attributes on, and Postfix >= 3.10.5
// enforces the MTA-STS MX patterns itself: Debian 13 exact with the default settings (issue 15).
import { afterAll } from 'vitest';
import { deliveryCases } from './delivery-cases.js';
import { trixiePostfix } from './trixie-postfix.js';

const trixie = await trixiePostfix();
// Registered first, so it runs last (hooks run as a stack): after the cases have stopped their Postfix.
afterAll(() => trixie.close(), 60_000);

deliveryCases(trixie.install);
