// A stock Yjs client (yjs 13 + y-websocket) for the tests and the benchmark: it edits one live
// file of a node exactly as any Yjs application would.
//   node yclient.mjs ws://HOST:PORT/api/live NOTE_PATH [TOKEN]
// Reads one JSON command per line on stdin: {"insert": [index, text]}, {"delete": [index, n]},
// {"text": true}, {"quiet": true} (from then on a change prints {"length": n}, not the text),
// {"aware": STATE} (this client's awareness state: a cursor, a name; null when it leaves).
// Prints one JSON object per line: {"synced": true}, {"text": ...} after every change of the
// document (and on {"text": true}), {"closed": code} when the server closes, {"others": {id:
// state}} when the awareness states of the other clients change. An insert index
// inside a surrogate pair moves past it (an editor never puts a cursor there).
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import readline from 'node:readline'

const [url, path, token] = process.argv.slice(2)
const doc = new Y.Doc()
const text = doc.getText('text')
const params = token ? { token } : {}
const provider = new WebsocketProvider(url, path, doc, { WebSocketPolyfill: WebSocket, params })
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

provider.on('sync', (synced) => { if (synced) say({ synced: true, text: text.toString() }) })
provider.on('connection-close', (event) => say({ closed: event ? event.code : null }))
let quiet = false
provider.awareness.on('change', () => {
  const others = {}
  provider.awareness.getStates().forEach((state, id) => { if (id !== doc.clientID) others[id] = state })
  say({ others })
})
text.observe(() => say(quiet ? { length: text.length } : { text: text.toString(), at: Date.now() }))
const safeIndex = (i) => {
  const s = text.toString()
  i = Math.min(Math.max(0, i), s.length)
  if (i > 0 && i < s.length && /[\uD800-\uDBFF]/.test(s[i - 1])) i += 1
  return i
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line)
  if (cmd.insert) text.insert(safeIndex(cmd.insert[0]), cmd.insert[1])
  if (cmd.quiet) quiet = true
  if (cmd.delete) text.delete(cmd.delete[0], cmd.delete[1])
  if (cmd.text) say({ text: text.toString() })
  if ('aware' in cmd) provider.awareness.setLocalState(cmd.aware)
  if (cmd.quit) { provider.destroy(); process.exit(0) }
})
