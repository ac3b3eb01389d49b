/**
 * Machine presets: which IOMMU units the machine has, what each can do, which IOVA regions the platform
 * reserves, and whether MSIs are isolated (interrupt remapping or an MSI-isolating irq domain).
 *
 * Presets (DESIGN.md §2):
 * - `x86-vtd`: Intel VT-d second-level tables, 4K|2M|1G (0x40201000), 48-bit aperture, the interrupt
 *   range 0xFEE00000–0xFEEFFFFF reserved as IOMMU_RESV_MSI, interrupt remapping on.
 * - `x86-vtd-no-ir`: the same without interrupt remapping, to exercise allow_unsafe_interrupts.
 * - `arm-smmuv3`: SMMUv3 stage-1 tables with a 4K granule (0x40201000), 48-bit aperture, the software
 *   MSI window 0x8000000 + 1 MiB (IOMMU_RESV_SW_MSI, MSI_IOVA_BASE/LENGTH), ITS MSI isolation.
 * Windowed (PAMU) presets join in the windowed model's issue.
 */
import type { IommuHardware, ReservedRegion } from './iommu/iommu-domain';
import type { PhysMemoryOptions } from './mm/phys-mem';

/** A page-table IOMMU unit (the paged hardware model). */
export interface PagedIommuUnitSpec {
  readonly model: 'paged';
  /** Driver name, e.g. 'intel-vtd'. */
  readonly name: string;
  readonly pgsizeBitmap: bigint;
  /** Input address bits: the aperture is [0, 2^ias - 1]. */
  readonly ias: number;
  readonly iotlbEntries: number;
  readonly enforceCacheCoherency: boolean;
}

/** Any other hardware model: the kernel calls `create` once per machine. */
export interface CustomIommuUnitSpec {
  readonly model: 'custom';
  readonly name: string;
  create(): IommuHardware;
}

/** One IOMMU unit and what the platform says about the devices behind it. */
export type IommuUnitSpec = (PagedIommuUnitSpec | CustomIommuUnitSpec) & {
  /** Regions reserved for every group behind this unit. */
  readonly reservedRegions: readonly ReservedRegion[];
  /** MSI writes from these devices are isolated (interrupt remapping / ITS). */
  readonly isolatedMsi: boolean;
};

/** A whole machine. */
export interface MachineSpec {
  readonly name: string;
  readonly description: string;
  /** The first unit is the default for devices that name none. */
  readonly iommus: readonly IommuUnitSpec[];
  readonly memory: PhysMemoryOptions;
}

/** The x86 interrupt address range, reserved as IOMMU_RESV_MSI by intel-iommu (IOAPIC_RANGE). */
export const X86_MSI_REGION: ReservedRegion = { start: 0xfee00000n, last: 0xfeefffffn, type: 'msi' };
/** MSI_IOVA_BASE / MSI_IOVA_LENGTH of the Arm SMMU drivers: where the kernel maps MSI doorbells. */
export const ARM_SW_MSI_REGION: ReservedRegion = { start: 0x8000000n, last: 0x80fffffn, type: 'sw-msi' };

const VTD_UNIT: IommuUnitSpec = {
  model: 'paged',
  name: 'intel-vtd',
  pgsizeBitmap: 0x40201000n,
  ias: 48,
  iotlbEntries: 64,
  enforceCacheCoherency: true,
  reservedRegions: [X86_MSI_REGION],
  isolatedMsi: true,
};

/** The built-in presets by name. */
export const MACHINE_PRESETS = {
  'x86-vtd': {
    name: 'x86-vtd',
    description: 'x86-64 with Intel VT-d: 4K/2M/1G page tables, 48-bit IOVA, interrupt remapping',
    iommus: [VTD_UNIT],
    memory: {},
  },
  'x86-vtd-no-ir': {
    name: 'x86-vtd-no-ir',
    description: 'x86-64 with Intel VT-d but no interrupt remapping (MSIs are not isolated)',
    iommus: [{ ...VTD_UNIT, isolatedMsi: false }],
    memory: {},
  },
  'arm-smmuv3': {
    name: 'arm-smmuv3',
    description: 'arm64 with SMMUv3: 4K granule tables, 48-bit IOVA, SW_MSI window at 0x8000000, GICv3 ITS',
    iommus: [
      {
        model: 'paged',
        name: 'arm-smmu-v3',
        pgsizeBitmap: 0x40201000n,
        ias: 48,
        iotlbEntries: 128,
        enforceCacheCoherency: true,
        reservedRegions: [ARM_SW_MSI_REGION],
        isolatedMsi: true,
      },
    ],
    memory: {},
  },
} as const satisfies Record<string, MachineSpec>;

export type MachineName = keyof typeof MACHINE_PRESETS;

/** Looks a preset up by name. @throws RangeError for an unknown name */
export function machinePreset(name: string): MachineSpec {
  const spec = (MACHINE_PRESETS as Record<string, MachineSpec>)[name];
  if (spec === undefined) {
    throw new RangeError(`unknown machine '${name}' (known: ${Object.keys(MACHINE_PRESETS).join(', ')})`);
  }
  return spec;
}
