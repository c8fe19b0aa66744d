// demotrace service worker: which tab is active, and the content scripts' events, sent in
// batches to the recorder's local channel (docs/browser.md). When the recorder does not answer,
// events are dropped, never queued without bound.
"use strict";

const FLUSH_MS = 100; // a batch leaves at most this long after its first event
const FLUSH_AT = 50; // ... or as soon as it holds this many
const MAX_QUEUE = 1000; // beyond this the oldest events are dropped
const MAX_BATCH = 200; // the channel's limits: events per request, body bytes
const MAX_BODY = 60 * 1024;
const RETRY_MS = 3000; // after a failed send, events are dropped for this long
const HELLO_EVERY_MS = 10000;
const MAX_URL = 4096;
const MAX_TITLE = 1000;
const FOCUS_SETTLE_MS = 50; // after a page's blur/focus, before asking which window has focus

let config = null; // {port, token} from chrome.storage.local, written by pair.js
let queue = [];
let timer = 0;
let flushing = null;
let downUntil = 0;
let lastHello = 0;
let focusedWindow = chrome.windows.WINDOW_ID_NONE;
let lastActive = "";
const counts = { sent: 0, dropped: 0 };

async function loadConfig() {
  const got = await chrome.storage.local.get(["port", "token"]);
  config = Number.isInteger(got.port) && typeof got.token === "string" && got.token
    ? { port: got.port, token: got.token } : null;
  downUntil = 0;
}

let ready = loadConfig();

chrome.storage.onChanged.addListener((changes, area) => {
  if (area === "local" && (changes.port || changes.token)) {
    ready = loadConfig();
    ready.then(hello);
  }
});

// --- the badge -------------------------------------------------------------------------------
function badge(text, color, title) {
  chrome.action.setBadgeText({ text }).catch(() => {});
  if (color) chrome.action.setBadgeBackgroundColor({ color }).catch(() => {});
  chrome.action.setTitle({ title: `demotrace: ${title}` }).catch(() => {});
}

function showState(state) {
  if (state === "recording") badge("REC", "#b3261e", "recording");
  else if (state === "paused") badge("II", "#666666", "paused");
  else badge("on", "#666666", `connected (${state})`);
}

function showDown(why) {
  badge("off", "#444444", why);
}

// --- the channel -------------------------------------------------------------------------------
function request(path, init) {
  return fetch(`http://127.0.0.1:${config.port}${path}`, {
    ...init,
    headers: { ...(init.headers || {}), Authorization: `Bearer ${config.token}` },
    cache: "no-store",
    credentials: "omit",
    redirect: "error",
  });
}

async function hello() {
  await ready;
  lastHello = Date.now();
  if (!config) {
    showDown("not paired: open the link `demotrace browser pair` prints");
    return;
  }
  try {
    const r = await request("/v1/hello", { method: "GET" });
    if (r.ok) {
      const body = await r.json();
      downUntil = 0;
      showState(String(body.state || "unknown"));
    } else {
      showDown(r.status === 401 || r.status === 403
        ? "the recorder refused this pairing: pair again" : `the recorder answered ${r.status}`);
    }
  } catch (_err) {
    showDown("the recorder is not running");
  }
}

// Takes the next batch off the queue: at most MAX_BATCH events and MAX_BODY bytes.
const encoder = new TextEncoder();

function nextBatch() {
  let batch = queue.splice(0, MAX_BATCH);
  let body = JSON.stringify({ events: batch });
  while (encoder.encode(body).length > MAX_BODY && batch.length > 1) {
    const back = batch.splice(Math.ceil(batch.length / 2));
    queue.unshift(...back);
    body = JSON.stringify({ events: batch });
  }
  return encoder.encode(body).length > MAX_BODY ? [batch, null] : [batch, body];
}

async function drain() {
  await ready;
  while (queue.length) {
    if (!config || Date.now() < downUntil) {
      counts.dropped += queue.length;
      queue = [];
      return;
    }
    const [batch, body] = nextBatch();
    if (body === null) { // one event over the limit (cannot happen within the field limits)
      counts.dropped += batch.length;
      continue;
    }
    let status = 0;
    try {
      const r = await request("/v1/events", {
        method: "POST", headers: { "Content-Type": "application/json" }, body,
      });
      status = r.status;
    } catch (_err) {
      status = 0;
    }
    if (status === 204) {
      counts.sent += batch.length;
      if (Date.now() - lastHello > HELLO_EVERY_MS) hello();
    } else if (status === 413 || status === 415 || status === 422) {
      counts.dropped += batch.length; // refused as malformed: drop it, keep going
    } else {
      counts.dropped += batch.length + queue.length;
      queue = [];
      downUntil = Date.now() + RETRY_MS;
      if (status === 401 || status === 403) showDown("the recorder refused this pairing: pair again");
      else showDown(status ? `the recorder answered ${status}` : "the recorder is not running");
    }
  }
}

function flush() {
  clearTimeout(timer);
  timer = 0;
  if (flushing) return;
  flushing = drain().finally(() => {
    flushing = null;
    if (queue.length) schedule();
  });
}

function schedule() {
  if (queue.length >= FLUSH_AT) flush();
  else if (!timer) timer = setTimeout(flush, FLUSH_MS);
}

function enqueue(ev) {
  if (Date.now() < downUntil) {
    counts.dropped += 1;
    return;
  }
  queue.push(ev);
  if (queue.length > MAX_QUEUE) {
    counts.dropped += queue.length - MAX_QUEUE;
    queue.splice(0, queue.length - MAX_QUEUE);
  }
  schedule();
}

// --- content scripts -----------------------------------------------------------------------
const portsByTab = new Map(); // tab id -> Set of ports: each page is told its zoom

chrome.runtime.onConnect.addListener((port) => {
  const tab = port.sender && port.sender.tab;
  if (port.name !== "demotrace" || !tab || tab.incognito || port.sender.frameId !== 0) {
    port.disconnect();
    return;
  }
  if (!portsByTab.has(tab.id)) portsByTab.set(tab.id, new Set());
  portsByTab.get(tab.id).add(port);
  port.onDisconnect.addListener(() => {
    const ports = portsByTab.get(tab.id);
    if (ports) {
      ports.delete(port);
      if (!ports.size) portsByTab.delete(tab.id);
    }
  });
  chrome.tabs.getZoom(tab.id).then((zoom) => port.postMessage({ zoom })).catch(() => {});
  port.onMessage.addListener((batch) => {
    if (!Array.isArray(batch)) return;
    for (const ev of batch) {
      if (ev === null || typeof ev !== "object" || typeof ev.type !== "string") continue;
      if (ev.type === "_focus") {
        setTimeout(checkFocus, FOCUS_SETTLE_MS);
        continue;
      }
      ev.tab = tab.id;
      ev.win = tab.windowId;
      enqueue(ev);
    }
  });
});

chrome.tabs.onZoomChange.addListener(({ tabId, newZoomFactor }) => {
  for (const port of portsByTab.get(tabId) || []) {
    try {
      port.postMessage({ zoom: newZoomFactor });
    } catch (_err) {
      // that page is gone
    }
  }
});

// --- the active tab of the focused window --------------------------------------------------
const PAIR_PAGE = chrome.runtime.getURL("pair.html");

function activeEvent(tab, win) {
  let url = tab && tab.url ? tab.url.slice(0, MAX_URL) : null;
  let title = tab && typeof tab.title === "string" ? tab.title.slice(0, MAX_TITLE) : null;
  if (url && url.startsWith(PAIR_PAGE)) {
    // never the token: it is in the pair page's address, and in its title until it loads
    url = PAIR_PAGE;
    title = "demotrace: pairing";
  }
  const key = JSON.stringify([tab ? tab.id : -1, win, url, title]);
  if (key === lastActive) return;
  lastActive = key;
  enqueue({ type: "active", t: Date.now(), tab: tab ? tab.id : -1, win, url, title });
}

async function reportActive(win) {
  if (win === chrome.windows.WINDOW_ID_NONE) {
    activeEvent(null, -1);
    return;
  }
  try {
    const [tab] = await chrome.tabs.query({ active: true, windowId: win });
    activeEvent(tab || null, win);
  } catch (_err) {
    // the window closed meanwhile
  }
}

// A page's window gained or lost the focus: which browser window (if any) has it now?
async function checkFocus() {
  try {
    const w = await chrome.windows.getLastFocused({});
    focusedWindow = w && w.focused ? w.id : chrome.windows.WINDOW_ID_NONE;
  } catch (_err) {
    focusedWindow = chrome.windows.WINDOW_ID_NONE;
  }
  reportActive(focusedWindow);
}

chrome.windows.onFocusChanged.addListener((win) => {
  focusedWindow = win;
  reportActive(win);
});

chrome.tabs.onActivated.addListener(({ windowId }) => {
  if (windowId === focusedWindow) reportActive(windowId);
});

chrome.tabs.onUpdated.addListener((_tabId, change, tab) => {
  if ((change.url || change.title !== undefined) && tab.active && tab.windowId === focusedWindow) {
    activeEvent(tab, tab.windowId);
  }
});

chrome.windows.getLastFocused({}).then((w) => {
  if (w && w.focused) {
    focusedWindow = w.id;
    reportActive(w.id);
  }
}).catch(() => {});

hello();
