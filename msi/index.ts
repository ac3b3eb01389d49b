/**
 * The interrupt side of the simulator: the MSI controller models (x86 interrupt remapping and
 * compatibility format, the Arm GICv3 ITS behind the SW_MSI window, the Freescale MPIC MSI banks of the
 * windowed model), message composition, delivery to eventfds, and their counters, as one kernel module.
 */
export { MsiModule, msiModule, MSI_MODULE_NAME, defaultMsiSpec, type MsiModuleCounters } from './msi-module';
export { type MsiVector, type MsiCapability, type MsiCounters, type MsiController, type MsiDoorbell, type ComposeContext } from './msi-controller';
export { type MpicBankInfo } from './mpic';
