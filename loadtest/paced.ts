// An open-loop load generator: requests leave at evenly spaced instants whatever the responses do
// (no bursts, no coordinated omission: latency counts from the scheduled send time), and the client-
// side latency is what a caller at steady load sees (the Kinvolk/Linkerd benchmark method).
// Prints one JSON line: rps, p50/p99/max (ms), errors, and how many responses each upstream sent.
import { Agent, request } from 'undici';

const [url, rateArg, secondsArg, connArg] = process.argv.slice(2);
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const agent = new Agent({ connections: Number(connArg ?? 64), keepAliveTimeout: 30_000 });
const latencies: number[] = [];
const byUpstream: Record<string, number> = {};
let errors = 0;

async function one(scheduled: number, record: boolean): Promise<void> {
  try {
    const res = await request(url, { dispatcher: agent });
    await res.body.dump();
    if (record) {
      if (res.statusCode >= 400) errors++;
      const u = String(res.headers['x-upstream'] ?? '');
      byUpstream[u] = (byUpstream[u] ?? 0) + 1;
    }
  } catch {
    if (record) errors++;
  }
  if (record) latencies.push(performance.now() - scheduled);
}

const interval = 1000 / rate;
// The first second is not recorded: this process's JIT and its connections warming up would
// otherwise be most of the p99.
const warm = Math.round(rate);
const total = warm + Math.round(rate * seconds);
const start = performance.now();
let measuredFrom = start;
const pending: Promise<void>[] = [];
for (let i = 0; i < total; i++) {
  const at = start + i * interval;
  const wait = at - performance.now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  if (i === warm) measuredFrom = at;
  // Late: latency counts from the scheduled instant (no coordinated omission). Early (timers fire
  // up to 1 ms ahead): from the actual send.
  pending.push(one(Math.min(at, performance.now()), i >= warm));
}
await Promise.all(pending);
const wall = (performance.now() - measuredFrom) / 1000;
latencies.sort((a, b) => a - b);
const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
console.log(JSON.stringify({ rps: latencies.length / wall, p50: q(0.5), p99: q(0.99), max: latencies[latencies.length - 1], errors, byUpstream }));
await agent.close();
