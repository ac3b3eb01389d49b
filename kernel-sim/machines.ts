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
 * - `fsl-p4080`, `fsl-t4240`: Freescale QorIQ with the PAMU windowed IOMMU (PAMU_PARAMS: 36-bit IOVA, up
 *   to 256 sub-windows, 0x500 PPAACEs, 0x800 SPAACEs), no reserved regions. The unit says isolatedMsi
 *   so type1-style checks do not interfere: MSI bank isolation (one bank per container) is enforced by
 *   the type2 backend with the MSI bank model. PCI devices without a `liodn` get their controller's
 *   (`pciControllerLiodn`).
 */
import type { IommuHardware, ReservedRegion } from './iommu/iommu-domain';
import type { WindowedIommuParams } from './iommu/windowed-domain';
import { PAMU_PARAMS } from './iommu/windowed/windowed-iommu';
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

/** A windowed IOMMU unit (the PAMU-like hardware model, iommu/windowed/). */
export interface WindowedIommuUnitSpec {
  readonly model: 'windowed';
  /** Driver name, e.g. 'fsl-pamu'. */
  readonly name: string;
  readonly params: WindowedIommuParams;
}

/** Any other hardware model: the kernel calls `create` once per machine. */
export interface CustomIommuUnitSpec {
  readonly model: 'custom';
  readonly name: string;
  create(): IommuHardware;
}

/** One IOMMU unit and what the platform says about the devices behind it. */
export type IommuUnitSpec = (PagedIommuUnitSpec | WindowedIommuUnitSpec | CustomIommuUnitSpec) & {
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

/** A PAMU (reference/pamu-windowed.md §5): P4080 and T4240 have the same PAACT sizes and window limits. */
const PAMU_UNIT: IommuUnitSpec = {
  model: 'windowed',
  name: 'fsl-pamu',
  params: PAMU_PARAMS,
  reservedRegions: [],
  isolatedMsi: true,
};

/** First LIODN of the PCIe controllers in the simulator's convention (see `pciControllerLiodn`). */
export const PCI_CONTROLLER_LIODN_BASE = 0x100;

/**
 * The LIODN of a PCI function's PCIe controller on a windowed (PAMU) machine. On QorIQ each PCIe
 * controller is its own PCI domain, and every device behind it uses the controller's LIODN
 * (fsl_pamu_domain.c "Use LIODN of the PCI controller"); the simulator numbers them
 * PCI_CONTROLLER_LIODN_BASE + PCI domain (0000:xx → 0x100, 0001:xx → 0x101). A simulator convention,
 * not U-Boot's table.
 * @throws RangeError when `bdf` does not start with a 4-digit hex PCI domain
 */
export function pciControllerLiodn(bdf: string): number {
  const domain = /^([0-9a-f]{4}):/.exec(bdf)?.[1];
  if (domain === undefined) throw new RangeError(`'${bdf}' is not a PCI address (dddd:bb:dd.f, lower-case hex)`);
  return PCI_CONTROLLER_LIODN_BASE + parseInt(domain, 16);
}

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
  'fsl-p4080': {
    name: 'fsl-p4080',
    description: 'Freescale QorIQ P4080 (e500mc): PAMU windowed IOMMU, 64 GiB IOVA, 256 sub-windows, 3 MPIC MSI banks',
    iommus: [PAMU_UNIT],
    memory: {},
  },
  'fsl-t4240': {
    name: 'fsl-t4240',
    description: 'Freescale QorIQ T4240 (e6500): PAMU windowed IOMMU, 64 GiB IOVA, 256 sub-windows, 4 MPIC v4.3 MSI banks',
    iommus: [PAMU_UNIT],
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
