/**
 * Runs after every test: each Kernel the test made is shut down (every process exits, closing its fds),
 * and the invariant checker must find nothing leaked: no pinned page, no locked_vm, no allocated frame,
 * no IOMMU domain, no refcount out of balance.
 */
import { Kernel } from '../../kernel-sim/kernel';

beforeEach(() => {
  Kernel.trackInstances(true);
});

afterEach(() => {
  for (const kernel of Kernel.takeTracked()) {
    kernel.checkInvariants();
    kernel.shutdown();
  }
});
