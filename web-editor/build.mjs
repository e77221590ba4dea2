// Bundles src/editor.js into ../gossip_backer/web/static/editor.js (one file, no Node needed to
// serve it) and writes the licenses of every package in the bundle next to it.
import * as esbuild from 'esbuild'
import fs from 'node:fs'
import path from 'node:path'

const out = path.resolve('../gossip_backer/web/static')
const result = await esbuild.build({
  entryPoints: ['src/editor.js'],
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  legalComments: 'none',
  metafile: true,
  outfile: path.join(out, 'editor.js')
})
const packages = new Set()
for (const input of Object.keys(result.metafile.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//)
  if (m) packages.add(m[1])
}
const parts = ['Licenses of the packages bundled in editor.js (built by web-editor/build.mjs)\n']
for (const name of [...packages].sort()) {
  const dir = path.join('node_modules', name)
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
  const file = fs.readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f))
  const text = file ? fs.readFileSync(path.join(dir, file), 'utf8').trim() : `License: ${pkg.license}`
  parts.push(`\n==== ${name} ${pkg.version} (${pkg.license}) ====\n\n${text}\n`)
}
fs.writeFileSync(path.join(out, 'editor-licenses.txt'), parts.join(''))
console.log(`editor.js: ${fs.statSync(path.join(out, 'editor.js')).size} bytes, ${packages.size} packages`)
