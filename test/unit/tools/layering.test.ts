/**
 * The `vfio-sim/layering` ESLint rule (tools/eslint/layering.js) enforces DESIGN.md §1's import table.
 * Each case lints one line of code as if it were a file at the given path in the repository.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { Linter, type Rule } from 'eslint';
import tseslint from 'typescript-eslint';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const layering = createRequire(__filename)(path.join(ROOT, 'tools', 'eslint', 'layering.js')) as Rule.RuleModule;

const linter = new Linter({ cwd: ROOT });
const CONFIG: Linter.Config[] = [
  {
    files: ['**/*.ts'],
    languageOptions: { parser: tseslint.parser as Linter.Parser, sourceType: 'module' },
    plugins: { 'vfio-sim': { rules: { layering } } },
    rules: { 'vfio-sim/layering': 'error' },
  },
];

/** The layering messages for `code` placed at `file` (relative to the repository root). */
function lint(file: string, code: string): string[] {
  return linter
    .verify(code, CONFIG, { filename: path.join(ROOT, file) })
    .map((m) => {
      if (m.ruleId !== 'vfio-sim/layering') throw new Error(`unexpected lint message: ${m.message}`);
      return m.message;
    });
}

describe('forbidden imports are reported', () => {
  test.each([
    // uapi/ imports nothing.
    ['uapi/vfio.ts', "import { Kernel } from '../kernel-sim/kernel';"],
    ['uapi/vfio.ts', "import { Kernel } from '../kernel-sim';"],
    ['uapi/vfio.ts', "import type { Kernel } from '../kernel-sim/kernel';"],
    ['uapi/vfio.ts', "export { Kernel } from '../kernel-sim/kernel';"],
    ['uapi/vfio.ts', "export * from '../containers';"],
    // kernel-sim/ imports only uapi/.
    ['kernel-sim/kernel.ts', "import { VfioContainer } from '../containers/vfio-container';"],
    ['kernel-sim/mm/phys-mem.ts', "import { vfioModule } from '../../containers';"],
    ['kernel-sim/kernel.ts', "import { VfioGroup } from '../userspace';"],
    ['kernel-sim/kernel.ts', "import * as sim from '..';"],
    ['kernel-sim/kernel.ts', "const c = require('../containers/vfio-container');"],
    ['kernel-sim/kernel.ts', "const c = import('../containers/vfio-container');"],
    // userspace/ reaches kernel-sim/ only through its barrel, and never containers/.
    ['userspace/vfio-group.ts', "import { Process } from '../kernel-sim/process';"],
    ['userspace/vfio-group.ts', "import { AddressSpace } from '../kernel-sim/mm/address-space';"],
    ['userspace/vfio-group.ts', "import { VfioGroup } from '../containers/vfio-group';"],
    ['userspace/vfio-group.ts', "import { VfioGroup } from '../containers';"],
    // virtio-iommu/ never imports containers/, and kernel-sim/ only through its barrel.
    ['virtio-iommu/endpoint.ts', "import { VfioContainer } from '../containers/vfio-container';"],
    ['virtio-iommu/endpoint.ts', "import { registerIommuBackend } from '../containers';"],
    ['virtio-iommu/endpoint.ts', "import { Kernel } from '../kernel-sim/kernel';"],
    // bench/, cli/, examples/ use index.ts (and the uapi barrel) only.
    ['bench/map.bench.ts', "import { Kernel } from '../kernel-sim';"],
    ['bench/map.bench.ts', "import { Kernel } from '../kernel-sim/kernel';"],
    ['bench/map.bench.ts', "import { TYPE1_BACKEND } from '../containers/backends/type1/type1-backend';"],
    ['bench/map.bench.ts', "import { VfioContainer } from '../userspace';"],
    ['bench/map.bench.ts', "import { VFIO_IOMMU_MAP_DMA } from '../uapi/vfio';"],
    ['cli/main.ts', "import { Kernel } from '../kernel-sim';"],
    ['examples/new-type.ts', "import { BackendRegistry } from '../containers/backend';"],
    // containers/ does not import userspace/ or the package root; type1 and type2 never import each other.
    ['containers/vfio-group.ts', "import { VfioGroup } from '../userspace/vfio-group';"],
    ['containers/vfio-module.ts', "import { Kernel } from '../index';"],
    ['containers/backends/type1/map-dma.ts', "import { WindowedIommu } from '../type2/windowed-iommu';"],
    ['containers/backends/type2/map-dma.ts', "import { Type1Iommu } from '../type1/type1-iommu';"],
    ['containers/backends/type2/map-dma.ts', "import { Type1Iommu } from '../type1';"],
    // msi/ sits below containers/.
    ['msi/its.ts', "import { VfioContainer } from '../containers/vfio-container';"],
    // The package root re-exports layers only through their barrels.
    ['index.ts', "export { Kernel } from './kernel-sim/kernel';"],
  ])('%s: %s', (file, code) => {
    expect(lint(file, code)).toHaveLength(1);
  });

  test('the message names both layers and the reason', () => {
    expect(lint('uapi/vfio.ts', "import { Kernel } from '../kernel-sim/kernel';")).toEqual([
      "'uapi/' may not import '../kernel-sim/kernel' (uapi/ may not depend on kernel-sim/); see DESIGN.md §1",
    ]);
    expect(lint('userspace/vfio-group.ts', "import { Process } from '../kernel-sim/process';")).toEqual([
      "'userspace/' may not import '../kernel-sim/process' (only kernel-sim/index.ts is public to userspace/); see DESIGN.md §1",
    ]);
    expect(lint('containers/backends/type1/map-dma.ts', "import { x } from '../type2/x';")).toEqual([
      "'containers/' may not import '../type2/x' (backends share code only through backends/common/); see DESIGN.md §1",
    ]);
  });

  test('every forbidden import of a file is reported, allowed ones beside them are not', () => {
    const code = ["import { readU32 } from '../uapi';", "import { Process } from '../kernel-sim/process';", "import { Kernel } from '../kernel-sim';", "import { VfioGroup } from '../containers';"].join('\n');
    expect(lint('userspace/vfio-device.ts', code)).toHaveLength(2);
  });
});

describe('allowed imports are not reported', () => {
  test.each([
    ['uapi/vfio.ts', "import { field } from './codec';"],
    ['uapi/vfio.ts', "import * as path from 'node:path';"],
    ['kernel-sim/kernel.ts', "import { ERRNO } from '../uapi/errno';"],
    ['kernel-sim/kernel.ts', "import * as uapi from '../uapi';"],
    ['kernel-sim/mm/phys-mem.ts', "import { SimBugError } from '../errors';"],
    ['msi/its.ts', "import { Kernel } from '../kernel-sim/kernel';"],
    ['containers/vfio-group.ts', "import type { IommuGroup } from '../kernel-sim/iommu/iommu-group';"],
    ['containers/vfio-group.ts', "import { VFIO_GROUP_GET_STATUS } from '../uapi/vfio';"],
    ['containers/vfio-group.ts', "import { ItsDoorbell } from '../msi/its';"],
    ['containers/backends/type1/map-dma.ts', "import { fitsOneRange } from '../common/iova-ranges';"],
    ['containers/backends/type1/map-dma.ts', "import { copyIn } from '../../user-arg';"],
    ['containers/backends/type1/map-dma.ts', "import { Type1Iommu } from './type1-iommu';"],
    ['containers/backends/type2/map-dma.ts', "import { DmaTree } from '../common/dma-tree';"],
    ['userspace/vfio-group.ts', "import type { Process } from '../kernel-sim';"],
    ['userspace/vfio-group.ts', "import { Process } from '../kernel-sim/index';"],
    ['userspace/vfio-group.ts', "import { VfioGroupStatus } from '../uapi/vfio-structs';"],
    ['virtio-iommu/endpoint.ts', "import { VfioContainer } from '../userspace/vfio-container';"],
    ['virtio-iommu/endpoint.ts', "import { Process } from '../kernel-sim';"],
    ['virtio-iommu/endpoint.ts', "import { VIRTIO_IOMMU_S_OK } from '../uapi';"],
    ['bench/map.bench.ts', "import { Kernel } from '..';"],
    ['bench/map.bench.ts', "import { Kernel } from '../index';"],
    ['bench/map.bench.ts', "import * as uapi from '../uapi';"],
    ['bench/map.bench.ts', "import { report } from './report';"],
    ['cli/main.ts', "import { Kernel } from '../index';"],
    ['examples/new-type.ts', "import { registerIommuBackend } from '..';"],
    ['index.ts', "import { Kernel } from './kernel-sim';"],
    ['index.ts', "export * as uapi from './uapi';"],
    ['index.ts', "export { VfioContainer } from './userspace';"],
    // Tests and tools may import anything.
    ['test/unit/x.test.ts', "import { PhysMemory } from '../../kernel-sim/mm/phys-mem';"],
    ['test/unit/x.test.ts', "import { Type1Iommu } from '../../containers/backends/type1/type1-iommu';"],
  ])('%s: %s', (file, code) => {
    expect(lint(file, code)).toEqual([]);
  });
});
