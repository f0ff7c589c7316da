// The real-Postfix delivery cases (delivery-cases.ts) with Postfix 3.11.6, built from vendor/postfix into
// .cache by scripts/postfix-lab.sh (scripts/test runs it first): the TLSRPT attributes parsed, and the
// MTA-STS MX patterns enforced by Postfix itself (>= 3.10.5).
import { deliveryCases } from './delivery-cases.js';
import { labPostfix } from './postfix.js';

deliveryCases(labPostfix());
