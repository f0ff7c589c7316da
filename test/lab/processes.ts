/**
 * Processes a test started and everything they forked, read from /proc. Each is identified by pid and
 * start time, so a pid recycled after the process died is never mistaken for it (and never signalled).
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcId {
  pid: number;
  start: string;
}

/** pid, ppid, state, starttime from /proc/<pid>/stat; null if gone. */
export function procStat(pid: number): { ppid: number; state: string; start: string } | null {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    return { state: f[0] ?? '', ppid: Number(f[1]), start: f[19] ?? '' };
  } catch {
    return null;
  }
}

/** The processes whose parent is `pid`, from /proc (a postmaster's backends, the daemon runuser forked). */
export function childrenOf(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  return entries.map(Number).filter((p) => procStat(p)?.ppid === pid);
}

/** Everything `root` forked, breadth first, at most `limit` processes (root itself not included). */
export function descendants(root: number, limit = 256): ProcId[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  const byParent = new Map<number, ProcId[]>();
  for (const e of entries) {
    const st = procStat(Number(e));
    if (!st) continue;
    const list = byParent.get(st.ppid) ?? [];
    list.push({ pid: Number(e), start: st.start });
    byParent.set(st.ppid, list);
  }
  const out: ProcId[] = [];
  const queue = [root];
  for (let i = 0; i < queue.length && out.length < limit; i++) {
    for (const k of byParent.get(queue[i]!) ?? []) {
      out.push(k);
      queue.push(k.pid);
    }
  }
  return out;
}

/** `root` and everything it forked; empty when root is gone. */
export function processTree(root: number): ProcId[] {
  const rootStat = procStat(root);
  return rootStat ? [{ pid: root, start: rootStat.start }, ...descendants(root)] : [];
}

/** Still the same process, and not a zombie. */
export function alive(p: ProcId): boolean {
  const st = procStat(p.pid);
  return st !== null && st.start === p.start && st.state !== 'Z';
}
