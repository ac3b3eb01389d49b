/**
 * The interrupts of a vfio-pci device (drivers/vfio/pci/vfio_pci_intrs.c): the actions of
 * VFIO_DEVICE_SET_IRQS once vfio_set_irqs_validate_and_prepare has passed (see vfio-device.ts), and the
 * teardown when the device's last fd closes.
 *
 * Model and constraints (each rule is the kernel's; [derived] marks a consequence read out of the code):
 * - One interrupt type at a time (vdev->irq_type): INTx, MSI or MSI-X. Enabling another while one is
 *   active is EINVAL; disabling is DATA_NONE | ACTION_TRIGGER with count 0 on the active index (on an
 *   index that is not active that is EINVAL).
 * - Dispatch (vfio_pci_set_irqs_ioctl): INTx takes MASK, UNMASK, TRIGGER; MSI and MSI-X take TRIGGER
 *   only (MASK/UNMASK: "XXX Need masking support exported"); ERR (PCI Express only) and REQ take
 *   TRIGGER. Anything else, including several action bits at once, is ENOTTY.
 * - Eventfds (eventfd_ctx_fdget): an fd that is not open is EBADF, one that is not an eventfd EINVAL.
 *   A trigger holds a reference on the eventfd's file until it is replaced or torn down, so closing the
 *   fd does not disturb it.
 * - INTx: enabling (EVENTFD, start 0, count 1; fd −1 enables with no trigger) installs the line's
 *   handler. An assertion while unmasked masks the line and signals the trigger (AUTOMASKED); while
 *   masked it stays pending in the line. UNMASK with the line still asserted keeps it masked and signals
 *   again (vfio_pci_intx_unmask_handler returns 1: pci_check_and_unmask_intx found it pending).
 *   MASK/UNMASK need INTx active, start 0 and count 1 (EINVAL); MASK with an eventfd is ENOTTY; UNMASK
 *   with an eventfd installs an unmask virqfd (EBUSY if one exists; −1 removes it): every write to that
 *   eventfd unmasks, and closing it removes the virqfd (EPOLLHUP). Loopback (DATA_NONE / DATA_BOOL
 *   TRIGGER) signals without masking (vfio_send_intx_eventfd).
 * - MSI/MSI-X: EVENTFD on an inactive index enables start + count vectors through the MSI layer
 *   (composition can fail: a PAMU device with no MSI bank window gets EINVAL; nothing stays enabled),
 *   then binds the eventfds of start … start + count − 1 (fd < 0 leaves a vector without one). On the
 *   active index it rebinds those vectors; a vector beyond the enabled count with fd ≥ 0 is EINVAL
 *   (no dynamic MSI-X: GET_IRQ_INFO says NORESIZE). A failure while binding unbinds every vector of
 *   the call up to the failing one [derived: their old eventfds are gone too], and undoes the enable if
 *   this call made it. start + count = 0 on an inactive index is ERANGE [derived:
 *   pci_alloc_irq_vectors(1, 0) fails in __pci_enable_msi_range]. An MSI controller without
 *   multiple-message MSI answers more than 1 MSI vector with the ioctl returning 1 and nothing enabled
 *   [derived: vfio_msi_enable returns pci_alloc_irq_vectors' smaller count].
 *   DATA_NONE / DATA_BOOL on the active index signal the chosen vectors' eventfds (loopback, as the
 *   selftest uses); vectors without one are skipped.
 * - ERR/REQ (vfio_pci_set_ctx_trigger_single): EVENTFD with fd ≥ 0 sets, −1 clears (other negative fds
 *   change nothing); DATA_NONE signals (count 1) or clears (count 0) an existing trigger and is EINVAL
 *   without one; DATA_BOOL signals; BOOL or EVENTFD with count 0 is EINVAL.
 * - Closing the device's last fd (vfio_pci_core_close_device) disables the active type and drops the ERR
 *   and REQ triggers: no eventfd reference outlives the device's use.
 */
import { sysError } from '../kernel-sim/errors';
import { eventfdFileGet, eventfdOf, type EventFd, type EventFdWaiter } from '../kernel-sim/fs/eventfd';
import type { SimFile } from '../kernel-sim/fs/file';
import type { PciDevice } from '../kernel-sim/pci/pci-device';
import type { Process } from '../kernel-sim/process';
import { MSI_MODULE_NAME, type MsiModule } from '../msi';
import { readU32 } from '../uapi/codec';
import {
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_REQ_IRQ_INDEX,
} from '../uapi/vfio';

/** vdev->irq_type when no interrupt type is active (VFIO_PCI_NUM_IRQS in the kernel). */
const IRQ_NONE = -1;

/** An unmask virqfd: a waiter on an eventfd whose writes unmask INTx (vfio_virqfd_enable). */
interface Virqfd {
  readonly eventfd: EventFd;
  readonly waiter: EventFdWaiter;
}

/** The INTx context (vfio_pci_irq_ctx of vector 0). */
interface IntxCtx {
  trigger: SimFile<EventFd> | undefined;
  masked: boolean;
  unmask: Virqfd | undefined;
}

/** What a test or report sees of the interrupt state. */
export interface VfioIrqState {
  readonly type: 'none' | 'intx' | 'msi' | 'msix';
  /** INTx: masked, and whether a trigger and an unmask eventfd are set. */
  readonly intx?: { readonly masked: boolean; readonly trigger: boolean; readonly unmaskEventfd: boolean };
  /** MSI/MSI-X: for each enabled vector, whether an eventfd is bound. */
  readonly vectors: readonly boolean[];
  readonly err: boolean;
  readonly req: boolean;
}

/** The interrupt state of one vfio-pci device. */
export class VfioPciIntrs {
  private _irqType = IRQ_NONE;
  private _intx: IntxCtx | undefined;
  /** MSI/MSI-X: the eventfd file of each enabled vector (the vfio_irq_ctx of each). */
  private _triggers: (SimFile<EventFd> | undefined)[] = [];
  private _msi: MsiModule | undefined;
  private _err: SimFile<EventFd> | undefined;
  private _req: SimFile<EventFd> | undefined;

  constructor(readonly pci: PciDevice) {}

  /**
   * vfio_pci_set_irqs_ioctl with a validated header; `data` holds count bools or s32 fds (empty for
   * DATA_NONE).
   * @returns 0, or a positive vector count (see the file header)
   * @throws SysError ENOTTY (action not supported by the index), EINVAL, EBADF, EBUSY, ERANGE, ENOSPC,
   *   ENODEV (no MSI controller)
   */
  setIrqs(flags: number, index: number, start: number, count: number, data: Uint8Array, caller: Process): number {
    const action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    switch (index) {
      case VFIO_PCI_INTX_IRQ_INDEX:
        if (action === VFIO_IRQ_SET_ACTION_MASK) return this._intxMask(start, count, flags, data);
        if (action === VFIO_IRQ_SET_ACTION_UNMASK) return this._intxUnmask(start, count, flags, data, caller);
        if (action === VFIO_IRQ_SET_ACTION_TRIGGER) return this._intxTrigger(start, count, flags, data, caller);
        break;
      case VFIO_PCI_MSI_IRQ_INDEX:
      case VFIO_PCI_MSIX_IRQ_INDEX:
        if (action === VFIO_IRQ_SET_ACTION_TRIGGER) return this._msiTrigger(index, start, count, flags, data, caller);
        break;
      case VFIO_PCI_ERR_IRQ_INDEX:
        if (action === VFIO_IRQ_SET_ACTION_TRIGGER && this.pci.isPcie) return this._errReqTrigger('err', start, count, flags, data, caller);
        break;
      case VFIO_PCI_REQ_IRQ_INDEX:
        if (action === VFIO_IRQ_SET_ACTION_TRIGGER) return this._errReqTrigger('req', start, count, flags, data, caller);
        break;
    }
    throw sysError('ENOTTY', 'the index does not support this action');
  }

  /** vfio_pci_core_close_device: the active type is disabled, ERR and REQ triggers dropped. */
  closeDevice(): void {
    if (this._irqType === VFIO_PCI_INTX_IRQ_INDEX) this._intxDisable();
    else if (this._irqType === VFIO_PCI_MSI_IRQ_INDEX || this._irqType === VFIO_PCI_MSIX_IRQ_INDEX) this._msiDisable();
    this._err?.put();
    this._err = undefined;
    this._req?.put();
    this._req = undefined;
  }

  /** vfio_pci_core_request: the device is wanted back (unbind); signals the REQ trigger if set. */
  request(): boolean {
    this._req?.data.signal();
    return this._req !== undefined;
  }

  /** An AER error reported for the device (vfio_pci_aer_err_detected); signals the ERR trigger if set. */
  reportError(): boolean {
    this._err?.data.signal();
    return this._err !== undefined;
  }

  /** A snapshot of the state, for tests and reports. */
  debugState(): VfioIrqState {
    const type = ({ [VFIO_PCI_INTX_IRQ_INDEX]: 'intx', [VFIO_PCI_MSI_IRQ_INDEX]: 'msi', [VFIO_PCI_MSIX_IRQ_INDEX]: 'msix' } as const)[this._irqType] ?? 'none';
    const intx = this._intx;
    return {
      type,
      ...(intx === undefined ? {} : { intx: { masked: intx.masked, trigger: intx.trigger !== undefined, unmaskEventfd: intx.unmask !== undefined } }),
      vectors: this._triggers.map((t) => t !== undefined),
      err: this._err !== undefined,
      req: this._req !== undefined,
    };
  }

  private _isNone(): boolean {
    return this._irqType === IRQ_NONE;
  }

  // ---- INTx --------------------------------------------------------------------------------------

  /** vfio_pci_set_intx_trigger. */
  private _intxTrigger(start: number, count: number, flags: number, data: Uint8Array, caller: Process): number {
    const isIntx = this._irqType === VFIO_PCI_INTX_IRQ_INDEX;
    if (isIntx && count === 0 && (flags & VFIO_IRQ_SET_DATA_NONE) !== 0) {
      this._intxDisable();
      return 0;
    }
    if (!(isIntx || this._isNone()) || start !== 0 || count !== 1) throw sysError('EINVAL', 'INTx takes start 0, count 1, with no other type active');
    if ((flags & VFIO_IRQ_SET_DATA_EVENTFD) !== 0) {
      const fd = s32(data, 0);
      const trigger = fd >= 0 ? eventfdFileGet(caller, fd) : undefined;
      if (isIntx) {
        // vfio_intx_set_signal: swap the trigger.
        this._intx!.trigger?.put();
        this._intx!.trigger = trigger;
      } else {
        this._intxEnable(trigger);
      }
      return 0;
    }
    if (!isIntx) throw sysError('EINVAL', 'INTx is not enabled');
    if ((flags & VFIO_IRQ_SET_DATA_NONE) !== 0 || data[0] !== 0) this._sendIntxEventfd();
    return 0;
  }

  /** vfio_intx_enable: the line's handler is installed; an asserted line fires at once. */
  private _intxEnable(trigger: SimFile<EventFd> | undefined): void {
    this._intx = { trigger, masked: false, unmask: undefined };
    this._irqType = VFIO_PCI_INTX_IRQ_INDEX;
    this.pci.setIntxHandler(() => this._intxHandler());
    if (this.pci.intxAsserted) this._intxHandler();
  }

  /** vfio_intx_disable. */
  private _intxDisable(): void {
    const intx = this._intx!;
    this._virqfdDisable(intx);
    this.pci.setIntxHandler(undefined);
    intx.trigger?.put();
    this._intx = undefined;
    this._irqType = IRQ_NONE;
  }

  /** vfio_intx_handler (PCI 2.3 masking): mask the line and signal, unless already masked. */
  private _intxHandler(): boolean {
    const intx = this._intx!;
    if (intx.masked) return false;
    intx.masked = true;
    return this._sendIntxEventfd();
  }

  /** vfio_send_intx_eventfd. */
  private _sendIntxEventfd(): boolean {
    const trigger = this._intx?.trigger;
    trigger?.data.signal();
    return trigger !== undefined;
  }

  /** vfio_pci_set_intx_mask. */
  private _intxMask(start: number, count: number, flags: number, data: Uint8Array): number {
    if (this._irqType !== VFIO_PCI_INTX_IRQ_INDEX || start !== 0 || count !== 1) throw sysError('EINVAL', 'INTx is not enabled, or start/count is not 0/1');
    if ((flags & VFIO_IRQ_SET_DATA_EVENTFD) !== 0) throw sysError('ENOTTY', 'masking through an eventfd is not implemented');
    if ((flags & VFIO_IRQ_SET_DATA_NONE) !== 0 || data[0] !== 0) this._intx!.masked = true;
    return 0;
  }

  /** vfio_pci_set_intx_unmask. */
  private _intxUnmask(start: number, count: number, flags: number, data: Uint8Array, caller: Process): number {
    if (this._irqType !== VFIO_PCI_INTX_IRQ_INDEX || start !== 0 || count !== 1) throw sysError('EINVAL', 'INTx is not enabled, or start/count is not 0/1');
    const intx = this._intx!;
    if ((flags & VFIO_IRQ_SET_DATA_EVENTFD) !== 0) {
      const fd = s32(data, 0);
      if (fd >= 0) this._virqfdEnable(intx, caller, fd);
      else this._virqfdDisable(intx);
    } else if ((flags & VFIO_IRQ_SET_DATA_NONE) !== 0 || data[0] !== 0) {
      this._intxUnmaskAndResend();
    }
    return 0;
  }

  /** vfio_pci_intx_unmask: unmask, or (line still asserted) stay masked and signal again. */
  private _intxUnmaskAndResend(): void {
    const intx = this._intx;
    if (intx === undefined || !intx.masked) return;
    if (this.pci.intxAsserted) this._sendIntxEventfd();
    else intx.masked = false;
  }

  /** vfio_virqfd_enable for the INTx unmask eventfd. @throws SysError EBADF, EINVAL, EBUSY */
  private _virqfdEnable(intx: IntxCtx, caller: Process, fd: number): void {
    const eventfd = eventfdOf(caller, fd);
    if (intx.unmask !== undefined) throw sysError('EBUSY', 'an unmask eventfd is already set');
    const waiter: EventFdWaiter = (efd, hangup) => {
      if (hangup) {
        this._virqfdDisable(intx);
        return;
      }
      efd.consume();
      this._intxUnmaskAndResend();
    };
    eventfd.addWaiter(waiter);
    intx.unmask = { eventfd, waiter };
    // An event already pending counts as if it arrived now (it is not consumed).
    if (eventfd.count > 0n) this._intxUnmaskAndResend();
  }

  private _virqfdDisable(intx: IntxCtx): void {
    const virqfd = intx.unmask;
    if (virqfd === undefined) return;
    virqfd.eventfd.removeWaiter(virqfd.waiter);
    intx.unmask = undefined;
  }

  // ---- MSI / MSI-X -------------------------------------------------------------------------------

  /** vfio_pci_set_msi_trigger. */
  private _msiTrigger(index: number, start: number, count: number, flags: number, data: Uint8Array, caller: Process): number {
    const active = this._irqType === index;
    if (active && count === 0 && (flags & VFIO_IRQ_SET_DATA_NONE) !== 0) {
      this._msiDisable();
      return 0;
    }
    if (!(active || this._isNone())) throw sysError('EINVAL', 'another interrupt type is enabled');
    if ((flags & VFIO_IRQ_SET_DATA_EVENTFD) !== 0) {
      if (active) {
        this._msiSetBlock(start, count, data, caller);
        return 0;
      }
      const got = this._msiEnable(index, start + count, caller);
      if (got !== 0) return got;
      try {
        this._msiSetBlock(start, count, data, caller);
      } catch (err) {
        this._msiDisable();
        throw err;
      }
      return 0;
    }
    if (!active) throw sysError('EINVAL', 'the index is not enabled');
    const bools = (flags & VFIO_IRQ_SET_DATA_BOOL) !== 0;
    for (let i = start; i < start + count; i++) {
      const trigger = this._triggers[i];
      if (trigger === undefined) continue;
      if (!bools || data[i - start] !== 0) trigger.data.signal();
    }
    return 0;
  }

  /**
   * vfio_msi_enable: pci_alloc_irq_vectors through the MSI layer.
   * @returns 0, or the smaller count the controller can give (nothing enabled)
   */
  private _msiEnable(index: number, nvec: number, caller: Process): number {
    if (!this._isNone()) throw sysError('EINVAL', 'another interrupt type is enabled');
    // pci_alloc_irq_vectors(pdev, 1, nvec): maxvec < minvec.
    if (nvec < 1) throw sysError('ERANGE', 'no vector asked');
    const msi = caller.kernel.findModule<MsiModule>(MSI_MODULE_NAME);
    if (msi === undefined) throw sysError('ENODEV', 'the kernel has no MSI layer');
    const got = msi.allocVectors(this.pci, index === VFIO_PCI_MSIX_IRQ_INDEX ? 'msix' : 'msi', nvec);
    if (got < nvec) return got;
    this._msi = msi;
    this._irqType = index;
    this._triggers = new Array<SimFile<EventFd> | undefined>(nvec).fill(undefined);
    return 0;
  }

  /** vfio_msi_set_block: bind start … start + count − 1; on failure unbind what this call touched. */
  private _msiSetBlock(start: number, count: number, data: Uint8Array, caller: Process): void {
    let j = start;
    try {
      for (let i = 0; i < count; i++, j++) this._msiSetVectorSignal(j, s32(data, 4 * i), caller);
    } catch (err) {
      for (let i = start; i <= j; i++) this._msiSetVectorSignal(i, -1, caller);
      throw err;
    }
  }

  /** vfio_msi_set_vector_signal: drop the vector's eventfd, then bind `fd` (fd < 0: none). */
  private _msiSetVectorSignal(vector: number, fd: number, caller: Process): void {
    const old = this._triggers[vector];
    if (old !== undefined) {
      this._msi!.setTrigger(this.pci, vector, undefined);
      old.put();
      this._triggers[vector] = undefined;
    }
    if (fd < 0) return;
    // vfio_msi_alloc_irq: no irq behind the vector and no dynamic MSI-X.
    if (vector >= this._triggers.length) throw sysError('EINVAL', `vector ${vector} is beyond the enabled vectors`);
    const trigger = eventfdFileGet(caller, fd);
    this._msi!.setTrigger(this.pci, vector, trigger.data);
    this._triggers[vector] = trigger;
  }

  /** vfio_msi_disable: every eventfd dropped, vectors freed, the capability disabled. */
  private _msiDisable(): void {
    const msi = this._msi!;
    this._triggers.forEach((trigger, vector) => {
      if (trigger === undefined) return;
      msi.setTrigger(this.pci, vector, undefined);
      trigger.put();
    });
    msi.freeVectors(this.pci);
    this._triggers = [];
    this._irqType = IRQ_NONE;
  }

  // ---- ERR / REQ ---------------------------------------------------------------------------------

  /** vfio_pci_set_err_trigger / vfio_pci_set_req_trigger → vfio_pci_set_ctx_trigger_single. */
  private _errReqTrigger(which: 'err' | 'req', start: number, count: number, flags: number, data: Uint8Array, caller: Process): number {
    if (start !== 0 || count > 1) throw sysError('EINVAL', 'start/count must be 0 and at most 1');
    const current = which === 'err' ? this._err : this._req;
    const set = (file: SimFile<EventFd> | undefined): void => {
      if (which === 'err') this._err = file;
      else this._req = file;
    };
    // DATA_NONE / DATA_BOOL enable loopback testing.
    if ((flags & VFIO_IRQ_SET_DATA_NONE) !== 0) {
      if (current === undefined) throw sysError('EINVAL', 'no trigger is set');
      if (count !== 0) {
        current.data.signal();
      } else {
        current.put();
        set(undefined);
      }
      return 0;
    }
    if (count === 0) throw sysError('EINVAL', 'count 0 needs DATA_NONE');
    if ((flags & VFIO_IRQ_SET_DATA_BOOL) !== 0) {
      if (data[0] !== 0) current?.data.signal();
      return 0;
    }
    const fd = s32(data, 0);
    if (fd === -1) {
      current?.put();
      set(undefined);
    } else if (fd >= 0) {
      const next = eventfdFileGet(caller, fd);
      current?.put();
      set(next);
    }
    return 0;
  }
}

/** An s32 of data[] (an eventfd number). */
function s32(data: Uint8Array, offset: number): number {
  return readU32(data, offset) | 0;
}
