// The real-Postfix delivery cases (delivery-cases.ts) with the host's Postfix: Debian 12's 3.7.
import { deliveryCases } from './delivery-cases.js';
import { hostPostfix } from './postfix.js';

deliveryCases(hostPostfix());
