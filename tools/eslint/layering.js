'use strict';
/**
 * ESLint rule `vfio-sim/layering`: enforces the import table of DESIGN.md §1.
 *
 * Each source file belongs to a layer (its top-level folder). A relative import that leaves the layer
 * must land in a layer the table allows; some layers may only reach another layer through its barrel
 * (`index.ts`), which is that layer's public surface. The two IOMMU backends never import each other:
 * what they share lives in containers/backends/common/.
 */
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');

/** layer -> { layer it may import: 'any' (whole folder) | 'barrel' (its index.ts only) } */
const ALLOWED = {
  uapi: {},
  'kernel-sim': { uapi: 'any' },
  msi: { uapi: 'any', 'kernel-sim': 'any' },
  containers: { uapi: 'any', 'kernel-sim': 'any', msi: 'any' },
  userspace: { uapi: 'any', 'kernel-sim': 'barrel' },
  'virtio-iommu': { uapi: 'any', userspace: 'any', 'kernel-sim': 'barrel' },
  '.': { uapi: 'any', 'kernel-sim': 'barrel', msi: 'barrel', containers: 'barrel', userspace: 'barrel', 'virtio-iommu': 'barrel' },
  bench: { '.': 'barrel', uapi: 'barrel' },
  cli: { '.': 'barrel', uapi: 'barrel' },
  examples: { '.': 'barrel', uapi: 'barrel' },
};

function layerOf(file) {
  const rel = path.relative(ROOT, file);
  if (rel.startsWith('..')) return undefined;
  const parts = rel.split(path.sep);
  // 'uapi' (a folder import) is the uapi layer; 'index' or 'index.ts' is the package root.
  if (parts.length === 1 && !(parts[0] in ALLOWED)) return '.';
  return parts[0];
}

function isBarrel(target, layer) {
  const dir = layer === '.' ? ROOT : path.join(ROOT, layer);
  return target === dir || target === path.join(dir, 'index') || target === path.join(dir, 'index.ts');
}

const BACKENDS = ['type1', 'type2'];
function backendOf(file) {
  const rel = path.relative(path.join(ROOT, 'containers', 'backends'), file);
  const first = rel.split(path.sep)[0];
  return BACKENDS.includes(first) ? first : undefined;
}

module.exports = {
  meta: {
    type: 'problem',
    docs: { description: 'enforce the layer import table of DESIGN.md §1' },
    schema: [],
    messages: {
      layer: "'{{from}}/' may not import '{{to}}' ({{why}}); see DESIGN.md §1",
    },
  },
  create(context) {
    const file = context.filename;
    const from = layerOf(file);
    if (from === undefined || !(from in ALLOWED)) return {}; // test/, tools/: anything goes
    function check(node, spec) {
      if (typeof spec !== 'string' || !spec.startsWith('.')) return;
      const target = path.resolve(path.dirname(file), spec);
      const to = layerOf(target);
      if (to === undefined) return;
      const toBackend = backendOf(target);
      const fromBackend = backendOf(file);
      if (fromBackend && toBackend && fromBackend !== toBackend) {
        context.report({ node, messageId: 'layer', data: { from, to: spec, why: 'backends share code only through backends/common/' } });
        return;
      }
      if (to === from) return;
      const rule = ALLOWED[from][to];
      if (rule === 'any') return;
      if (rule === 'barrel' && isBarrel(target, to)) return;
      const why = rule === 'barrel' ? `only ${to}/index.ts is public to ${from}/` : `${from}/ may not depend on ${to}/`;
      context.report({ node, messageId: 'layer', data: { from, to: spec, why } });
    }
    return {
      ImportDeclaration(node) { check(node.source, node.source.value); },
      ExportNamedDeclaration(node) { if (node.source) check(node.source, node.source.value); },
      ExportAllDeclaration(node) { check(node.source, node.source.value); },
      ImportExpression(node) { if (node.source.type === 'Literal') check(node.source, node.source.value); },
      CallExpression(node) {
        if (node.callee.type === 'Identifier' && node.callee.name === 'require' && node.arguments[0]?.type === 'Literal') {
          check(node.arguments[0], node.arguments[0].value);
        }
      },
    };
  },
};
