/**
 * VFIO_DEVICE_SET_IRQS on a vfio-pci device (reference/vfio-uapi.md §10; vfio_set_irqs_validate_and_prepare
 * and drivers/vfio/pci/vfio_pci_intrs.c): every validation rule with its errno in the kernel's order and
 * no trace left behind, the dispatch of actions per index, the selftest vfio_pci_irq_test
 * enable_trigger_disable flow for MSI and MSI-X, INTx automasking, ERR/REQ, and teardown at close.
 */
import { MSI_MODULE_NAME, uapi, type MsiModule } from '../../index';
import type { EventFd } from '../../kernel-sim/fs/eventfd';
import { BOOL_TRIGGER, EVENTFD_TRIGGER, NONE_TRIGGER, TRIGGER, irqWorld, readOrCode, type IrqSet, type IrqWorld } from '../helpers/irq-world';

const { VFIO_PCI_INTX_IRQ_INDEX: INTX, VFIO_PCI_MSI_IRQ_INDEX: MSI, VFIO_PCI_MSIX_IRQ_INDEX: MSIX, VFIO_PCI_ERR_IRQ_INDEX: ERR, VFIO_PCI_REQ_IRQ_INDEX: REQ } = uapi;
const { VFIO_IRQ_SET_DATA_NONE: DATA_NONE, VFIO_IRQ_SET_DATA_BOOL: DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD: DATA_EVENTFD } = uapi;
const { VFIO_IRQ_SET_ACTION_MASK: MASK, VFIO_IRQ_SET_ACTION_UNMASK: UNMASK } = uapi;
const U32_MAX = 0xffffffff;

/** MSI enabled with 4 vectors bound, so that any change a failed call made would show. */
function msiEnabledWorld(): { w: IrqWorld; efds: number[] } {
  const w = irqWorld({ device: { msiVectors: 4, msixVectors: 8 } });
  const efds = w.eventfds(4);
  expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: efds })).toBe(0);
  return { w, efds };
}

describe('vfio_set_irqs_validate_and_prepare: every rule, in order, changes nothing', () => {
  const rows: [string, uapi.ErrnoCode, IrqSet | ((w: IrqWorld) => Uint8Array | number)][] = [
    ['a buffer shorter than the 20-byte header is a copy fault', 'EFAULT', () => new Uint8Array(19)],
    ['a by-value argument is a bad address', 'EFAULT', () => 0],
    ['argsz 19 (below minsz 20)', 'EINVAL', { flags: NONE_TRIGGER, index: MSI, start: 0, count: 1, argsz: 19, bufferBytes: 20 }],
    ['argsz 0', 'EINVAL', { flags: NONE_TRIGGER, index: MSI, start: 0, count: 1, argsz: 0, bufferBytes: 20 }],
    ['index 5 (VFIO_PCI_NUM_IRQS)', 'EINVAL', { flags: NONE_TRIGGER, index: 5, start: 0, count: 0 }],
    ['index U32_MAX', 'EINVAL', { flags: NONE_TRIGGER, index: U32_MAX, start: 0, count: 0 }],
    ['count ≥ U32_MAX − start (start 0, count U32_MAX)', 'EINVAL', { flags: NONE_TRIGGER, index: MSI, start: 0, count: U32_MAX }],
    ['count ≥ U32_MAX − start (start 1, count U32_MAX − 1)', 'EINVAL', { flags: NONE_TRIGGER, index: MSI, start: 1, count: U32_MAX - 1 }],
    ['an unknown flag bit (1 << 6)', 'EINVAL', { flags: NONE_TRIGGER | (1 << 6), index: MSI, start: 0, count: 1 }],
    ['an unknown flag bit (1 << 31)', 'EINVAL', { flags: NONE_TRIGGER | 0x80000000, index: MSI, start: 0, count: 1 }],
    ['start ≥ the index count, even with count 0 (MSI has 4)', 'EINVAL', { flags: NONE_TRIGGER, index: MSI, start: 4, count: 0 }],
    ['start + count > the index count', 'EINVAL', { flags: NONE_TRIGGER, index: MSI, start: 2, count: 3 }],
    ['MSI-X start 8 of 8', 'EINVAL', { flags: NONE_TRIGGER, index: MSIX, start: 8, count: 0 }],
    ['the ERR index of a conventional PCI device has 0 vectors', 'EINVAL', { flags: NONE_TRIGGER, index: ERR, start: 0, count: 0 }],
    ['no DATA_* flag', 'EINVAL', { flags: TRIGGER, index: MSI, start: 0, count: 1 }],
    ['DATA_NONE | DATA_BOOL', 'EINVAL', { flags: DATA_NONE | DATA_BOOL | TRIGGER, index: MSI, start: 0, count: 1, argsz: 21 }],
    ['DATA_BOOL | DATA_EVENTFD', 'EINVAL', { flags: DATA_BOOL | DATA_EVENTFD | TRIGGER, index: MSI, start: 0, count: 1, argsz: 24 }],
    ['all three DATA_* flags', 'EINVAL', { flags: DATA_NONE | DATA_BOOL | DATA_EVENTFD | TRIGGER, index: MSI, start: 0, count: 1, argsz: 24 }],
    ['argsz − 20 < count × 4 (DATA_EVENTFD, 2 fds in 7 bytes)', 'EINVAL', { flags: EVENTFD_TRIGGER, index: MSI, start: 0, count: 2, argsz: 27, bufferBytes: 28 }],
    ['argsz − 20 < count × 1 (DATA_BOOL, 4 bools in 3 bytes)', 'EINVAL', { flags: BOOL_TRIGGER, index: MSI, start: 0, count: 4, argsz: 23, bufferBytes: 24 }],
    ['the data-size rule comes before the copy of data[] (short buffer, short argsz)', 'EINVAL', { flags: EVENTFD_TRIGGER, index: MSI, start: 0, count: 2, argsz: 21, bufferBytes: 21 }],
    ['argsz says data[] is there but the buffer ends early', 'EFAULT', { flags: EVENTFD_TRIGGER, index: MSI, start: 0, count: 2, argsz: 28, bufferBytes: 24 }],
    ['validation comes before dispatch (no action, start out of range)', 'EINVAL', { flags: DATA_NONE, index: MSI, start: 4, count: 1 }],
    ['no ACTION_* flag (vfio_pci_set_irqs_ioctl finds no handler)', 'ENOTTY', { flags: DATA_NONE, index: MSI, start: 0, count: 1 }],
    ['TRIGGER | MASK on MSI (two actions)', 'ENOTTY', { flags: DATA_NONE | TRIGGER | MASK, index: MSI, start: 0, count: 1 }],
    ['MASK | UNMASK on INTx (two actions)', 'ENOTTY', { flags: DATA_NONE | MASK | UNMASK, index: INTX, start: 0, count: 1 }],
    ['MASK on MSI ("XXX Need masking support exported")', 'ENOTTY', { flags: DATA_NONE | MASK, index: MSI, start: 0, count: 1 }],
    ['UNMASK on MSI-X', 'ENOTTY', { flags: DATA_NONE | UNMASK, index: MSIX, start: 0, count: 1 }],
    ['MASK on REQ', 'ENOTTY', { flags: DATA_NONE | MASK, index: REQ, start: 0, count: 1 }],
  ];

  test.each(rows)('%s → %s', (_name, code, req) => {
    const { w } = msiEnabledWorld();
    const before = w.state();
    if (typeof req === 'function') {
      const arg = req(w);
      expect(w.proc.ioctlRaw(w.fd, uapi.VFIO_DEVICE_SET_IRQS, arg)).toBe(-uapi.ERRNO[code]);
    } else {
      expect(w.setIrqs(req)).toBe(code);
    }
    expect(w.state()).toEqual(before);
  });
});

describe('SET_IRQS actions that fail leave no trace', () => {
  test.each([
    ['MSI-X enable while MSI is enabled', 'EINVAL', (w: IrqWorld, e: number[]) => w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSIX, data: [e[0]!] })],
    ['INTx enable while MSI is enabled', 'EINVAL', (w: IrqWorld, e: number[]) => w.setIrqs({ flags: EVENTFD_TRIGGER, index: INTX, data: [e[0]!] })],
    ['disabling MSI-X, which is not enabled', 'EINVAL', (w: IrqWorld) => w.setIrqs({ flags: NONE_TRIGGER, index: MSIX, start: 0, count: 0 })],
    ['a loopback trigger on MSI-X, which is not enabled', 'EINVAL', (w: IrqWorld) => w.setIrqs({ flags: NONE_TRIGGER, index: MSIX, start: 0, count: 1 })],
    ['INTx MASK while INTx is not enabled', 'EINVAL', (w: IrqWorld) => w.setIrqs({ flags: DATA_NONE | MASK, index: INTX, start: 0, count: 1 })],
    ['INTx UNMASK while INTx is not enabled', 'EINVAL', (w: IrqWorld) => w.setIrqs({ flags: DATA_NONE | UNMASK, index: INTX, start: 0, count: 1 })],
    ['ERR/REQ: DATA_NONE with no trigger set', 'EINVAL', (w: IrqWorld) => w.setIrqs({ flags: NONE_TRIGGER, index: REQ, start: 0, count: 1 })],
    ['REQ: DATA_BOOL with count 0', 'EINVAL', (w: IrqWorld) => w.setIrqs({ flags: BOOL_TRIGGER, index: REQ, start: 0, count: 0 })],
    ['REQ: DATA_EVENTFD with count 0', 'EINVAL', (w: IrqWorld) => w.setIrqs({ flags: EVENTFD_TRIGGER, index: REQ, start: 0, count: 0 })],
    ['REQ: an fd that is not open', 'EBADF', (w: IrqWorld) => w.setIrqs({ flags: EVENTFD_TRIGGER, index: REQ, data: [900] })],
    ['REQ: an fd that is not an eventfd', 'EINVAL', (w: IrqWorld) => w.setIrqs({ flags: EVENTFD_TRIGGER, index: REQ, data: [w.container] })],
  ] as const)('%s → %s', (_name, code, call) => {
    const { w, efds } = msiEnabledWorld();
    const before = w.state();
    expect(call(w, efds)).toBe(code);
    expect(w.state()).toEqual(before);
  });

  test.each([
    ['an fd that is not open', 'EBADF', (_w: IrqWorld): number => 900],
    ['an fd that is not an eventfd', 'EINVAL', (w: IrqWorld): number => w.container],
  ] as const)('enabling MSI-X with a bad third fd (%s) is %s, and nothing stays enabled', (_name, code, badFd) => {
    const w = irqWorld();
    const efds = w.eventfds(2);
    const before = w.state();
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSIX, data: [efds[0]!, efds[1]!, badFd(w)] })).toBe(code);
    expect(w.state()).toEqual(before);
    expect(w.pci.msiMode).toBe('none');
    expect(w.kernel.module<MsiModule>(MSI_MODULE_NAME).counters().vectors).toBe(0);
  });

  test('EVENTFD with start + count = 0 on a disabled index is ERANGE (pci_alloc_irq_vectors(1, 0))', () => {
    const w = irqWorld();
    const before = w.state();
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, start: 0, count: 0 })).toBe('ERANGE');
    expect(w.state()).toEqual(before);
  });
});

describe('MSI / MSI-X: vfio_pci_set_msi_trigger', () => {
  test('a bad fd while rebinding an enabled index drops the call\'s vectors up to the failing one, and keeps the index', () => {
    const { w, efds } = msiEnabledWorld();
    // vfio_msi_set_block: vector 0 gets the new fd, vector 1 loses its old one, then the bad fd fails;
    // the rollback unbinds 0 and 1. Vectors 2 and 3 are not touched.
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, start: 0, count: 3, data: [efds[3]!, 900, efds[2]!] })).toBe('EBADF');
    expect(w.irqState()).toMatchObject({ type: 'msi', vectors: [false, false, true, true] });
    expect(w.pci.msiVector(0)?.enabled).toBe(false);
    expect(w.pci.raiseMsi(0)).toBe(false);
    expect(w.pci.raiseMsi(2)).toBe(true);
    expect(w.proc.eventfdRead(efds[2]!)).toBe(1n);
    // Each eventfd is held by its fd plus one per bound vector.
    expect(w.proc.fileOf(efds[0]!)!.refCount).toBe(1);
    expect(w.proc.fileOf(efds[3]!)!.refCount).toBe(2);
  });

  test('fd −1 unbinds one vector of an enabled index; the vector stops being sent', () => {
    const { w, efds } = msiEnabledWorld();
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, start: 1, count: 1, data: [-1] })).toBe(0);
    expect(w.irqState().vectors).toEqual([true, false, true, true]);
    expect(w.pci.raiseMsi(1)).toBe(false);
    expect(readOrCode(w.proc, efds[1]!)).toBe('EAGAIN');
    expect(w.proc.fileOf(efds[1]!)!.refCount).toBe(1);
  });

  test('binding a vector beyond the enabled ones is EINVAL (no dynamic MSI-X: NORESIZE)', () => {
    const w = irqWorld();
    const [a, b] = w.eventfds(2);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSIX, start: 0, count: 2, data: [a!, -1] })).toBe(0);
    expect(w.pci.msiVectorCount).toBe(2);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSIX, start: 2, count: 1, data: [b!] })).toBe('EINVAL');
    expect(w.irqState().vectors).toEqual([true, false]);
  });

  test('enabling at start 2 allocates vectors 0 … start + count − 1 and binds only 2 and 3', () => {
    const w = irqWorld();
    const efds = w.eventfds(2);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSIX, start: 2, count: 2, data: efds })).toBe(0);
    expect(w.irqState().vectors).toEqual([false, false, true, true]);
    expect([0, 1, 2, 3].map((v) => w.pci.msiVector(v)?.enabled)).toEqual([false, false, true, true]);
  });

  test('DATA_BOOL fires the vectors whose bool is set; vectors without an eventfd are skipped', () => {
    const { w, efds } = msiEnabledWorld();
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, start: 3, count: 1, data: [-1] });
    expect(w.setIrqs({ flags: BOOL_TRIGGER, index: MSI, start: 1, count: 3, data: [1, 0, 1] })).toBe(0);
    expect(efds.map((e) => w.peek(e))).toEqual([0n, 1n, 0n, 0n]);
  });

  test('loopback DATA_NONE count 2 from vector 2 fires vectors 2 and 3 once each', () => {
    const { w, efds } = msiEnabledWorld();
    expect(w.setIrqs({ flags: NONE_TRIGGER, index: MSI, start: 2, count: 2 })).toBe(0);
    expect(efds.map((e) => w.peek(e))).toEqual([0n, 0n, 1n, 1n]);
  });
});

describe('vfio_pci_irq_test.enable_trigger_disable (tools/testing/selftests/vfio)', () => {
  test.each([
    ['MSI', MSI, 32],
    ['MSI-X', MSIX, 64],
  ])('%s: enable up to 16 vectors, EAGAIN before a trigger, 1 after each loopback trigger, disable', (_name, index, available) => {
    const w = irqWorld({ device: { msiVectors: 32, msixVectors: 64 } });
    const info = uapi.VfioIrqInfo.encode({ argsz: 16, index });
    w.proc.ioctl(w.fd, uapi.VFIO_DEVICE_GET_IRQ_INFO, info);
    expect(uapi.VfioIrqInfo.read(info, 'count')).toBe(available);
    const nvectors = Math.min(16, available);
    const efds = w.eventfds(nvectors);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index, start: 0, count: nvectors, data: efds })).toBe(0);
    for (let i = 0; i < nvectors; i++) {
      expect(readOrCode(w.proc, efds[i]!)).toBe('EAGAIN');
      expect(w.setIrqs({ flags: NONE_TRIGGER, index, start: i, count: 1 })).toBe(0);
      expect(w.proc.eventfdRead(efds[i]!)).toBe(1n);
      expect(efds.filter((e) => w.peek(e) !== 0n)).toEqual([]);
    }
    expect(w.setIrqs({ flags: NONE_TRIGGER, index, start: 0, count: 0 })).toBe(0);
    expect(w.irqState()).toEqual({ type: 'none', vectors: [], err: false, req: false });
    expect(w.pci.msiMode).toBe('none');
    expect(efds.map((e) => w.proc.fileOf(e)!.refCount)).toEqual(efds.map(() => 1));
    w.kernel.checkInvariants();
  });
});

describe('INTx: vfio_pci_set_intx_trigger / mask / unmask', () => {
  function intxWorld(): { w: IrqWorld; efd: number } {
    const w = irqWorld();
    const [efd] = w.eventfds(1);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: INTX, data: [efd!] })).toBe(0);
    return { w, efd: efd! };
  }

  test('an assertion signals once and masks (AUTOMASKED); the line stays masked until UNMASK', () => {
    const { w, efd } = intxWorld();
    expect(w.pci.raiseIntx()).toBe(true);
    expect(w.irqState().intx).toEqual({ masked: true, trigger: true, unmaskEventfd: false });
    expect(w.pci.raiseIntx()).toBe(false);
    expect(w.proc.eventfdRead(efd)).toBe(1n);
    w.pci.lowerIntx();
    expect(w.setIrqs({ flags: DATA_NONE | UNMASK, index: INTX, start: 0, count: 1 })).toBe(0);
    expect(w.irqState().intx?.masked).toBe(false);
    expect(readOrCode(w.proc, efd)).toBe('EAGAIN');
    expect(w.pci.raiseIntx()).toBe(true);
    expect(w.proc.eventfdRead(efd)).toBe(1n);
  });

  test('UNMASK while the line is still asserted signals again and stays masked (level-triggered)', () => {
    const { w, efd } = intxWorld();
    w.pci.raiseIntx();
    expect(w.setIrqs({ flags: DATA_NONE | UNMASK, index: INTX, start: 0, count: 1 })).toBe(0);
    expect(w.irqState().intx?.masked).toBe(true);
    expect(w.proc.eventfdRead(efd)).toBe(2n);
  });

  test('MASK stops delivery; DATA_BOOL false masks nothing; MASK with an eventfd is ENOTTY', () => {
    const { w, efd } = intxWorld();
    expect(w.setIrqs({ flags: DATA_BOOL | MASK, index: INTX, start: 0, count: 1, data: [0] })).toBe(0);
    expect(w.irqState().intx?.masked).toBe(false);
    expect(w.setIrqs({ flags: DATA_BOOL | MASK, index: INTX, start: 0, count: 1, data: [1] })).toBe(0);
    expect(w.pci.raiseIntx()).toBe(false);
    expect(readOrCode(w.proc, efd)).toBe('EAGAIN');
    expect(w.setIrqs({ flags: DATA_EVENTFD | MASK, index: INTX, start: 0, count: 1, data: [efd] })).toBe('ENOTTY');
  });

  test('an unmask eventfd: each write unmasks; a second is EBUSY; closing it removes it', () => {
    const { w, efd } = intxWorld();
    const [unmask, other] = w.eventfds(2);
    expect(w.setIrqs({ flags: DATA_EVENTFD | UNMASK, index: INTX, start: 0, count: 1, data: [unmask!] })).toBe(0);
    expect(w.setIrqs({ flags: DATA_EVENTFD | UNMASK, index: INTX, start: 0, count: 1, data: [other!] })).toBe('EBUSY');
    w.pci.raiseIntx();
    w.pci.lowerIntx();
    w.proc.eventfdWrite(unmask!, 1n);
    expect(w.irqState().intx).toEqual({ masked: false, trigger: true, unmaskEventfd: true });
    // The virqfd consumed the write.
    expect(readOrCode(w.proc, unmask!)).toBe('EAGAIN');
    expect(w.pci.raiseIntx()).toBe(true);
    expect(w.proc.eventfdRead(efd)).toBe(2n);
    w.proc.close(unmask!);
    expect(w.irqState().intx?.unmaskEventfd).toBe(false);
  });

  test('loopback DATA_NONE signals without masking; disable with count 0 drops the trigger', () => {
    const { w, efd } = intxWorld();
    expect(w.setIrqs({ flags: NONE_TRIGGER, index: INTX, start: 0, count: 1 })).toBe(0);
    expect(w.irqState().intx?.masked).toBe(false);
    expect(w.proc.eventfdRead(efd)).toBe(1n);
    expect(w.setIrqs({ flags: NONE_TRIGGER, index: INTX, start: 0, count: 0 })).toBe(0);
    expect(w.irqState()).toEqual({ type: 'none', vectors: [], err: false, req: false });
    expect(w.pci.raiseIntx()).toBe(false);
    expect(w.proc.fileOf(efd)!.refCount).toBe(1);
  });

  test('enabling with fd −1 enables INTx without a trigger; a later eventfd attaches one', () => {
    const w = irqWorld();
    const [efd] = w.eventfds(1);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: INTX, data: [-1] })).toBe(0);
    expect(w.irqState().intx).toEqual({ masked: false, trigger: false, unmaskEventfd: false });
    expect(w.pci.raiseIntx()).toBe(false);
    expect(w.irqState().intx?.masked).toBe(true);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: INTX, data: [efd!] })).toBe(0);
    expect(w.irqState().intx?.trigger).toBe(true);
  });

  test('MSI cannot be enabled while INTx is', () => {
    const { w } = intxWorld();
    const [efd] = w.eventfds(1);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: [efd!] })).toBe('EINVAL');
    expect(w.irqState().type).toBe('intx');
  });
});

describe('ERR and REQ: vfio_pci_set_ctx_trigger_single', () => {
  test('REQ: an eventfd is set, fired by loopback and by an unbind attempt, and cleared with fd −1', () => {
    const w = irqWorld();
    const [efd] = w.eventfds(1);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: REQ, data: [efd!] })).toBe(0);
    expect(w.setIrqs({ flags: NONE_TRIGGER, index: REQ, start: 0, count: 1 })).toBe(0);
    expect(w.setIrqs({ flags: BOOL_TRIGGER, index: REQ, data: [1] })).toBe(0);
    expect(w.proc.eventfdRead(efd!)).toBe(2n);
    // vfio_pci_core_request: unbinding an open device asks userspace to let go.
    expect(() => w.kernel.bindDriver(w.pci.bdf, 'none')).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    expect(w.proc.eventfdRead(efd!)).toBe(1n);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: REQ, data: [-1] })).toBe(0);
    expect(w.irqState().req).toBe(false);
    expect(w.proc.fileOf(efd!)!.refCount).toBe(1);
  });

  test('ERR exists on PCI Express; DATA_NONE count 0 clears the trigger; other negative fds change nothing', () => {
    const w = irqWorld({ device: { pcie: true } });
    const [efd] = w.eventfds(1);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: ERR, data: [efd!] })).toBe(0);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: ERR, data: [-2] })).toBe(0);
    expect(w.irqState().err).toBe(true);
    expect(w.setIrqs({ flags: NONE_TRIGGER, index: ERR, start: 0, count: 0 })).toBe(0);
    expect(w.irqState().err).toBe(false);
    expect(w.proc.fileOf(efd!)!.refCount).toBe(1);
  });
});

describe('teardown when the device fd closes (vfio_pci_core_close_device)', () => {
  test('MSI-X stops, every eventfd reference goes, and the controller holds no vector', () => {
    const w = irqWorld();
    const efds = w.eventfds(4);
    const [req] = w.eventfds(1);
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSIX, data: efds });
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: REQ, data: [req!] });
    expect(w.pci.raiseMsi(3)).toBe(true);
    w.proc.close(w.fd);
    expect(w.pci.raiseMsi(3)).toBe(false);
    expect(w.pci.msiMode).toBe('none');
    expect([...efds, req!].map((e) => w.proc.fileOf(e)!.refCount)).toEqual([1, 1, 1, 1, 1]);
    expect(w.kernel.module<MsiModule>(MSI_MODULE_NAME).counters()).toMatchObject({ vectors: 0, delivered: 1 });
    w.kernel.checkInvariants();
  });

  test('a trigger outlives its closed fd until the device closes, then the eventfd is released', () => {
    const w = irqWorld();
    const [efd] = w.eventfds(1);
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: [efd!] });
    const eventfd = w.proc.fileOf(efd!)!.data as EventFd;
    w.proc.close(efd!);
    expect(w.pci.raiseMsi(0)).toBe(true);
    expect(eventfd.count).toBe(1n);
    expect(w.kernel.eventfds.size).toBe(1);
    w.proc.close(w.fd);
    expect(eventfd.isReleased).toBe(true);
    expect(w.kernel.eventfds.size).toBe(0);
  });

  test('INTx stops and its unmask eventfd is unhooked', () => {
    const w = irqWorld();
    const [efd, unmask] = w.eventfds(2);
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: INTX, data: [efd!] });
    w.setIrqs({ flags: DATA_EVENTFD | UNMASK, index: INTX, start: 0, count: 1, data: [unmask!] });
    w.proc.close(w.fd);
    expect(w.pci.raiseIntx()).toBe(false);
    expect((w.proc.fileOf(unmask!)!.data as EventFd).waiterCount).toBe(0);
    expect(w.proc.fileOf(efd!)!.refCount).toBe(1);
  });

  test('a second fd of the same device keeps the interrupts until the last one closes', () => {
    const w = irqWorld();
    const [efd] = w.eventfds(1);
    const second = w.proc.ioctl(w.group, uapi.VFIO_GROUP_GET_DEVICE_FD, w.pci.bdf);
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: [efd!] });
    w.proc.close(w.fd);
    expect(w.pci.raiseMsi(0)).toBe(true);
    w.proc.close(second);
    expect(w.pci.raiseMsi(0)).toBe(false);
    expect(w.proc.eventfdRead(efd!)).toBe(1n);
  });
});
