// DESIGN.md §2: who may import whom, kept acyclic. model ← everything; store ← model; dataplane ← model
// only (never store, controllers, the API); controllers ← model, store, dataplane. A file that crosses
// a line fails here with its name and the import.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const ALLOWED: Record<string, string[]> = {
  model: ['model'],
  store: ['model', 'store'],
  dataplane: ['model', 'dataplane'],
  controllers: ['model', 'store', 'dataplane', 'controllers'],
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'build' ? [] : tsFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

function layerImports(file: string): { spec: string; layer: string }[] {
  const text = readFileSync(file, 'utf8');
  const out: { spec: string; layer: string }[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
    const target = relative(ROOT, resolve(dirname(file), m[1]!));
    out.push({ spec: m[1]!, layer: target.split('/')[0]! });
  }
  return out;
}

describe('import layers (DESIGN.md §2)', () => {
  for (const [layer, allowed] of Object.entries(ALLOWED)) {
    it(`${layer}/ imports only from ${allowed.join(', ')}`, () => {
      const files = tsFiles(join(ROOT, layer));
      expect(files.length).toBeGreaterThan(0);
      const bad = files.flatMap((f) =>
        layerImports(f)
          .filter((i) => !allowed.includes(i.layer))
          .map((i) => `${relative(ROOT, f)} imports ${i.spec}`),
      );
      expect(bad).toEqual([]);
    });
  }
});
