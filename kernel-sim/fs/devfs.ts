/**
 * The /dev node registry: a path names an open function that makes a new file (a misc or char device's
 * open). Nodes come and go as drivers register them (a VFIO group node exists while a device of the group
 * is bound to a VFIO driver).
 */
import { SimBugError, sysError } from '../errors';
import type { Process } from '../process';
import type { SimFile } from './file';

/** Makes the file an open() of the node returns. @throws SysError */
export type NodeOpener = (caller: Process, path: string) => SimFile;

/** Paths → device nodes. */
export class Devfs {
  private readonly _nodes = new Map<string, NodeOpener>();

  /** Creates a node. Creating one that exists is a driver bug. */
  register(path: string, open: NodeOpener): void {
    if (this._nodes.has(path)) throw new SimBugError(`device node ${path} registered twice`);
    this._nodes.set(path, open);
  }

  unregister(path: string): void {
    if (!this._nodes.delete(path)) throw new SimBugError(`device node ${path} was not registered`);
  }

  has(path: string): boolean {
    return this._nodes.has(path);
  }

  /** Opens a node. @throws SysError ENOENT (no such node), or the node's own errors */
  open(caller: Process, path: string): SimFile {
    const opener = this._nodes.get(path);
    if (opener === undefined) throw sysError('ENOENT', 'no such device node');
    return opener(caller, path);
  }

  paths(): string[] {
    return [...this._nodes.keys()].sort();
  }
}
