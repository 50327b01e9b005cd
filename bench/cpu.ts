// CPU used by each process of a run over a span of time, in cores (CPU seconds ÷ wall
// seconds): the fleet's processes from /proc/<pid>/stat, this process from
// process.cpuUsage(). What a saga costs where, and what was left on the machine's cores.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** The unit of /proc/<pid>/stat's times (USER_HZ): `getconf CLK_TCK`, else 100, which Linux uses everywhere we run. */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      ticksPerSecond = Number.isInteger(n) && n > 0 ? n : 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** The CPU seconds a process has used (user + system, all its threads); undefined when it is gone (or this is not Linux). */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2, the command, is in parentheses and may hold spaces: count from after its ')'.
    // There fields[0] is field 3 (the state), so utime (14) and stime (15) are fields[11] and [12].
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / clockTicks() : undefined;
  } catch {
    return undefined;
  }
}

/** The parent of a process (from /proc/<pid>/status); undefined when it is gone. */
export function parentOf(pid: number): number | undefined {
  try {
    const ppid = /^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return ppid === undefined ? undefined : Number(ppid);
  } catch {
    return undefined;
  }
}

/** This process's own name in the report. */
export const SELF = 'bench';

/**
 * Starts measuring the processes `pids()` names (asked again at the end: a process restarted
 * meanwhile has another pid) and this one; the function returned ends the span and gives
 * each process's cores used over it, to 2 decimals. A process restarted during the span
 * counts only its new pid's CPU (all of it falls inside the span); one whose /proc entry is
 * gone is left out.
 */
export function startCpuMeter(pids: () => ReadonlyMap<string, number>): () => Record<string, number> {
  const began = Date.now();
  const selfBefore = process.cpuUsage();
  const before = new Map<string, { pid: number; seconds: number }>();
  for (const [name, pid] of pids()) {
    const seconds = cpuSecondsOf(pid);
    if (seconds !== undefined) before.set(name, { pid, seconds });
  }
  return () => {
    const wallSeconds = (Date.now() - began) / 1000;
    const cores = (cpuSeconds: number): number => Math.round((cpuSeconds / wallSeconds) * 100) / 100;
    const self = process.cpuUsage(selfBefore);
    const used: Record<string, number> = { [SELF]: cores((self.user + self.system) / 1e6) };
    for (const [name, pid] of pids()) {
      const seconds = cpuSecondsOf(pid);
      if (seconds === undefined) continue;
      const start = before.get(name);
      used[name] = cores(seconds - (start?.pid === pid ? start.seconds : 0));
    }
    return used;
  };
}
