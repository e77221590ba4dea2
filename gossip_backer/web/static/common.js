// Shared by every page: DOM helpers, formatting, the JSON API client and the navigation bar.
// Data only ever goes into textContent or attributes, never into HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function link(text, href, className) {
  const a = el("a", text, className);
  a.href = href;
  return a;
}

function button(text, onClick, className) {
  const b = el("button", text, className);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

function formatBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function formatTime(unixSeconds) {
  if (!unixSeconds) return "–";
  return new Date(unixSeconds * 1000).toLocaleString();
}

function query(name) {
  return new URLSearchParams(window.location.search).get(name);
}

// The API: JSON in, JSON out; a refusal throws an Error with the server's one-line message.
async function api(method, path, body) {
  const options = { method, cache: "no-store", headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (err) { data = null; }
  if (!response.ok) throw new Error((data && data.error) || `HTTP ${response.status}`);
  return data;
}

// One line under the page title saying what just happened (or went wrong).
function notify(text, kind) {
  const box = $("notice");
  if (!box) return;
  box.textContent = text;
  box.className = `notice ${kind || "ok"}`;
  box.hidden = !text;
}

async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    notify("Copied to the clipboard.");
  } catch (err) {
    if (input) { input.focus(); input.select(); }
    notify("Select the text and copy it (the browser refused clipboard access).", "busy");
  }
}

const PAGES = [["/", "Dashboard"], ["/files", "Files"], ["/conflicts", "Conflicts"],
               ["/shares", "Share links"], ["/peers", "Peers & invites"]];

function renderNav() {
  const nav = $("nav");
  if (!nav) return;
  const here = window.location.pathname === "/file" ? "/files" : window.location.pathname;
  nav.replaceChildren(...PAGES.map(([href, text]) => {
    const a = link(text, href);
    if (href === here) a.setAttribute("aria-current", "page");
    return a;
  }));
}

document.addEventListener("DOMContentLoaded", renderNav);
