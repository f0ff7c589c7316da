/** The checklist `mta-sts-sidecar check DOMAIN` walks, as plain data (what `--json` prints). */

/** pass: nothing to do. warn: works, but worth fixing. fail: senders will not (or soon will not) deliver. */
export type Status = 'pass' | 'warn' | 'fail';

/** Step ids are part of the `--json` output: do not rename. docs/check.md describes each. */
export type StepId =
  | 'txt'
  | 'tlsrpt'
  | 'policy-host-dns'
  | 'policy-host-tls'
  | 'policy-host-http'
  | 'policy'
  | 'mx-records'
  | 'mx-covered'
  | 'mx-dns'
  | 'mx-starttls'
  | 'mx-certificate'
  | 'mx-tls-version'
  | 'dane'
  | 'mx-tlsa'
  | 'mx-tlsa-match';

export interface Step {
  id: StepId;
  /** Human name of the step, without the MX or address. */
  title: string;
  /** The MX host the step is about (mx-* steps after mx-records). */
  mx?: string;
  /** The MX address probed (mx-starttls, mx-certificate, mx-tls-version). */
  address?: string;
  status: Status;
  /** What was found, in one sentence. */
  reason: string;
  /** What to do about it; present on warn and fail. */
  fix?: string;
  /** Facts behind the verdict (record text, addresses, certificate dates ...). */
  details?: Record<string, unknown>;
}

export type CheckEvent = { type: 'progress'; message: string } | { type: 'step'; step: Step };

export interface CheckReport {
  domain: string;
  /** The worst status of any step. */
  status: Status;
  counts: Record<Status, number>;
  steps: Step[];
  /** The next rollout step(s), most important first. */
  advice: string[];
}
