// The live-edit page of the web GUI: CodeMirror 6 on the node's document of one live file, over
// the node's y-websocket endpoint (/api/live/PATH). Other editors' cursors and names come through
// awareness. Built into gossip_backer/web/static/editor.js by build.mjs (`make editor`).
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { EditorView, basicSetup } from 'codemirror'
import { EditorState } from '@codemirror/state'
import { yCollab } from 'y-codemirror.next'

const COLORS = ['#30bced', '#6eeb83', '#ffbc42', '#ecd444', '#ee6352', '#9ac2c9', '#8acb88', '#1be7ff']

function pickName () {
  const saved = window.localStorage.getItem('backer-editor-name')
  return saved || `guest ${Math.floor(Math.random() * 900 + 100)}`
}

function start () {
  const path = new URLSearchParams(window.location.search).get('path') || ''
  const $ = (id) => document.getElementById(id)
  $('path').textContent = path || '(no file given)'
  document.title = `${path} · live edit · gossip-backer`
  const ydoc = new Y.Doc()
  const ytext = ydoc.getText('text')
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:'
  const provider = new WebsocketProvider(`${scheme}//${window.location.host}/api/live`, path, ydoc)
  const color = COLORS[Math.floor(Math.random() * COLORS.length)]
  const nameInput = $('name')
  const setName = (name) => {
    provider.awareness.setLocalStateField('user', { name, color, colorLight: color + '33' })
  }
  nameInput.value = pickName()
  setName(nameInput.value)
  nameInput.addEventListener('change', () => {
    window.localStorage.setItem('backer-editor-name', nameInput.value)
    setName(nameInput.value)
  })
  const status = $('status')
  let refused = false
  provider.on('status', (event) => {
    if (!refused) status.textContent = event.status === 'connected' ? 'connected' : 'connecting…'
    status.className = 'badge ' + (event.status === 'connected' ? 'ok' : 'busy')
  })
  provider.on('sync', (synced) => { if (synced) status.textContent = 'in sync' })
  provider.on('connection-close', (event) => {
    if (event && event.code === 1006 && !provider.wsconnected && !provider.synced) {
      refused = true
      status.textContent = 'not a live file on this node (or the node is down)'
    }
  })
  const editors = $('editors')
  const showEditors = () => {
    const names = []
    provider.awareness.getStates().forEach((state, id) => {
      if (state.user && id !== ydoc.clientID) names.push(state.user.name)
    })
    editors.textContent = names.length ? `also here: ${names.join(', ')}` : 'nobody else here'
  }
  provider.awareness.on('change', showEditors)
  showEditors()
  // In a shadow root, CodeMirror's styles are constructed style sheets, which the GUI's strict
  // Content-Security-Policy (style-src 'self', no inline <style>) lets through.
  const shadow = $('editor').attachShadow({ mode: 'open' })
  const view = new EditorView({
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [basicSetup, EditorView.lineWrapping, yCollab(ytext, provider.awareness),
        EditorView.theme({ '&': { minHeight: '60vh' }, '&.cm-focused': { outline: 'none' } })]
    }),
    parent: shadow,
    root: shadow
  })
  window.backerEditor = { view, ytext, provider, ydoc } // for the browser tests
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start)
else start()
