/**
 * `npm run bench`: runs the benchmark scenarios, prints a table, and writes the results with the
 * environment they were measured in to bench/results/ (JSON).
 *
 *   npm run bench               all scenarios, full sizes
 *   npm run bench -- --smoke    every scenario at small sizes (CI)
 *   npm run bench -- --only=map-1g-4k,map-unmap-pair
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { table } from 'table';
import { environment } from './harness';
import { entryLimit, guest64g, mapHuge2M, mapScattered, mapUnmapPair, round, type ScenarioResult } from './type1-scenarios';
import { msiDelivery } from './msi-scenarios';
import { mapWindows, setWindows256 } from './type2-scenarios';
import { viommuNic, viommuPairsEmulated, viommuPairsType2, viommuPairsVfio } from './virtio-iommu-scenarios';

/** Scenario groups by name; a group may report several results. */
const SCENARIOS: Record<string, (smoke: boolean) => ScenarioResult | ScenarioResult[]> = {
  'map-1g-4k': mapScattered,
  'map-1g-2m': mapHuge2M,
  'map-unmap-pair': mapUnmapPair,
  'entries-65535': entryLimit,
  'guest-64g-4k': guest64g,
  'map-window': mapWindows,
  'set-windows-256': setWindows256,
  msi: msiDelivery,
  'viommu-pairs-emulated': viommuPairsEmulated,
  'viommu-pairs-vfio': viommuPairsVfio,
  'viommu-pairs-type2': viommuPairsType2,
  'viommu-nic': viommuNic,
};

function main(argv: string[]): void {
  const smoke = argv.includes('--smoke');
  const only = argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
  const names = Object.keys(SCENARIOS).filter((n) => only === undefined || only.includes(n));
  const env = environment(smoke);
  console.log(`vfio-sim benchmarks — node ${env.node}, ${env.cpu} × ${env.cores}${smoke ? ' (smoke run: small sizes, no targets)' : ''}`);
  const results: ScenarioResult[] = [];
  for (const name of names) {
    process.stdout.write(`  ${name} ...`);
    const produced = SCENARIOS[name]!(smoke);
    const list = Array.isArray(produced) ? produced : [produced];
    results.push(...list);
    process.stdout.write(` ${list.map((r) => `${fmt(r.value)} ${r.unit}`).join(', ')}\n`);
  }
  const rows = [
    ['scenario', 'figure', 'raw limit (same run)', 'ratio', 'modelled', 'target', 'met', 'details'],
    ...results.map((r) => [
      `${r.name}\n${r.what}`,
      `${fmt(r.value)} ${r.unit}`,
      r.raw === undefined ? '' : fmt(r.raw),
      r.ratio === undefined ? '' : `${round(r.ratio, 1)}×`,
      r.modelledMs === undefined ? '' : `${fmt(r.modelledMs)} ms`,
      r.target ?? '',
      r.met === undefined ? '' : r.met ? 'yes' : 'NO',
      Object.entries(r.details).map(([k, v]) => `${k}=${typeof v === 'number' ? fmt(v) : v}`).join('\n'),
    ]),
  ];
  console.log(table(rows, { columns: { 0: { width: 34, wrapWord: true }, 5: { width: 22, wrapWord: true }, 7: { width: 30 } } }));
  const dir = join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${env.date.replace(/[:.]/g, '-')}.json`);
  const json = JSON.stringify({ environment: env, results }, null, 2);
  writeFileSync(file, json);
  writeFileSync(join(dir, smoke ? 'latest-smoke.json' : 'latest.json'), json);
  console.log(`results: ${file}`);
}

function fmt(value: number): string {
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(3);
}

main(process.argv.slice(2));
