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
 * Each preset names its MSI controller (`msi`, built by msi/): VT-d interrupt remapping, x86
 * compatibility format, the GICv3 ITS of QEMU's 'virt' board, or the P4080 / T4240 MPIC MSI banks.
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

/**
 * The machine's MSI controller: where device MSI writes land and how a message names its interrupt
 * (msi/ builds the controller from this).
 * - `x86-remapping`: VT-d interrupt remapping. Writes to 0xFEE00000–0xFEEFFFFF are intercepted before
 *   DMA translation and looked up in the interrupt remapping table (65536 IRTEs), whose entries check
 *   the requester (source-id validation).
 * - `x86-compat`: no remapping. The same range is intercepted, but the message itself names the
 *   destination APIC (address bits 19:12) and the vector (data bits 7:0): a device can forge any
 *   vector on any CPU. `cpus` (default 8) × vectors 0x21–0xEB are allocatable.
 * - `arm-its`: a GICv3 ITS. MSIs are 32-bit writes of an EventID to GITS_TRANSLATER (physical
 *   `translater`); the ITS takes the DeviceID from the requester, so a device can only raise its own
 *   events. Behind an SMMU the doorbell page must be mapped in the device's domain (the SW_MSI cookie).
 * - `mpic`: Freescale MPIC MSI banks. Each bank's MSIIR sits alone in an alias page (`aliasPages`, at
 *   `msiirOffset`); data = hwirq = (MSIR index << srsShift) | (bit << ibsShift). Any device that can
 *   write a bank's page can raise any of its `vectorsPerBank` interrupts.
 */
export type MsiControllerSpec =
  | { readonly kind: 'x86-remapping' }
  | { readonly kind: 'x86-compat'; readonly cpus?: number }
  | { readonly kind: 'arm-its'; readonly translater: bigint }
  | {
      readonly kind: 'mpic';
      readonly aliasPages: readonly bigint[];
      readonly msiirOffset: number;
      readonly vectorsPerBank: number;
      readonly srsShift: number;
      readonly ibsShift: number;
    }
  | { readonly kind: 'none' };

/** A whole machine. */
export interface MachineSpec {
  readonly name: string;
  readonly description: string;
  /** The first unit is the default for devices that name none. */
  readonly iommus: readonly IommuUnitSpec[];
  readonly memory: PhysMemoryOptions;
  /** The MSI controller; when absent, msi/ infers it from the preset name and reserved regions. */
  readonly msi?: MsiControllerSpec;
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

/** VT-d with interrupt remapping. */
export const X86_REMAPPING_MSI: MsiControllerSpec = { kind: 'x86-remapping' };
/** x86 without interrupt remapping: compatibility-format messages, 8 CPUs. */
export const X86_COMPAT_MSI: MsiControllerSpec = { kind: 'x86-compat', cpus: 8 };
/**
 * The GICv3 ITS of QEMU's arm64 'virt' board: ITS at 0x08080000 (VIRT_GIC_ITS), its translation frame
 * 64 KiB above, GITS_TRANSLATER at offset 0x40 of that frame (its->phys_base + GITS_TRANSLATER 0x10040).
 */
export const ARM_ITS_MSI: MsiControllerSpec = { kind: 'arm-its', translater: 0x08090040n };
/** CCSR base the PAMU SDK hard-codes (CCSR_BASE in fsl_msi.c; reference/pamu-windowed.md §5). */
export const FSL_CCSR_BASE = 0xffe000000n;
/** P4080: 3 MPIC banks of 256 MSIs, MSIIR aliases at CCSR 0x44140/0x45140/0x46140 (srs_shift 5, ibs_shift 0). */
export const P4080_MPIC_MSI: MsiControllerSpec = {
  kind: 'mpic',
  aliasPages: [FSL_CCSR_BASE + 0x44000n, FSL_CCSR_BASE + 0x45000n, FSL_CCSR_BASE + 0x46000n],
  msiirOffset: 0x140,
  vectorsPerBank: 256,
  srsShift: 5,
  ibsShift: 0,
};
/** T4240: 4 MPIC v4.3 banks of 512 MSIs, MSIIR1 aliases at CCSR 0x44148…0x47148 (srs_shift 0, ibs_shift 4). */
export const T4240_MPIC_MSI: MsiControllerSpec = {
  kind: 'mpic',
  aliasPages: [FSL_CCSR_BASE + 0x44000n, FSL_CCSR_BASE + 0x45000n, FSL_CCSR_BASE + 0x46000n, FSL_CCSR_BASE + 0x47000n],
  msiirOffset: 0x148,
  vectorsPerBank: 512,
  srsShift: 0,
  ibsShift: 4,
};

/** QorIQ RAM: 32 GiB of anonymous memory from 4 GiB, clear of the CCSR window at 0xf_fe00_0000. */
const QORIQ_MEMORY: PhysMemoryOptions = { anonBytes: 32n << 30n };

/** The built-in presets by name. */
export const MACHINE_PRESETS = {
  'x86-vtd': {
    name: 'x86-vtd',
    description: 'x86-64 with Intel VT-d: 4K/2M/1G page tables, 48-bit IOVA, interrupt remapping',
    iommus: [VTD_UNIT],
    memory: {},
    msi: X86_REMAPPING_MSI,
  },
  'x86-vtd-no-ir': {
    name: 'x86-vtd-no-ir',
    description: 'x86-64 with Intel VT-d but no interrupt remapping (MSIs are not isolated)',
    iommus: [{ ...VTD_UNIT, isolatedMsi: false }],
    memory: {},
    msi: X86_COMPAT_MSI,
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
    msi: ARM_ITS_MSI,
  },
  'fsl-p4080': {
    name: 'fsl-p4080',
    // 36-bit physical space: anonymous RAM stays in [4 GiB, 36 GiB), below CCSR (0xf_fe00_0000) and the
    // MPIC MSI doorbell pages in it.
    description: 'Freescale QorIQ P4080 (e500mc): PAMU windowed IOMMU, 64 GiB IOVA, 256 sub-windows, 3 MPIC MSI banks',
    iommus: [PAMU_UNIT],
    memory: QORIQ_MEMORY,
    msi: P4080_MPIC_MSI,
  },
  'fsl-t4240': {
    name: 'fsl-t4240',
    description: 'Freescale QorIQ T4240 (e6500): PAMU windowed IOMMU, 64 GiB IOVA, 256 sub-windows, 4 MPIC v4.3 MSI banks',
    iommus: [PAMU_UNIT],
    memory: QORIQ_MEMORY,
    msi: T4240_MPIC_MSI,
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
