/**
 * The benchmark harness: medians of timed samples for one-shot scenarios (a 1 GiB MAP_DMA), Benchmark.js
 * for throughput (ops/s of the median sample, with Benchmark.js's mean-based figure and relative margin
 * of error beside it), the raw typed-array limit measured in the same run, and the environment each
 * result was measured in.
 *
 * Benchmarks are scripts, not timed tests: nothing here asserts; the report says whether a target was met.
 */
import Benchmark from 'benchmark';
import { cpus, platform, totalmem } from 'node:os';
import { execSync } from 'node:child_process';

/** Where and how a run was measured. */
export interface BenchEnvironment {
  node: string;
  cpu: string;
  cores: number;
  platform: string;
  memoryBytes: number;
  gitSha: string | undefined;
  date: string;
  smoke: boolean;
}

export function environment(smoke: boolean): BenchEnvironment {
  let gitSha: string | undefined;
  try {
    gitSha = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    gitSha = undefined;
  }
  return {
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    platform: platform(),
    memoryBytes: totalmem(),
    gitSha,
    date: new Date().toISOString(),
    smoke,
  };
}

/** Summary of timed samples, in milliseconds. */
export interface Samples {
  medianMs: number;
  minMs: number;
  maxMs: number;
  count: number;
}

/** Runs `prepare` (untimed), times `op`, then `cleanup` (untimed), `count` times after `warmup` rounds. */
export function sample(count: number, warmup: number, op: () => void, prepare?: () => void, cleanup?: () => void): Samples {
  const times: number[] = [];
  for (let i = 0; i < warmup + count; i++) {
    prepare?.();
    const t0 = process.hrtime.bigint();
    op();
    const t1 = process.hrtime.bigint();
    cleanup?.();
    if (i >= warmup) times.push(Number(t1 - t0) / 1e6);
  }
  return summarize(times);
}

export function summarize(times: number[]): Samples {
  const sorted = [...times].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { medianMs: median, minMs: sorted[0]!, maxMs: sorted[sorted.length - 1]!, count: sorted.length };
}

/** Throughput of `fn` measured by Benchmark.js. */
export interface Throughput {
  /** Operations per second of the median sample (the issues ask for medians). */
  hz: number;
  /** Benchmark.js's own figure: operations per second of the mean sample, which a slow outlier drags. */
  meanHz: number;
  rmePercent: number;
  samples: number;
}

export function throughput(name: string, fn: () => void, maxTimeSeconds: number): Throughput {
  const bench = runBenchmark(name, fn, maxTimeSeconds);
  return { ...rates(bench.stats.sample), rmePercent: bench.stats.rme };
}

/** One function of `interleavedThroughput`. */
export interface NamedOp {
  name: string;
  fn: () => void;
}

/**
 * Throughput of functions whose figures are compared by a ratio, measured in alternation: `rounds`
 * rounds, each running every function for `maxTimeSeconds / rounds` seconds (Benchmark.js), and each
 * figure the median of all that function's samples. Both sides of the ratio are then sampled across
 * the same stretch of time, so a slow phase of a shared host falls on both sides, not on one.
 * `rmePercent` is the 95 % margin of the mean over all samples (normal approximation).
 */
export function interleavedThroughput(ops: readonly NamedOp[], maxTimeSeconds: number, rounds: number): Throughput[] {
  const periods: number[][] = ops.map(() => []);
  for (let r = 0; r < rounds; r++) {
    ops.forEach((op, i) => periods[i]!.push(...runBenchmark(op.name, op.fn, maxTimeSeconds / rounds).stats.sample));
  }
  return periods.map((p) => {
    const mean = p.reduce((a, b) => a + b, 0) / p.length;
    const sd = Math.sqrt(p.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, p.length - 1));
    return { ...rates(p), rmePercent: ((1.96 * sd) / Math.sqrt(p.length) / mean) * 100 };
  });
}

function runBenchmark(name: string, fn: () => void, maxTimeSeconds: number): Benchmark {
  // Benchmark.js decompiles `fn` unless told not to; closures over local state need the plain call.
  const bench = new Benchmark(name, fn, { maxTime: maxTimeSeconds, minSamples: 5, initCount: 1 });
  (bench as unknown as { options: { defer: boolean } }).options.defer = false;
  bench.run({ async: false });
  if (bench.error !== undefined) throw bench.error;
  return bench;
}

/** Rates of Benchmark.js samples (each one cycle's seconds per operation): of the median, and of the mean. */
function rates(sample: readonly number[]): { hz: number; meanHz: number; samples: number } {
  const periods = [...sample].sort((x, y) => x - y);
  const mid = periods.length >>> 1;
  const median = periods.length % 2 === 1 ? periods[mid]! : (periods[mid - 1]! + periods[mid]!) / 2;
  const mean = periods.reduce((a, b) => a + b, 0) / periods.length;
  return { hz: 1 / median, meanHz: 1 / mean, samples: periods.length };
}

/** The raw limit: a plain typed-array loop storing `entries` page-table-like entries. */
export function rawStore(entries: number, count: number): Samples {
  const table = new Float64Array(entries);
  let sink = 0;
  const result = sample(count, 3, () => {
    for (let i = 0; i < entries; i++) table[i] = i * 4 + 3;
    sink += table[entries - 1]!;
  });
  if (sink === -1) console.log(sink); // keeps the stores observable
  return result;
}

/** Heap plus array buffers after a full gc (needs --expose-gc). */
export function memoryAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
