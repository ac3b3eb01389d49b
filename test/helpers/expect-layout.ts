/**
 * Golden struct-layout assertions shared by the VFIO and virtio-iommu golden tests: look a codec up by
 * its export name and pin its C name, sizeof and every field's kind, offset and end.
 */
import * as uapi from '../../uapi';
import { StructCodec, type FieldKind } from '../../uapi';

/** [C name, sizeof, { field: [kind, offset] }] */
export type Layout = readonly [cName: string, size: number, fields: Readonly<Record<string, readonly [FieldKind, number]>>];

const WIDTH: Readonly<Record<FieldKind, number>> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 };

/** The exported StructCodec named `name`; throws if uapi exports no codec by that name. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function codec(name: string): StructCodec<any> {
  const c = (uapi as unknown as Record<string, unknown>)[name];
  if (!(c instanceof StructCodec)) throw new Error(`${name} is not an exported StructCodec`);
  return c;
}

/** Asserts that the codec exported as `name` has exactly `layout`. */
export function expectLayout(name: string, [cName, size, fields]: Layout): void {
  const c = codec(name);
  expect(c.name).toBe(cName);
  expect(c.size).toBe(size);
  expect(Object.keys(c.fields)).toEqual(Object.keys(fields));
  for (const [f, [kind, offset]] of Object.entries(fields)) {
    expect([f, c.fields[f]]).toEqual([f, { kind, offset }]);
    expect(c.offsetof(f)).toBe(offset);
    expect(c.offsetofend(f)).toBe(offset + WIDTH[kind]);
  }
}
