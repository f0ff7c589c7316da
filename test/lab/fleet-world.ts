/**
 * The world of the fleet tests (issue 11): policy hosts for `labels` under `zone` on one lab address
 * (NSD and the HTTPS policy server), a second address whose DNS never answers, and built daemons that
 * share one store. A daemon told to reach `world` learns policies; one told `dead` can only answer what
 * the fleet's store holds.
 */
import { allocateLoopback, releaseLoopback } from './loopback.js';
import { startBlackholeDns, startDnsServer, type BlackholeDns, type DnsRecord, type DnsServer } from './dns-server.js';
import { startPolicyServer, type PolicyServer } from './policy-server.js';
import { freePort, startSidecar, type Sidecar } from './sidecar.js';
import { connectSocketmap, type SocketmapClient } from './socketmap-client.js';

export type Reach = 'world' | 'dead';

export interface FleetWorld {
  readonly zone: string;
  readonly https: PolicyServer;
  readonly dns: DnsServer;
  /** Every daemon started so far, in order. */
  readonly daemons: readonly Sidecar[];
  /** The reply for an enforce policy whose one MX is mx.LABEL.ZONE. */
  secure(label: string): string;
  /**
   * A built daemon whose `cache:` section is `cache` (YAML flow mapping) and whose DNS is the world's or
   * one that never answers; `files` are written beside its config ($DIR).
   */
  daemon(reach: Reach, cache: string, files?: Record<string, string>): Promise<SocketmapClient>;
  /** Stops the daemons, then the servers. Close the store's lab after this. */
  close(): Promise<void>;
}

export async function startFleetWorld(zone: string, labels: readonly string[]): Promise<FleetWorld> {
  const worldAddress = await allocateLoopback();
  const deadAddress = await allocateLoopback();
  let https: PolicyServer | undefined;
  let dns: DnsServer | undefined;
  let blackhole: BlackholeDns | undefined;
  const daemons: Sidecar[] = [];
  const close = async () => {
    for (const d of daemons) await d.stop();
    await dns?.stop();
    await blackhole?.stop();
    await https?.stop();
    releaseLoopback(worldAddress);
    releaseLoopback(deadAddress);
  };
  try {
    https = await startPolicyServer({ address: worldAddress });
    const records: DnsRecord[] = [];
    for (const l of labels) {
      records.push({ name: `_mta-sts.${l}`, type: 'TXT', value: [`v=STSv1; id=${l}`] });
      records.push({ name: `mta-sts.${l}`, type: 'A', value: worldAddress });
      https.setRoute(`mta-sts.${l}.${zone}`, { body: `version: STSv1\nmode: enforce\nmx: mx.${l}.${zone}\nmax_age: 86400\n` });
    }
    dns = await startDnsServer({ address: worldAddress, zones: { [zone]: { records } } });
    blackhole = await startBlackholeDns(deadAddress);
  } catch (err) {
    await close();
    throw err;
  }
  const policyServer = https;
  return {
    zone,
    https: policyServer,
    dns,
    daemons,
    secure: (label) => `OK secure match=mx.${label}.${zone} servername=hostname`,
    async daemon(reach, cache, files = {}) {
      const port = await freePort();
      const sidecar = await startSidecar(
        `
socketmap: { listen: ["tcp:127.0.0.1:${port}"] }
dns: { servers: ["${reach === 'world' ? worldAddress : deadAddress}"], timeout_ms: 500, tries: 1 }
fetch: { ca_file: "$DIR/ca.pem", allow_private_addresses: true, timeout_ms: 3000 }
resolver: { answer_deadline_ms: 1500 }
cache: ${cache}
log: { level: info }
`,
        { 'ca.pem': policyServer.ca.certPem, ...files },
      );
      daemons.push(sidecar);
      return connectSocketmap({ port });
    },
    close,
  };
}
